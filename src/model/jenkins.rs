//! Request forms of the `/jenkins/*` routes (docs/jenkins.md). Jobs and folders are named by full
//! path (`team/service/deploy`, or the original's `team/job/service/job/deploy`), so names go in
//! the query or the body, never in the URL path.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError};

/// A Jenkins item path: 1 to 512 characters, no control characters.
fn validate_item_path(value: &str) -> Result<(), ValidationError> {
    let ok = !value.trim().is_empty() && value.len() <= 512 && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("jenkins_name").with_message(
            "a Jenkins job or folder path: 1-512 characters, no control characters".into(),
        ))
    }
}

/// `GET /jenkins/index` (the original's route) and `GET /jenkins/log`.
#[derive(Clone, Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BuildLogQuery {
    /// The job's full path; absent: `jenkins.default_job` (`go-test`, the original's).
    #[validate(custom(function = "validate_item_path"))]
    #[param(max_length = 512)]
    pub job: Option<String>,
    /// The build number; absent: the newest build.
    #[validate(range(min = 1))]
    #[param(minimum = 1)]
    pub build: Option<u64>,
    /// Where to start reading (a `next_start` of an earlier page); absent: the beginning.
    #[serde(default)]
    #[param(minimum = 0)]
    pub start: u64,
}

/// `GET /jenkins/job`: one job by full path.
#[derive(Clone, Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// The job's full path.
    #[validate(custom(function = "validate_item_path"))]
    #[param(min_length = 1, max_length = 512)]
    pub name: String,
}

/// `POST /jenkins/folders`: a folder by full path; missing parents are created too.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderForm {
    /// The folder's full path, `a/b/c`.
    #[validate(custom(function = "validate_item_path"))]
    #[schema(min_length = 1, max_length = 512, example = "team/service")]
    pub name: String,
}

/// `POST /jenkins/jobs`: a job from the template (`assets/jenkins/job.xml`) in a folder.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobForm {
    /// The folder's full path (it must exist).
    #[validate(custom(function = "validate_item_path"))]
    #[schema(min_length = 1, max_length = 512, example = "team/service")]
    pub folder: String,
    /// The job's name in the folder.
    #[validate(custom(function = "validate_item_path"))]
    #[schema(min_length = 1, max_length = 512, example = "deploy")]
    pub name: String,
}

/// `POST /jenkins/job/rename`.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameJobForm {
    /// The job's full path (the original's `a/job/b/job/c` accepted).
    #[validate(custom(function = "validate_item_path"))]
    #[schema(
        min_length = 1,
        max_length = 512,
        example = "team/job/service/job/deploy"
    )]
    pub name: String,
    /// The new name, in the same folder.
    #[validate(custom(function = "validate_item_path"))]
    #[schema(min_length = 1, max_length = 512, example = "deploy-prod")]
    pub new_name: String,
}

/// `POST /jenkins/job/build`.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildJobForm {
    /// The job's full path.
    #[validate(custom(function = "validate_item_path"))]
    #[schema(min_length = 1, max_length = 512, example = "team/service/deploy")]
    pub name: String,
    /// Build parameters (`params1` for the template's job); none: a plain build.
    #[serde(default)]
    #[validate(length(max = 100))]
    pub params: BTreeMap<String, String>,
}

//! Request forms of the `/jenkins/*` routes (docs/jenkins.md). Jobs and folders are named by full
//! path (`team/service/deploy`, or the original's `team/job/service/job/deploy`), so names go in
//! the query or the body, never in the URL path.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError};

/// A Jenkins item path: 1 to 512 characters, no control characters, not only spaces (the
/// schema's [`ITEM_PATH_PATTERN`]). Jenkins judges the rest (unsafe characters, `.` and `..`)
/// and says what it refuses.
fn validate_item_path(value: &str) -> Result<(), ValidationError> {
    let ok = value.chars().count() <= 512
        && !value.chars().any(char::is_control)
        && value.chars().any(|c| c != ' ');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("jenkins_name").with_message(
            "a Jenkins job or folder path: 1-512 characters, no control characters".into(),
        ))
    }
}

/// What [`validate_item_path`] accepts, as the document states it.
pub const ITEM_PATH_PATTERN: &str =
    r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

/// `GET /jenkins/index` (the original's route) and `GET /jenkins/log`.
#[derive(Clone, Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BuildLogQuery {
    /// The job's full path; absent: `jenkins.default_job` (`go-test`, the original's).
    #[validate(custom(function = "validate_item_path"))]
    #[param(
        max_length = 512,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub job: Option<String>,
    /// The build number; absent: the newest build.
    #[validate(range(min = 1, max = 9_223_372_036_854_775_807_u64))]
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub build: Option<u64>,
    /// Where to start reading (a `next_start` of an earlier page); absent: the beginning.
    #[serde(default)]
    #[validate(range(max = 9_223_372_036_854_775_807_u64))]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub start: u64,
}

/// `GET /jenkins/job`: one job by full path.
#[derive(Clone, Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// The job's full path.
    #[validate(custom(function = "validate_item_path"))]
    #[param(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
}

/// `POST /jenkins/folders`: a folder by full path; missing parents are created too.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderForm {
    /// The folder's full path, `a/b/c`.
    #[validate(custom(function = "validate_item_path"))]
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "team/service"
    )]
    pub name: String,
}

/// `POST /jenkins/jobs`: a job from the template (`assets/jenkins/job.xml`) in a folder.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobForm {
    /// The folder's full path (it must exist).
    #[validate(custom(function = "validate_item_path"))]
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "team/service"
    )]
    pub folder: String,
    /// The job's name in the folder.
    #[validate(custom(function = "validate_item_path"))]
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "deploy"
    )]
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
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "deploy-prod"
    )]
    pub new_name: String,
}

/// `POST /jenkins/job/build`.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildJobForm {
    /// The job's full path.
    #[validate(custom(function = "validate_item_path"))]
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
        example = "team/service/deploy"
    )]
    pub name: String,
    /// Build parameters (`params1` for the template's job); none: a plain build.
    #[serde(default)]
    #[validate(length(max = 100))]
    pub params: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_pattern_is_the_rule() {
        let rule = fancy_regex::Regex::new(ITEM_PATH_PATTERN).unwrap();
        for (name, ok) in [
            ("go-test", true),
            ("team/job/service", true),
            ("阿里 云/部署", true),
            (" a ", true),
            ("", false),
            ("   ", false),
            ("a\nb", false),
            ("a\u{7}b", false),
            ("a\u{85}b", false),
            ("\u{7f}", false),
        ] {
            assert_eq!(rule.is_match(name).unwrap(), ok, "{name:?}");
            assert_eq!(validate_item_path(name).is_ok(), ok, "{name:?}");
        }
    }
}

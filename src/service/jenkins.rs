//! The Jenkins use cases (the original's `jenkins_service.go`): the last build log of a job, the
//! pending queue and cancelling it, job status (the original's 0 / 1 / 2), next build numbers,
//! folders, jobs from the template, renames and parameterised builds. Only admins reach them
//! (the `Admin` extractor of their routes; the original showed build logs to anyone), and Jenkins's own
//! errors reach the caller as codes with Jenkins's words, never as an empty log.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use goex_jenkins::{JenkinsError, JobOutcome};
use serde::Serialize;
use shaku::{Component, Interface};
use utoipa::ToSchema;

use crate::meta::config::JenkinsConfig;
use crate::repository::jenkins::JenkinsRepository;
use crate::service::error::ServiceError;

/// The dependency name in errors.
pub const JENKINS: &str = "jenkins";

/// A job's status as the original reported it: 1 the last build succeeded (unstable counts, as
/// in Jenkins's `lastSuccessfulBuild`), 2 it failed, 0 never built or anything else (building,
/// aborted).
pub fn status_code(outcome: JobOutcome) -> u8 {
    match outcome {
        JobOutcome::Succeeded => 1,
        JobOutcome::Failed => 2,
        JobOutcome::NeverBuilt | JobOutcome::Other => 0,
    }
}

/// A piece of a build's console.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BuildLog {
    /// The job's full path.
    pub job: String,
    /// The build number.
    pub build: u64,
    /// The text from `start`.
    pub log: String,
    /// Where the next page starts (Jenkins's `X-Text-Size`): pass it as `start`. `null` when
    /// this page was cut at `jenkins.max_console_bytes`: Jenkins gives no offset inside an
    /// answer, so the rest of such a log is beyond paging (raise the limit).
    pub next_start: Option<u64>,
    /// Whether the build is still writing: ask again from `next_start`.
    pub more: bool,
    /// Whether this page was cut at `jenkins.max_console_bytes`.
    pub truncated: bool,
}

/// A waiting queue item.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PendingBuild {
    /// The queue id.
    pub id: u64,
    /// The job's name.
    pub job: String,
    /// Why it waits.
    pub why: Option<String>,
    /// Whether it waits for another build.
    pub blocked: bool,
    /// Whether no node can run it.
    pub stuck: bool,
}

/// A job's status.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = JenkinsJobStatus)]
pub struct JobStatus {
    /// The name (full path for one job, the name for a listing).
    pub name: String,
    /// 1 the last build succeeded, 2 it failed, 0 never built or other (the original's).
    #[schema(minimum = 0, maximum = 2)]
    pub status: u8,
}

/// One job in detail.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = JenkinsJob)]
pub struct JobDetail {
    /// The full path.
    pub name: String,
    /// As [`JobStatus::status`].
    #[schema(minimum = 0, maximum = 2)]
    pub status: u8,
    /// The number the next build gets.
    pub next_build_number: u64,
    /// The newest build's number; `null` when never built.
    pub last_build: Option<u64>,
    /// Whether a build waits in the queue.
    pub in_queue: bool,
    /// The absolute URL.
    pub url: String,
}

/// A created or renamed item.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JenkinsItem {
    /// The full path.
    pub name: String,
    /// The absolute URL.
    pub url: String,
}

/// The Jenkins use cases; each checks that `user` is an admin first.
#[async_trait]
pub trait JenkinsService: Interface {
    /// The job `jenkins.default_job` when `job` is `None`.
    fn default_job(&self) -> &str;
    /// Console text of build `build` (the newest when `None`) from `start`.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for a non-admin; [`ServiceError::NotFound`] when the job or
    /// build does not exist or the job was never built; Jenkins failures.
    async fn build_log(
        &self,
        job: &str,
        build: Option<u64>,
        start: u64,
    ) -> Result<BuildLog, ServiceError>;
    /// The waiting queue.
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn pending(&self) -> Result<Vec<PendingBuild>, ServiceError>;
    /// Cancels one waiting item.
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn cancel(&self, id: u64) -> Result<(), ServiceError>;
    /// Cancels every waiting item; the ids.
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn cancel_all(&self) -> Result<Vec<u64>, ServiceError>;
    /// The status of every top-level job (folders left out).
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn statuses(&self) -> Result<Vec<JobStatus>, ServiceError>;
    /// One job: status, next build number, last build.
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn job(&self, name: &str) -> Result<JobDetail, ServiceError>;
    /// Creates a folder and its missing parents.
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn create_folder(&self, name: &str) -> Result<JenkinsItem, ServiceError>;
    /// Creates job `name` in `folder` from the template (`assets/jenkins/job.xml`).
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn create_job(&self, folder: &str, name: &str) -> Result<JenkinsItem, ServiceError>;
    /// Renames a job (by full path, the original's `a/job/b/job/c` accepted).
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn rename(&self, name: &str, new_name: &str) -> Result<JenkinsItem, ServiceError>;
    /// Starts a build with `params`; its queue id.
    ///
    /// # Errors
    /// As [`JenkinsService::build_log`].
    async fn build(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<u64, ServiceError>;
}

/// [`JenkinsService`] over the Jenkins repository.
#[derive(Component)]
#[shaku(interface = JenkinsService)]
pub struct JenkinsServiceImpl {
    #[shaku(inject)]
    jenkins: Arc<dyn JenkinsRepository>,
    /// `jenkins.*`: the job used when none is named (`default_job`).
    config: JenkinsConfig,
    /// The job template's `config.xml`.
    job_template: Arc<str>,
}

/// Jenkins's failures as the service's: what Jenkins said stays in the message.
fn jenkins_error(e: JenkinsError) -> ServiceError {
    match e {
        JenkinsError::InvalidName(name) => {
            ServiceError::invalid("name", format!("not a Jenkins item name: {name:?}"))
        }
        JenkinsError::NotFound(_) => ServiceError::NotFound,
        JenkinsError::Settings(_) | JenkinsError::Unreachable(_) => ServiceError::Unavailable {
            dependency: JENKINS,
            source: Box::new(e),
        },
        // Jenkins refused what the caller asked for (a taken or unsafe name, parameters to a
        // job without any, a disabled job): the caller's 400, in Jenkins's words.
        JenkinsError::Status { status, message } if (400..500).contains(&status) => {
            ServiceError::invalid("", format!("jenkins: {message}"))
        }
        JenkinsError::Status { message, .. } => ServiceError::DownstreamSaid {
            dependency: JENKINS,
            said: message,
        },
        JenkinsError::Unauthorized(_) | JenkinsError::Forbidden(_) => {
            ServiceError::DownstreamSaid {
                dependency: JENKINS,
                said: "jenkins refused the configured credentials".into(),
            }
        }
        other => ServiceError::Downstream {
            dependency: JENKINS,
            source: Box::new(other),
        },
    }
}

#[async_trait]
impl JenkinsService for JenkinsServiceImpl {
    fn default_job(&self) -> &str {
        &self.config.default_job
    }

    async fn build_log(
        &self,
        job: &str,
        build: Option<u64>,
        start: u64,
    ) -> Result<BuildLog, ServiceError> {
        let (number, chunk) = self
            .jenkins
            .console(job, build, start)
            .await
            .map_err(jenkins_error)?
            .ok_or(ServiceError::NotFound)?;
        Ok(BuildLog {
            job: job.to_owned(),
            build: number,
            log: chunk.text,
            next_start: (!chunk.truncated).then_some(chunk.next_start),
            more: chunk.more,
            truncated: chunk.truncated,
        })
    }

    async fn pending(&self) -> Result<Vec<PendingBuild>, ServiceError> {
        let items = self.jenkins.queue().await.map_err(jenkins_error)?;
        Ok(items
            .into_iter()
            .map(|i| PendingBuild {
                id: i.id,
                job: i.task.name,
                why: i.why,
                blocked: i.blocked,
                stuck: i.stuck,
            })
            .collect())
    }

    async fn cancel(&self, id: u64) -> Result<(), ServiceError> {
        match self.jenkins.cancel_queue_item(id).await {
            Ok(()) => Ok(()),
            // Jenkins answers 500 "Could not cancel run" for an item that left the queue (it
            // started or was cancelled): no waiting item has that id.
            Err(e @ JenkinsError::Status { .. }) => match self.jenkins.queue_item(id).await {
                Ok(item) if item.has_left() => Err(ServiceError::NotFound),
                _ => Err(jenkins_error(e)),
            },
            Err(e) => Err(jenkins_error(e)),
        }
    }

    async fn cancel_all(&self) -> Result<Vec<u64>, ServiceError> {
        self.jenkins
            .cancel_all_queue_items()
            .await
            .map_err(jenkins_error)
    }

    async fn statuses(&self) -> Result<Vec<JobStatus>, ServiceError> {
        let listed = self.jenkins.jobs().await.map_err(jenkins_error)?;
        Ok(listed
            .into_iter()
            .filter(|j| !j.is_folder())
            .map(|j| JobStatus {
                status: status_code(j.outcome()),
                name: j.name,
            })
            .collect())
    }

    async fn job(&self, name: &str) -> Result<JobDetail, ServiceError> {
        let job = self.jenkins.job(name).await.map_err(jenkins_error)?;
        Ok(JobDetail {
            name: if job.full_name.is_empty() {
                name.to_owned()
            } else {
                job.full_name.clone()
            },
            status: status_code(job.outcome()),
            next_build_number: job.next_build_number,
            last_build: job.last_build.as_ref().map(|b| b.number),
            in_queue: job.in_queue,
            url: job.url,
        })
    }

    async fn create_folder(&self, name: &str) -> Result<JenkinsItem, ServiceError> {
        let folder = self
            .jenkins
            .create_folder(name)
            .await
            .map_err(jenkins_error)?;
        Ok(JenkinsItem {
            name: name.to_owned(),
            url: folder.url,
        })
    }

    async fn create_job(&self, folder: &str, name: &str) -> Result<JenkinsItem, ServiceError> {
        let job = self
            .jenkins
            .create_job_in_folder(folder, name, &self.job_template)
            .await
            .map_err(jenkins_error)?;
        Ok(JenkinsItem {
            name: format!("{}/{name}", folder.trim_matches('/')),
            url: job.url,
        })
    }

    async fn rename(&self, name: &str, new_name: &str) -> Result<JenkinsItem, ServiceError> {
        let job = self
            .jenkins
            .rename_job(name, new_name)
            .await
            .map_err(jenkins_error)?;
        Ok(JenkinsItem {
            name: if job.full_name.is_empty() {
                new_name.to_owned()
            } else {
                job.full_name
            },
            url: job.url,
        })
    }

    async fn build(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<u64, ServiceError> {
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.jenkins
            .build_job(name, &params)
            .await
            .map_err(jenkins_error)
    }
}

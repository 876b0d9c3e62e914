//! Jenkins (the original's `jenkins_repository` over gojenkins): the calls the Jenkins service
//! makes, each timed as `jenkins_request_duration_seconds{operation}`. The client is made at
//! start without connecting, so Jenkins being down never stops the app; with `jenkins.host`
//! empty every call answers that Jenkins is not configured.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use goex_jenkins::{ConsoleChunk, Folder, JenkinsClient, JenkinsError, Job, JobSummary, QueueItem};
use goex_metrics::CallMetrics;
use shaku::{Component, Interface};

/// The Jenkins calls of the service.
#[async_trait]
pub trait JenkinsRepository: Interface {
    /// The waiting queue items.
    ///
    /// # Errors
    /// What Jenkins (or reaching it) failed with.
    async fn queue(&self) -> Result<Vec<QueueItem>, JenkinsError>;
    /// One queue item, waiting or left in the last minutes.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn queue_item(&self, id: u64) -> Result<QueueItem, JenkinsError>;
    /// Cancels a waiting queue item.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn cancel_queue_item(&self, id: u64) -> Result<(), JenkinsError>;
    /// Cancels every waiting item; the ids cancelled.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn cancel_all_queue_items(&self) -> Result<Vec<u64>, JenkinsError>;
    /// The top-level jobs and folders.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn jobs(&self) -> Result<Vec<JobSummary>, JenkinsError>;
    /// A job by full path.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn job(&self, full_name: &str) -> Result<Job, JenkinsError>;
    /// Console text of build `number` (the newest when `None`) from `start`; `None` when the
    /// job was never built.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn console(
        &self,
        full_name: &str,
        number: Option<u64>,
        start: u64,
    ) -> Result<Option<(u64, ConsoleChunk)>, JenkinsError>;
    /// Creates a folder and its missing parents.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn create_folder(&self, full_name: &str) -> Result<Folder, JenkinsError>;
    /// Creates job `name` in `folder` from `config_xml`.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn create_job_in_folder(
        &self,
        folder: &str,
        name: &str,
        config_xml: &str,
    ) -> Result<Job, JenkinsError>;
    /// Renames a job.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn rename_job(&self, full_name: &str, new_name: &str) -> Result<Job, JenkinsError>;
    /// Starts a build with `params`; its queue id.
    ///
    /// # Errors
    /// As [`JenkinsRepository::queue`].
    async fn build_job(
        &self,
        full_name: &str,
        params: &[(&str, &str)],
    ) -> Result<u64, JenkinsError>;
}

/// The operations, as the `operation` label.
#[derive(Clone, Copy, Debug)]
enum Operation {
    Queue,
    CancelQueueItem,
    CancelAll,
    Jobs,
    Job,
    Console,
    CreateFolder,
    CreateJob,
    RenameJob,
    BuildJob,
}

impl Operation {
    const ALL: [Operation; 10] = [
        Operation::Queue,
        Operation::CancelQueueItem,
        Operation::CancelAll,
        Operation::Jobs,
        Operation::Job,
        Operation::Console,
        Operation::CreateFolder,
        Operation::CreateJob,
        Operation::RenameJob,
        Operation::BuildJob,
    ];

    fn label(self) -> &'static str {
        match self {
            Operation::Queue => "queue",
            Operation::CancelQueueItem => "cancel_queue_item",
            Operation::CancelAll => "cancel_all_queue_items",
            Operation::Jobs => "jobs",
            Operation::Job => "job",
            Operation::Console => "console",
            Operation::CreateFolder => "create_folder",
            Operation::CreateJob => "create_job",
            Operation::RenameJob => "rename_job",
            Operation::BuildJob => "build_job",
        }
    }
}

/// The handles of every operation, made once.
#[derive(Clone)]
pub struct JenkinsMetrics(HashMap<&'static str, CallMetrics>);

impl JenkinsMetrics {
    /// The handles on `metrics`.
    pub fn new(metrics: &goex_metrics::Metrics) -> Self {
        Self(
            Operation::ALL
                .iter()
                .map(|o| {
                    (
                        o.label(),
                        metrics.jenkins_request(o.label(), &JenkinsError::KINDS),
                    )
                })
                .collect(),
        )
    }
}

/// [`JenkinsRepository`] over the REST client.
#[derive(Component)]
#[shaku(interface = JenkinsRepository)]
pub struct RestJenkinsRepository {
    /// The client, or why `jenkins.*` cannot make one (every call fails with it).
    client: Arc<Result<JenkinsClient, String>>,
    metrics: Option<JenkinsMetrics>,
    /// A span per call of a sampled request, named by its operation.
    tracing: goex_tracing::Tracing,
}

impl RestJenkinsRepository {
    async fn run<T, F>(
        &self,
        operation: Operation,
        call: impl FnOnce(JenkinsClient) -> F,
    ) -> Result<T, JenkinsError>
    where
        F: Future<Output = Result<T, JenkinsError>>,
    {
        let client = self
            .client
            .as_ref()
            .as_ref()
            .map_err(|why| JenkinsError::Settings(why.clone()))?
            .clone();
        let metrics = self
            .metrics
            .as_ref()
            .and_then(|m| m.0.get(operation.label()));
        let call = goex_metrics::timed(metrics, JenkinsError::kind, call(client));
        // Run only when the call is traced: nothing is parsed or formatted otherwise.
        let describe = |span: &mut goex_tracing::Span| {
            use goex_tracing::KeyValue;
            span.rename(format!("jenkins {}", operation.label()));
            span.set_attributes([KeyValue::new("jenkins.operation", operation.label())]);
            let base = self
                .client
                .as_ref()
                .as_ref()
                .ok()
                .map(JenkinsClient::base_url);
            if let Some(uri) = base.and_then(|base| base.parse::<http::Uri>().ok()) {
                span.set_attributes([
                    KeyValue::new("server.address", uri.host().unwrap_or_default().to_owned()),
                    KeyValue::new("server.port", i64::from(super::rpc::port_of(&uri))),
                ]);
            }
        };
        self.tracing
            .traced("jenkins", describe, JenkinsError::kind, call)
            .await
    }
}

#[async_trait]
impl JenkinsRepository for RestJenkinsRepository {
    async fn queue(&self) -> Result<Vec<QueueItem>, JenkinsError> {
        self.run(Operation::Queue, |c| async move { c.queue().await })
            .await
    }

    async fn queue_item(&self, id: u64) -> Result<QueueItem, JenkinsError> {
        self.run(Operation::Queue, |c| async move { c.queue_item(id).await })
            .await
    }

    async fn cancel_queue_item(&self, id: u64) -> Result<(), JenkinsError> {
        self.run(Operation::CancelQueueItem, |c| async move {
            c.cancel_queue_item(id).await
        })
        .await
    }

    async fn cancel_all_queue_items(&self) -> Result<Vec<u64>, JenkinsError> {
        self.run(Operation::CancelAll, |c| async move {
            c.cancel_all_queue_items().await
        })
        .await
    }

    async fn jobs(&self) -> Result<Vec<JobSummary>, JenkinsError> {
        self.run(Operation::Jobs, |c| async move { c.jobs().await })
            .await
    }

    async fn job(&self, full_name: &str) -> Result<Job, JenkinsError> {
        self.run(Operation::Job, |c| async move { c.job(full_name).await })
            .await
    }

    async fn console(
        &self,
        full_name: &str,
        number: Option<u64>,
        start: u64,
    ) -> Result<Option<(u64, ConsoleChunk)>, JenkinsError> {
        self.run(Operation::Console, |c| async move {
            let number = match number {
                Some(n) => n,
                None => match c.last_build(full_name).await? {
                    Some(build) => build.number,
                    None => return Ok(None),
                },
            };
            let chunk = c.console_text(full_name, number, start).await?;
            Ok(Some((number, chunk)))
        })
        .await
    }

    async fn create_folder(&self, full_name: &str) -> Result<Folder, JenkinsError> {
        self.run(Operation::CreateFolder, |c| async move {
            c.create_folder(full_name).await
        })
        .await
    }

    async fn create_job_in_folder(
        &self,
        folder: &str,
        name: &str,
        config_xml: &str,
    ) -> Result<Job, JenkinsError> {
        self.run(Operation::CreateJob, |c| async move {
            c.create_job_in_folder(folder, name, config_xml).await
        })
        .await
    }

    async fn rename_job(&self, full_name: &str, new_name: &str) -> Result<Job, JenkinsError> {
        self.run(Operation::RenameJob, |c| async move {
            c.rename_job(full_name, new_name).await
        })
        .await
    }

    async fn build_job(
        &self,
        full_name: &str,
        params: &[(&str, &str)],
    ) -> Result<u64, JenkinsError> {
        self.run(Operation::BuildJob, |c| async move {
            c.build_job(full_name, params).await
        })
        .await
    }
}

//! `/jenkins/*` (the original's `jenkins_controller.go`): build logs, the queue, job status,
//! folders, jobs from the template, renames and builds (docs/jenkins.md). Every route needs a
//! token of a user with the `admin` role (else 403 / 10011); each call leaves an audit record.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use utoipa::ToSchema;

use crate::model::jenkins::{
    BuildJobForm, BuildLogQuery, CreateJobForm, FolderForm, JobQuery, RenameJobForm,
};
use crate::service::auth::AuthService;
use crate::service::error::ServiceError;
use crate::service::jenkins::{
    BuildLog, JenkinsItem, JenkinsService, JobDetail, JobStatus, PendingBuild,
};
use crate::web::auth::Admin;
use crate::web::extract::{ValidatedBody, ValidatedQuery};
use crate::web::inject::Inject;
use crate::web::routes::Routes;

/// The Jenkins controller: one method per route, each given the route's validated input and
/// answering the HTTP response.
#[async_trait]
pub trait JenkinsController: Interface {
    /// `GET /jenkins/index`: the console of the newest build of the job (default
    /// `jenkins.default_job`).
    ///
    /// # Errors
    /// As the service.
    async fn index(&self, query: BuildLogQuery) -> Result<HttpResponse, ServiceError>;

    /// `GET /jenkins/log`: a page of a build's console.
    ///
    /// # Errors
    /// As the service.
    async fn log(&self, query: BuildLogQuery) -> Result<HttpResponse, ServiceError>;

    /// `GET /jenkins/queue`.
    ///
    /// # Errors
    /// As the service.
    async fn queue(&self) -> Result<HttpResponse, ServiceError>;

    /// `DELETE /jenkins/queue/{id}`.
    ///
    /// # Errors
    /// 400 / 10000 for an id that is not one; as the service.
    async fn cancel(&self, id: u64) -> Result<HttpResponse, ServiceError>;

    /// `DELETE /jenkins/queue`.
    ///
    /// # Errors
    /// As the service.
    async fn cancel_all(&self) -> Result<HttpResponse, ServiceError>;

    /// `GET /jenkins/jobs`.
    ///
    /// # Errors
    /// As the service.
    async fn jobs(&self) -> Result<HttpResponse, ServiceError>;

    /// `GET /jenkins/job`.
    ///
    /// # Errors
    /// As the service.
    async fn job(&self, query: JobQuery) -> Result<HttpResponse, ServiceError>;

    /// `POST /jenkins/folders`: 201.
    ///
    /// # Errors
    /// As the service.
    async fn create_folder(&self, form: FolderForm) -> Result<HttpResponse, ServiceError>;

    /// `POST /jenkins/jobs`: 201.
    ///
    /// # Errors
    /// As the service.
    async fn create_job(&self, form: CreateJobForm) -> Result<HttpResponse, ServiceError>;

    /// `POST /jenkins/job/rename`.
    ///
    /// # Errors
    /// As the service.
    async fn rename(&self, form: RenameJobForm) -> Result<HttpResponse, ServiceError>;

    /// `POST /jenkins/job/build`: 202 with the queue id.
    ///
    /// # Errors
    /// As the service.
    async fn build(&self, form: BuildJobForm) -> Result<HttpResponse, ServiceError>;
}

/// [`JenkinsController`] over the Jenkins service.
#[derive(Component)]
#[shaku(interface = JenkinsController)]
pub struct JenkinsControllerImpl {
    #[shaku(inject)]
    jenkins: Arc<dyn JenkinsService>,
}

#[async_trait]
impl JenkinsController for JenkinsControllerImpl {
    async fn index(&self, query: BuildLogQuery) -> Result<HttpResponse, ServiceError> {
        let jenkins = &self.jenkins;
        let job = query.job.as_deref().unwrap_or(jenkins.default_job());
        let page = jenkins.build_log(job, query.build, query.start).await?;
        Ok(HttpResponse::Ok().json(IndexResponse {
            data: IndexLog { log: page.log },
        }))
    }

    async fn log(&self, query: BuildLogQuery) -> Result<HttpResponse, ServiceError> {
        let jenkins = &self.jenkins;
        let job = query.job.as_deref().unwrap_or(jenkins.default_job());
        Ok(ok(jenkins.build_log(job, query.build, query.start).await?))
    }

    async fn queue(&self) -> Result<HttpResponse, ServiceError> {
        let items = self.jenkins.pending().await?;
        Ok(HttpResponse::Ok().json(QueueResponse {
            data: QueueItems { items },
        }))
    }

    async fn cancel(&self, id: u64) -> Result<HttpResponse, ServiceError> {
        if id == 0 || i64::try_from(id).is_err() {
            return Err(ServiceError::invalid("id", "a queue id: 1 to 2^63-1"));
        }
        self.jenkins.cancel(id).await?;
        Ok(HttpResponse::Ok().json(CancelledResponse {
            data: Cancelled {
                cancelled: vec![id],
            },
        }))
    }

    async fn cancel_all(&self) -> Result<HttpResponse, ServiceError> {
        let cancelled = self.jenkins.cancel_all().await?;
        Ok(HttpResponse::Ok().json(CancelledResponse {
            data: Cancelled { cancelled },
        }))
    }

    async fn jobs(&self) -> Result<HttpResponse, ServiceError> {
        let jobs = self.jenkins.statuses().await?;
        Ok(HttpResponse::Ok().json(JobsResponse {
            data: JobStatuses { jobs },
        }))
    }

    async fn job(&self, query: JobQuery) -> Result<HttpResponse, ServiceError> {
        Ok(ok(self.jenkins.job(&query.name).await?))
    }

    async fn create_folder(&self, form: FolderForm) -> Result<HttpResponse, ServiceError> {
        let data = self.jenkins.create_folder(&form.name).await?;
        Ok(HttpResponse::Created().json(Data { data }))
    }

    async fn create_job(&self, form: CreateJobForm) -> Result<HttpResponse, ServiceError> {
        let data = self.jenkins.create_job(&form.folder, &form.name).await?;
        Ok(HttpResponse::Created().json(Data { data }))
    }

    async fn rename(&self, form: RenameJobForm) -> Result<HttpResponse, ServiceError> {
        Ok(ok(self.jenkins.rename(&form.name, &form.new_name).await?))
    }

    async fn build(&self, form: BuildJobForm) -> Result<HttpResponse, ServiceError> {
        let queue_id = self.jenkins.build(&form.name, &form.params).await?;
        Ok(HttpResponse::Accepted().json(QueuedResponse {
            data: Queued { queue_id },
        }))
    }
}

/// Registers `/jenkins/*`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    use goex_errors::{ERR_CALL_FUNC, ERR_DIAL, ERR_FORBIDDEN, ERR_NOT_FOUND, ERR_PARAM};
    // Every route: not an admin, Jenkins refused the request (400, its words), Jenkins down or
    // not configured, Jenkins failed.
    const ALWAYS: &[goex_errors::ErrorCode] = &[ERR_FORBIDDEN, ERR_PARAM, ERR_DIAL, ERR_CALL_FUNC];
    const NAMED: &[goex_errors::ErrorCode] = &[
        ERR_FORBIDDEN,
        ERR_PARAM,
        ERR_DIAL,
        ERR_CALL_FUNC,
        ERR_NOT_FOUND,
    ];
    routes
        .add(__path_index, NAMED, index::<M>)
        .add(__path_log, NAMED, log::<M>)
        .add(__path_queue, ALWAYS, queue::<M>)
        .add(__path_cancel, NAMED, cancel::<M>)
        .add(__path_cancel_all, ALWAYS, cancel_all::<M>)
        .add(__path_jobs, ALWAYS, jobs::<M>)
        .add(__path_job, NAMED, job::<M>)
        .add(__path_create_folder, NAMED, create_folder::<M>)
        .add(__path_create_job, NAMED, create_job::<M>)
        .add(__path_rename, NAMED, rename::<M>)
        .add(__path_build, NAMED, build::<M>);
}

/// `{"data": ...}`.
#[derive(Serialize, ToSchema)]
struct Data<T> {
    data: T,
}

fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Data { data })
}

/// The original's answer: `{"data": {"log": "..."}}`.
#[derive(Serialize, ToSchema)]
struct IndexResponse {
    data: IndexLog,
}

#[derive(Serialize, ToSchema)]
struct IndexLog {
    /// The console text of the job's newest build (up to `jenkins.max_console_bytes`).
    log: String,
}

#[derive(Serialize, ToSchema)]
struct QueueResponse {
    data: QueueItems,
}

#[derive(Serialize, ToSchema)]
struct QueueItems {
    /// The waiting items, oldest first.
    items: Vec<PendingBuild>,
}

#[derive(Serialize, ToSchema)]
struct CancelledResponse {
    data: Cancelled,
}

#[derive(Serialize, ToSchema)]
struct Cancelled {
    /// The queue ids cancelled.
    cancelled: Vec<u64>,
}

#[derive(Serialize, ToSchema)]
struct JobsResponse {
    data: JobStatuses,
}

#[derive(Serialize, ToSchema)]
struct JobStatuses {
    /// Every top-level job with its status (folders left out).
    jobs: Vec<JobStatus>,
}

#[derive(Serialize, ToSchema)]
struct QueuedResponse {
    data: Queued,
}

#[derive(Serialize, ToSchema)]
struct Queued {
    /// The queue item of the build (`GET /jenkins/queue` lists it while it waits).
    queue_id: u64,
}

/// The console of the newest build of `job` (`jenkins.default_job`, the original's `go-test`,
/// when absent): the original's route and answer, its defects fixed (admins only; a failure is an
/// error code, never an empty log).
#[utoipa::path(
    get,
    path = "/jenkins/index",
    tag = "jenkins",
    operation_id = "jenkinsIndex",
    params(BuildLogQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The log.", body = IndexResponse)),
)]
async fn index<M>(
    controller: Inject<M, dyn JenkinsController>,
    ValidatedQuery(query): ValidatedQuery<BuildLogQuery>,
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.index(query).await
}

/// A page of a build's console: from `start`, up to `jenkins.max_console_bytes`; while `more`
/// (the build still writes) ask again from `next_start`.
#[utoipa::path(
    get,
    path = "/jenkins/log",
    tag = "jenkins",
    operation_id = "jenkinsBuildLog",
    params(BuildLogQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The page.", body = Data<BuildLog>)),
)]
async fn log<M>(
    controller: Inject<M, dyn JenkinsController>,
    ValidatedQuery(query): ValidatedQuery<BuildLogQuery>,
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.log(query).await
}

/// The builds waiting in the queue (the original's pending queue ids, with why they wait).
#[utoipa::path(
    get,
    path = "/jenkins/queue",
    tag = "jenkins",
    operation_id = "jenkinsQueue",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The queue.", body = QueueResponse)),
)]
async fn queue<M>(
    controller: Inject<M, dyn JenkinsController>,
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.queue().await
}

/// A queue id in the path.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct QueuePath {
    /// The queue item.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    id: u64,
}

/// Cancels one waiting build.
#[utoipa::path(
    delete,
    path = "/jenkins/queue/{id}",
    tag = "jenkins",
    operation_id = "jenkinsCancel",
    params(QueuePath),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Cancelled.", body = CancelledResponse)),
)]
async fn cancel<M>(
    controller: Inject<M, dyn JenkinsController>,
    path: web::Path<QueuePath>,
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.cancel(path.id).await
}

/// Cancels every waiting build; an item that left the queue meanwhile is skipped.
#[utoipa::path(
    delete,
    path = "/jenkins/queue",
    tag = "jenkins",
    operation_id = "jenkinsCancelAll",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "What was cancelled.", body = CancelledResponse)),
)]
async fn cancel_all<M>(
    controller: Inject<M, dyn JenkinsController>,
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.cancel_all().await
}

/// The latest status of every top-level job: 1 the last build succeeded, 2 it failed, 0 never
/// built or other (the original's codes).
#[utoipa::path(
    get,
    path = "/jenkins/jobs",
    tag = "jenkins",
    operation_id = "jenkinsJobs",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The jobs.", body = JobsResponse)),
)]
async fn jobs<M>(
    controller: Inject<M, dyn JenkinsController>,
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.jobs().await
}

/// One job: its status (as `GET /jenkins/jobs`), the next build number and the last build.
#[utoipa::path(
    get,
    path = "/jenkins/job",
    tag = "jenkins",
    operation_id = "jenkinsJob",
    params(JobQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The job.", body = Data<JobDetail>)),
)]
async fn job<M>(
    controller: Inject<M, dyn JenkinsController>,
    ValidatedQuery(query): ValidatedQuery<JobQuery>,
    _admin: Admin<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.job(query).await
}

/// Creates a folder, and its missing parents (JSON or form body).
#[utoipa::path(
    post,
    path = "/jenkins/folders",
    tag = "jenkins",
    operation_id = "jenkinsCreateFolder",
    request_body(content(
        (FolderForm = "application/json"),
        (FolderForm = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = ["admin"])),
    responses((status = 201, description = "Created.", body = Data<JenkinsItem>)),
)]
async fn create_folder<M>(
    controller: Inject<M, dyn JenkinsController>,
    _admin: Admin<M>,
    ValidatedBody(form): ValidatedBody<FolderForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.create_folder(form).await
}

/// Creates a job in a folder from the template `assets/jenkins/job.xml` (a string parameter
/// `params1`, default `defaultVal`, as the original's).
#[utoipa::path(
    post,
    path = "/jenkins/jobs",
    tag = "jenkins",
    operation_id = "jenkinsCreateJob",
    request_body(content(
        (CreateJobForm = "application/json"),
        (CreateJobForm = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = ["admin"])),
    responses((status = 201, description = "Created.", body = Data<JenkinsItem>)),
)]
async fn create_job<M>(
    controller: Inject<M, dyn JenkinsController>,
    _admin: Admin<M>,
    ValidatedBody(form): ValidatedBody<CreateJobForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.create_job(form).await
}

/// Renames a job by full path (the original's `a/job/b/job/c` form accepted).
#[utoipa::path(
    post,
    path = "/jenkins/job/rename",
    tag = "jenkins",
    operation_id = "jenkinsRename",
    request_body(content(
        (RenameJobForm = "application/json"),
        (RenameJobForm = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Renamed.", body = Data<JenkinsItem>)),
)]
async fn rename<M>(
    controller: Inject<M, dyn JenkinsController>,
    _admin: Admin<M>,
    ValidatedBody(form): ValidatedBody<RenameJobForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.rename(form).await
}

/// Starts a build with parameters (JSON body): 202 with its queue id.
#[utoipa::path(
    post,
    path = "/jenkins/job/build",
    tag = "jenkins",
    operation_id = "jenkinsBuild",
    request_body(content((BuildJobForm = "application/json"))),
    security(("bearer" = ["admin"])),
    responses((status = 202, description = "Queued.", body = QueuedResponse)),
)]
async fn build<M>(
    controller: Inject<M, dyn JenkinsController>,
    _admin: Admin<M>,
    ValidatedBody(form): ValidatedBody<BuildJobForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface
        + HasComponent<dyn JenkinsController>
        + HasComponent<dyn AuthService>
        + ?Sized,
{
    controller.build(form).await
}

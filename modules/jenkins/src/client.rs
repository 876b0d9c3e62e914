//! The client's operations, one Jenkins endpoint (or a short walk over a few) each, named for
//! what they do; gojenkins' names are given where the original used them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::LOCATION;
use serde::Deserialize;

use crate::model::is_folder_class;
use crate::path::{split_job_path, url_path_of};
use crate::transport::{Body, Transport, header, json_of, next_poll, read_bytes_capped};
use crate::{
    Build, BuildRef, ConsoleChunk, Crumb, Folder, Info, JenkinsError, JenkinsSettings, Job,
    JobSummary, Node, Plugin, QueueItem, View, ViewSummary, queue_id_from_location,
};

/// The `mode` that makes `createItem` create a folder (the Folders plugin, `cloudbees-folder`).
pub const FOLDER_MODE: &str = "com.cloudbees.hudson.plugins.folder.Folder";

/// A Jenkins client: one connection pool, cookie jar and crumb, shared by its clones (cloning is
/// cheap).
#[derive(Clone)]
pub struct JenkinsClient {
    transport: Arc<Transport>,
}

impl std::fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("base", &self.transport.base)
            .field("username", &self.transport.username)
            .finish_non_exhaustive()
    }
}

/// A job's full path, split and checked once: its names, URL path and display form.
struct Item<'a> {
    names: Vec<&'a str>,
    path: String,
}

impl<'a> Item<'a> {
    fn parse(full_name: &'a str) -> Result<Self, JenkinsError> {
        let names = split_job_path(full_name)?;
        let path = url_path_of(&names);
        Ok(Item { names, path })
    }

    fn of(names: Vec<&'a str>) -> Self {
        let path = url_path_of(&names);
        Item { names, path }
    }

    fn full_name(&self) -> String {
        self.names.join("/")
    }

    fn name(&self) -> &'a str {
        self.names.last().copied().unwrap_or_default()
    }

    /// The parent's URL path: empty for the root.
    fn parent_path(&self) -> String {
        url_path_of(&self.names[..self.names.len() - 1])
    }

    fn sibling(&self, name: &'a str) -> Item<'a> {
        let mut names = self.names[..self.names.len() - 1].to_vec();
        names.push(name);
        Item::of(names)
    }

    fn what(&self, kind: &str) -> String {
        format!("{kind} {}", self.full_name())
    }
}

/// A single new item name: not empty, no `/`, not `.` or `..` (Jenkins checks the rest and says
/// what it refuses).
fn check_name(name: &str) -> Result<&str, JenkinsError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.contains('/') || trimmed == "." || trimmed == ".." {
        return Err(JenkinsError::InvalidName(name.to_owned()));
    }
    Ok(trimmed)
}

#[derive(Deserialize)]
struct QueueList {
    #[serde(default)]
    items: Vec<QueueItem>,
}

#[derive(Deserialize)]
struct ComputerList {
    #[serde(default)]
    computer: Vec<Node>,
}

#[derive(Deserialize)]
struct PluginList {
    #[serde(default)]
    plugins: Vec<Plugin>,
}

#[derive(Deserialize)]
struct BuildsOfJob {
    #[serde(default)]
    builds: Vec<BuildWithQueueId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildWithQueueId {
    number: u64,
    #[serde(default)]
    queue_id: i64,
}

impl JenkinsClient {
    /// A client of the Jenkins at `settings.host`. Nothing is sent until the first call, so this
    /// succeeds while Jenkins is down.
    ///
    /// # Errors
    /// [`JenkinsError::Settings`]: `host` is not an http(s) URL or carries credentials, a
    /// timeout or `max_console_bytes` is zero.
    pub fn new(settings: &JenkinsSettings) -> Result<Self, JenkinsError> {
        Ok(JenkinsClient {
            transport: Arc::new(Transport::new(settings)?),
        })
    }

    /// The base URL requests go under, without its trailing slash.
    pub fn base_url(&self) -> &str {
        &self.transport.base
    }

    // ---- the controller -------------------------------------------------------------------

    /// The controller: mode, executors, top-level jobs and views, and its version
    /// (`GET /api/json`; gojenkins' `Info`).
    ///
    /// # Errors
    /// Jenkins is unreachable, refuses the credentials, or answers something unreadable.
    pub async fn info(&self) -> Result<Info, JenkinsError> {
        const PATH: &str = "/api/json";
        let response = self.transport.get(PATH, &[], "the root").await?;
        let version = header(response.headers(), "X-Jenkins");
        let mut info: Info = json_of(response, PATH).await?;
        info.version = version;
        Ok(info)
    }

    /// Checks that Jenkins answers and accepts the credentials, with the smallest root query
    /// (gojenkins' `Poll`; for readiness checks).
    ///
    /// # Errors
    /// As [`JenkinsClient::info`].
    pub async fn poll(&self) -> Result<(), JenkinsError> {
        self.transport
            .get("/api/json", &[("tree", "mode")], "the root")
            .await
            .map(|_| ())
    }

    /// The CSRF crumb the next `POST` will carry, fetched from `/crumbIssuer/api/json` if not
    /// yet known; `None` when CSRF protection is off.
    ///
    /// # Errors
    /// Jenkins is unreachable or the crumb issuer refuses (401, 403).
    pub async fn crumb(&self) -> Result<Option<Crumb>, JenkinsError> {
        self.transport.crumb().await
    }

    // ---- the queue ------------------------------------------------------------------------

    /// The items waiting in the queue (`GET /queue/api/json`; gojenkins' `GetQueue`).
    ///
    /// # Errors
    /// Jenkins is unreachable, refuses, or answers something unreadable.
    pub async fn queue(&self) -> Result<Vec<QueueItem>, JenkinsError> {
        let list: QueueList = self
            .transport
            .get_json("/queue/api/json", &[], "the queue")
            .await?;
        Ok(list.items)
    }

    /// One queue item, waiting or left in the last few minutes (`GET /queue/item/N/api/json`;
    /// gojenkins' `GetQueueItem`).
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`] when Jenkins does not know it (any more); else as
    /// [`JenkinsClient::queue`].
    pub async fn queue_item(&self, id: u64) -> Result<QueueItem, JenkinsError> {
        self.transport
            .get_json(
                &format!("/queue/item/{id}/api/json"),
                &[],
                &format!("queue item {id}"),
            )
            .await
    }

    /// Cancels a waiting queue item (`POST /queue/cancelItem?id=N`; gojenkins' `CancelTask`).
    /// Jenkins answers 204 (before 2.2xx: a redirect, whether or not it was found).
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`] when no such item waits; a [`JenkinsError::Status`] when it
    /// cannot be cancelled (it has left the queue: 500 `Could not cancel run for id N`).
    pub async fn cancel_queue_item(&self, id: u64) -> Result<(), JenkinsError> {
        let id_text = id.to_string();
        self.transport
            .post(
                "/queue/cancelItem",
                &[("id", &id_text)],
                Body::Empty,
                &format!("queue item {id}"),
            )
            .await
            .map(|_| ())
    }

    /// Cancels every waiting queue item; the ids cancelled. An item that left the queue between
    /// the listing and its cancel is skipped (the original stopped at the first failure).
    ///
    /// # Errors
    /// The first failure other than an item gone.
    pub async fn cancel_all_queue_items(&self) -> Result<Vec<u64>, JenkinsError> {
        let mut cancelled = Vec::new();
        for item in self.queue().await? {
            match self.cancel_queue_item(item.id).await {
                Ok(()) => cancelled.push(item.id),
                Err(JenkinsError::NotFound(_)) => {}
                // Jenkins answers 500 "Could not cancel" for an item that started meanwhile.
                Err(e @ JenkinsError::Status { .. }) => match self.queue_item(item.id).await {
                    Ok(now) if now.has_left() => {}
                    Err(JenkinsError::NotFound(_)) => {}
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    // ---- jobs -----------------------------------------------------------------------------

    /// The top-level jobs and folders with their newest, last successful and last failed
    /// build numbers, in one request (`GET /api/json?tree=jobs[name,url,color,_class,
    /// lastBuild[number],...]`; gojenkins' `GetAllJobNames`).
    ///
    /// # Errors
    /// As [`JenkinsClient::info`].
    pub async fn jobs(&self) -> Result<Vec<JobSummary>, JenkinsError> {
        let info: Info = self
            .transport
            .get_json(
                "/api/json",
                &[(
                    "tree",
                    "jobs[name,url,color,_class,lastBuild[number,url],\
                     lastSuccessfulBuild[number,url],lastFailedBuild[number,url]]",
                )],
                "the root",
            )
            .await?;
        Ok(info.jobs)
    }

    /// The names of the top-level jobs and folders.
    ///
    /// # Errors
    /// As [`JenkinsClient::info`].
    pub async fn job_names(&self) -> Result<Vec<String>, JenkinsError> {
        Ok(self.jobs().await?.into_iter().map(|j| j.name).collect())
    }

    /// A job (or folder) by its full path, `a/b/c` or the original's `a/job/b/job/c`
    /// (`GET /job/a/job/b/job/c/api/json`; gojenkins' `GetJob`).
    ///
    /// # Errors
    /// [`JenkinsError::InvalidName`], [`JenkinsError::NotFound`]; else as
    /// [`JenkinsClient::info`].
    pub async fn job(&self, full_name: &str) -> Result<Job, JenkinsError> {
        let item = Item::parse(full_name)?;
        self.job_at(&item).await
    }

    async fn job_at(&self, item: &Item<'_>) -> Result<Job, JenkinsError> {
        self.transport
            .get_json(&format!("{}/api/json", item.path), &[], &item.what("job"))
            .await
    }

    /// The job `child` in the folder `parent` (gojenkins' `GetSubJob`).
    ///
    /// # Errors
    /// As [`JenkinsClient::job`].
    pub async fn sub_job(&self, parent: &str, child: &str) -> Result<Job, JenkinsError> {
        let mut names = split_job_path(parent)?;
        names.extend(split_job_path(child)?);
        self.job_at(&Item::of(names)).await
    }

    /// A job's `config.xml` (`GET /job/.../config.xml`).
    ///
    /// # Errors
    /// As [`JenkinsClient::job`].
    pub async fn job_config(&self, full_name: &str) -> Result<String, JenkinsError> {
        let item = Item::parse(full_name)?;
        let response = self
            .transport
            .get(&format!("{}/config.xml", item.path), &[], &item.what("job"))
            .await?;
        response
            .text()
            .await
            .map_err(|e| JenkinsError::Unreachable(format!("reading config.xml: {e}")))
    }

    /// Creates a job from its `config.xml` at `full_name`: in the root for a plain name, in the
    /// folder its path names otherwise (`POST [/job/F]/createItem?name=X`, the XML as
    /// `application/xml`; gojenkins' `CreateJob`). The new job.
    ///
    /// # Errors
    /// A [`JenkinsError::Status`] 400 with Jenkins's words when the name is taken
    /// (`A job already exists with the name ‘x’`) or the XML is refused;
    /// [`JenkinsError::NotFound`] when the folder does not exist.
    pub async fn create_job(&self, full_name: &str, config_xml: &str) -> Result<Job, JenkinsError> {
        self.create_job_at(Item::parse(full_name)?, config_xml)
            .await
    }

    async fn create_job_at(&self, item: Item<'_>, config_xml: &str) -> Result<Job, JenkinsError> {
        let name = check_name(item.name())?;
        let parent = item.parent_path();
        self.transport
            .post(
                &format!("{parent}/createItem"),
                &[("name", name)],
                Body::Xml(config_xml.to_owned()),
                &format!("folder {}", item.names[..item.names.len() - 1].join("/")),
            )
            .await?;
        self.job_at(&item).await
    }

    /// Creates the job `name` in the folder `folder` (a full path) from its `config.xml`
    /// (`POST /job/F/createItem?name=X`; gojenkins' `CreateJobInFolder`). The new job.
    ///
    /// # Errors
    /// As [`JenkinsClient::create_job`].
    pub async fn create_job_in_folder(
        &self,
        folder: &str,
        name: &str,
        config_xml: &str,
    ) -> Result<Job, JenkinsError> {
        let name = check_name(name)?;
        let mut names = split_job_path(folder)?;
        names.push(name);
        // The names as split: joined and parsed again, a folder ending in `job` would read as
        // the original's path form.
        self.create_job_at(Item::of(names), config_xml).await
    }

    /// Replaces a job's `config.xml` (`POST /job/.../config.xml`; gojenkins' `UpdateJob`).
    ///
    /// # Errors
    /// As [`JenkinsClient::job`]; a [`JenkinsError::Status`] when Jenkins refuses the XML.
    pub async fn update_job_config(
        &self,
        full_name: &str,
        config_xml: &str,
    ) -> Result<(), JenkinsError> {
        let item = Item::parse(full_name)?;
        self.transport
            .post(
                &format!("{}/config.xml", item.path),
                &[],
                Body::Xml(config_xml.to_owned()),
                &item.what("job"),
            )
            .await
            .map(|_| ())
    }

    /// Renames a job in its folder: `a/b/old` → `a/b/new_name`
    /// (`POST /job/a/job/b/job/old/doRename?newName=new_name`; gojenkins' `RenameJob`). The job
    /// under its new name.
    ///
    /// # Errors
    /// As [`JenkinsClient::job`]; a [`JenkinsError::Status`] when the new name is taken or
    /// refused.
    pub async fn rename_job(&self, full_name: &str, new_name: &str) -> Result<Job, JenkinsError> {
        let item = Item::parse(full_name)?;
        let new_name = check_name(new_name)?;
        self.transport
            .post(
                &format!("{}/doRename", item.path),
                &[("newName", new_name)],
                Body::Empty,
                &item.what("job"),
            )
            .await?;
        self.job_at(&item.sibling(new_name)).await
    }

    /// Copies a job into the same folder under `new_name`
    /// (`POST [/job/F]/createItem?name=NEW&mode=copy&from=OLD`; gojenkins' `CopyJob`). The
    /// copy.
    ///
    /// Jenkins holds a copy back from building until its configuration is saved once; the copy's
    /// `config.xml` is saved back here, so the copy can be built at once.
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`] for a missing folder; a [`JenkinsError::Status`] when the
    /// source is missing or the name is taken (Jenkins says which).
    pub async fn copy_job(
        &self,
        from_full_name: &str,
        new_name: &str,
    ) -> Result<Job, JenkinsError> {
        let from = Item::parse(from_full_name)?;
        let new_name = check_name(new_name)?;
        self.transport
            .post(
                &format!("{}/createItem", from.parent_path()),
                &[("name", new_name), ("mode", "copy"), ("from", from.name())],
                Body::Empty,
                &format!("folder of {}", from.full_name()),
            )
            .await?;
        let copy = from.sibling(new_name);
        let copy_name = copy.full_name();
        let config = self.job_config(&copy_name).await?;
        self.update_job_config(&copy_name, &config).await?;
        self.job_at(&copy).await
    }

    /// Deletes a job or folder, with everything in it (`POST /job/.../doDelete`; gojenkins'
    /// `DeleteJob`).
    ///
    /// # Errors
    /// As [`JenkinsClient::job`].
    pub async fn delete_job(&self, full_name: &str) -> Result<(), JenkinsError> {
        let item = Item::parse(full_name)?;
        self.transport
            .post(
                &format!("{}/doDelete", item.path),
                &[],
                Body::Empty,
                &item.what("job"),
            )
            .await
            .map(|_| ())
    }

    // ---- builds ---------------------------------------------------------------------------

    /// Queues a build of the job with `params` (form fields); the queue item id, from the
    /// `Location: …/queue/item/N/` Jenkins answers with (gojenkins' `BuildJob`). Without
    /// parameters, a job that defines some is built with their defaults
    /// (`buildWithParameters`), one that defines none with `build`: Jenkins refuses the other
    /// way round.
    ///
    /// Jenkins gives an identical request for a job already waiting in the queue the id of the
    /// waiting item.
    ///
    /// # Errors
    /// As [`JenkinsClient::job`]; a [`JenkinsError::Status`] 409 for a disabled job, 400 for
    /// parameters to a job without any; [`JenkinsError::BadResponse`] without a queue item in the
    /// answer.
    pub async fn build_job(
        &self,
        full_name: &str,
        params: &[(&str, &str)],
    ) -> Result<u64, JenkinsError> {
        let item = Item::parse(full_name)?;
        let with_parameters = !params.is_empty() || {
            let job: Job = self
                .transport
                .get_json(
                    &format!("{}/api/json", item.path),
                    &[("tree", "property[parameterDefinitions[name]]")],
                    &item.what("job"),
                )
                .await?;
            job.is_parameterized()
        };
        let endpoint = if with_parameters {
            "buildWithParameters"
        } else {
            "build"
        };
        let form = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let response = self
            .transport
            .post(
                &format!("{}/{endpoint}", item.path),
                &[],
                Body::Form(form),
                &item.what("job"),
            )
            .await?;
        let location = header(response.headers(), LOCATION).unwrap_or_default();
        queue_id_from_location(&location).ok_or_else(|| {
            JenkinsError::BadResponse(format!(
                "{endpoint} of {}: no queue item in the answer ({} Location: {location:?})",
                item.full_name(),
                response.status().as_u16()
            ))
        })
    }

    /// A build of the job (`GET /job/.../N/api/json`; gojenkins' `GetBuild`).
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`] when the job or the build does not exist.
    pub async fn build(&self, full_name: &str, number: u64) -> Result<Build, JenkinsError> {
        let item = Item::parse(full_name)?;
        self.transport
            .get_json(
                &format!("{}/{number}/api/json", item.path),
                &[],
                &format!("build {number} of {}", item.what("job")),
            )
            .await
    }

    /// The job's newest build, finished or not; `None` when it was never built
    /// (`GET /job/.../lastBuild/api/json`).
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`] when the job does not exist.
    pub async fn last_build(&self, full_name: &str) -> Result<Option<Build>, JenkinsError> {
        let item = Item::parse(full_name)?;
        let last = self
            .transport
            .get_json(
                &format!("{}/lastBuild/api/json", item.path),
                &[],
                &item.what("job"),
            )
            .await;
        match last {
            Ok(build) => Ok(Some(build)),
            // Jenkins answers 404 for a job never built and for no job at all: ask which.
            Err(JenkinsError::NotFound(_)) => {
                self.transport
                    .get(
                        &format!("{}/api/json", item.path),
                        &[("tree", "name")],
                        &item.what("job"),
                    )
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The job's recent builds, newest first (`GET /job/.../api/json?tree=builds[number,url]`;
    /// gojenkins' `GetAllBuildIds`).
    ///
    /// # Errors
    /// As [`JenkinsClient::job`].
    pub async fn builds(&self, full_name: &str) -> Result<Vec<BuildRef>, JenkinsError> {
        let item = Item::parse(full_name)?;
        let job: Job = self
            .transport
            .get_json(
                &format!("{}/api/json", item.path),
                &[("tree", "builds[number,url]")],
                &item.what("job"),
            )
            .await?;
        Ok(job.builds)
    }

    /// The number of the build the queue item `queue_id` (of the job) became, waiting at most
    /// `within` for it to start (gojenkins' `GetBuildFromQueueID`). The item is polled (100 ms,
    /// doubling to 1 s) until it names its build; when Jenkins has forgotten the item (it keeps
    /// left items about five minutes) the job's recent builds are searched for its queue id.
    ///
    /// # Errors
    /// [`JenkinsError::Cancelled`] when the item was cancelled; [`JenkinsError::NotStarted`]
    /// when it still waits at the deadline; [`JenkinsError::NotFound`] when neither the queue
    /// nor the job's builds know it; else as [`JenkinsClient::queue_item`].
    pub async fn wait_for_build(
        &self,
        full_name: &str,
        queue_id: u64,
        within: Duration,
    ) -> Result<u64, JenkinsError> {
        let item = Item::parse(full_name)?;
        let started = Instant::now();
        let mut pause = Duration::ZERO;
        loop {
            let why = match self.queue_item(queue_id).await {
                Ok(queued) => {
                    if let Some(build) = &queued.executable {
                        return Ok(build.number);
                    }
                    if queued.cancelled == Some(true) {
                        return Err(JenkinsError::Cancelled(queue_id));
                    }
                    queued.why.unwrap_or_default()
                }
                Err(JenkinsError::NotFound(_)) => {
                    return match self.build_of_queue_id(&item, queue_id).await? {
                        Some(number) => Ok(number),
                        None => Err(JenkinsError::NotFound(format!(
                            "queue item {queue_id} (not in the queue, and no recent build of {} came from it)",
                            item.what("job")
                        ))),
                    };
                }
                Err(e) => return Err(e),
            };
            let waited = started.elapsed();
            if waited >= within {
                return Err(JenkinsError::NotStarted {
                    queue_id,
                    waited,
                    why,
                });
            }
            pause = next_poll(pause).min(within - waited);
            tokio::time::sleep(pause).await;
        }
    }

    async fn build_of_queue_id(
        &self,
        item: &Item<'_>,
        queue_id: u64,
    ) -> Result<Option<u64>, JenkinsError> {
        let job: BuildsOfJob = self
            .transport
            .get_json(
                &format!("{}/api/json", item.path),
                &[("tree", "builds[number,queueId]")],
                &item.what("job"),
            )
            .await?;
        Ok(job
            .builds
            .into_iter()
            .find(|b| u64::try_from(b.queue_id) == Ok(queue_id))
            .map(|b| b.number))
    }

    /// The build's console text from offset `start` (0 for the beginning), at most
    /// `max_console_bytes` of it (`GET /job/.../N/logText/progressiveText?start=K`; gojenkins'
    /// `GetConsoleOutputFromIndex`). While [`ConsoleChunk::more`], call again with
    /// [`ConsoleChunk::next_start`] to follow a running build.
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`] when the job or build does not exist; else as
    /// [`JenkinsClient::info`].
    pub async fn console_text(
        &self,
        full_name: &str,
        number: u64,
        start: u64,
    ) -> Result<ConsoleChunk, JenkinsError> {
        let item = Item::parse(full_name)?;
        let start_text = start.to_string();
        let response = self
            .transport
            .get(
                &format!("{}/{number}/logText/progressiveText", item.path),
                &[("start", &start_text)],
                &format!("build {number} of {}", item.what("job")),
            )
            .await?;
        let text_size = header(response.headers(), "X-Text-Size").and_then(|v| v.parse().ok());
        let more = header(response.headers(), "X-More-Data")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (bytes, truncated) =
            read_bytes_capped(response, self.transport.max_console_bytes).await?;
        let next_start = text_size.unwrap_or(start + bytes.len() as u64);
        Ok(ConsoleChunk {
            text: utf8_prefix(&bytes, truncated),
            next_start,
            more,
            truncated,
        })
    }

    /// The console text of the job's newest build from its beginning; `None` when the job was
    /// never built (the original's `GetJobLastBuildLog`, behind `GET /jenkins/index`).
    ///
    /// # Errors
    /// As [`JenkinsClient::last_build`] and [`JenkinsClient::console_text`].
    pub async fn last_build_console(
        &self,
        full_name: &str,
    ) -> Result<Option<ConsoleChunk>, JenkinsError> {
        match self.last_build(full_name).await? {
            Some(build) => Ok(Some(self.console_text(full_name, build.number, 0).await?)),
            None => Ok(None),
        }
    }

    // ---- folders --------------------------------------------------------------------------

    /// A folder by its full path (`GET /job/.../api/json`; gojenkins' `GetFolder`).
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`] when there is no such item, or it is not a folder.
    pub async fn folder(&self, full_name: &str) -> Result<Folder, JenkinsError> {
        let item = Item::parse(full_name)?;
        self.folder_at(&item).await
    }

    async fn folder_at(&self, item: &Item<'_>) -> Result<Folder, JenkinsError> {
        let folder: Folder = self
            .transport
            .get_json(
                &format!("{}/api/json", item.path),
                &[],
                &item.what("folder"),
            )
            .await?;
        if !is_folder_class(&folder.class) {
            return Err(JenkinsError::NotFound(format!(
                "{} (it is a {})",
                item.what("folder"),
                folder.class
            )));
        }
        Ok(folder)
    }

    /// Creates the folder `full_name` (`a/b/c`), creating first each of its ancestors that is
    /// missing, in order (`POST [/job/PARENT]/createItem` with the Folders plugin's form;
    /// gojenkins' `CreateFolder`, which needed the parents to exist). The new folder.
    ///
    /// # Errors
    /// A [`JenkinsError::Status`] 400 when `full_name` itself exists (Jenkins's words), or when
    /// Jenkins has no Folders plugin; else as [`JenkinsClient::info`].
    pub async fn create_folder(&self, full_name: &str) -> Result<Folder, JenkinsError> {
        let item = Item::parse(full_name)?;
        check_name(item.name())?;
        for depth in 1..item.names.len() {
            let ancestor = Item::of(item.names[..depth].to_vec());
            if self.exists(&ancestor).await? {
                continue;
            }
            if let Err(e) = self.create_folder_at(&ancestor).await {
                // Another client may have made it meanwhile.
                if !self.exists(&ancestor).await? {
                    return Err(e);
                }
            }
        }
        self.create_folder_at(&item).await?;
        self.folder_at(&item).await
    }

    async fn exists(&self, item: &Item<'_>) -> Result<bool, JenkinsError> {
        match self
            .transport
            .get(
                &format!("{}/api/json", item.path),
                &[("tree", "name")],
                &item.what("item"),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(JenkinsError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn create_folder_at(&self, item: &Item<'_>) -> Result<(), JenkinsError> {
        let name = item.name();
        let json = serde_json::json!({ "name": name, "mode": FOLDER_MODE }).to_string();
        let form = vec![
            ("name".to_owned(), name.to_owned()),
            ("mode".to_owned(), FOLDER_MODE.to_owned()),
            ("from".to_owned(), String::new()),
            ("json".to_owned(), json),
            ("Submit".to_owned(), "OK".to_owned()),
        ];
        let parent = item.parent_path();
        self.transport
            .post(
                &format!("{parent}/createItem"),
                &[],
                Body::Form(form),
                &format!("folder {}", item.names[..item.names.len() - 1].join("/")),
            )
            .await
            .map(|_| ())
    }

    // ---- nodes, views, plugins --------------------------------------------------------------

    /// The nodes, the built-in one first (`GET /computer/api/json`; gojenkins' `GetAllNodes`).
    ///
    /// # Errors
    /// As [`JenkinsClient::info`].
    pub async fn nodes(&self) -> Result<Vec<Node>, JenkinsError> {
        let list: ComputerList = self
            .transport
            .get_json("/computer/api/json", &[], "the nodes")
            .await?;
        Ok(list.computer)
    }

    /// One node by name: `(built-in)` for the controller's own (`(master)` before 2.307)
    /// (`GET /computer/NAME/api/json`; gojenkins' `GetNode`).
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`]; else as [`JenkinsClient::info`].
    pub async fn node(&self, name: &str) -> Result<Node, JenkinsError> {
        self.transport
            .get_json(
                &format!("/computer/{}/api/json", crate::path::encode(name)),
                &[],
                &format!("node {name}"),
            )
            .await
    }

    /// The top-level views (`GET /api/json?tree=views[name,url,_class]`; gojenkins'
    /// `GetAllViews`).
    ///
    /// # Errors
    /// As [`JenkinsClient::info`].
    pub async fn views(&self) -> Result<Vec<ViewSummary>, JenkinsError> {
        let info: Info = self
            .transport
            .get_json(
                "/api/json",
                &[("tree", "views[name,url,_class]")],
                "the root",
            )
            .await?;
        Ok(info.views)
    }

    /// One view with its jobs (`GET /view/NAME/api/json`; gojenkins' `GetView`).
    ///
    /// # Errors
    /// [`JenkinsError::NotFound`]; else as [`JenkinsClient::info`].
    pub async fn view(&self, name: &str) -> Result<View, JenkinsError> {
        self.transport
            .get_json(
                &format!("/view/{}/api/json", crate::path::encode(name)),
                &[],
                &format!("view {name}"),
            )
            .await
    }

    /// The installed plugins (`GET /pluginManager/api/json?depth=1`; gojenkins' `GetPlugins`).
    ///
    /// # Errors
    /// As [`JenkinsClient::info`].
    pub async fn plugins(&self) -> Result<Vec<Plugin>, JenkinsError> {
        let list: PluginList = self
            .transport
            .get_json("/pluginManager/api/json", &[("depth", "1")], "the plugins")
            .await?;
        Ok(list.plugins)
    }

    /// The installed plugin with this short name (`cloudbees-folder`), if any (gojenkins'
    /// `HasPlugin`).
    ///
    /// # Errors
    /// As [`JenkinsClient::plugins`].
    pub async fn plugin(&self, short_name: &str) -> Result<Option<Plugin>, JenkinsError> {
        Ok(self
            .plugins()
            .await?
            .into_iter()
            .find(|p| p.short_name == short_name))
    }
}

/// The bytes as text; when `cut`, a character split by the cut is dropped rather than replaced.
fn utf8_prefix(bytes: &[u8], cut: bool) -> String {
    let end = match std::str::from_utf8(bytes) {
        Err(e) if cut && e.error_len().is_none() => e.valid_up_to(),
        _ => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_know_their_parent_and_siblings() {
        let item = Item::parse("a/job/b/job/c").unwrap();
        assert_eq!(item.full_name(), "a/b/c");
        assert_eq!(item.path, "/job/a/job/b/job/c");
        assert_eq!(item.parent_path(), "/job/a/job/b");
        assert_eq!(item.sibling("d e").path, "/job/a/job/b/job/d%20e");
        assert_eq!(Item::parse("top").unwrap().parent_path(), "");
        assert_eq!(item.what("job"), "job a/b/c");
    }

    #[test]
    fn new_names_are_single_names() {
        assert_eq!(check_name(" x ").unwrap(), "x");
        for bad in ["", " ", "a/b", ".", ".."] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cut_console_drops_the_split_character() {
        let text = "ab\u{e9}".as_bytes();
        assert_eq!(utf8_prefix(&text[..3], true), "ab");
        assert_eq!(utf8_prefix(text, false), "ab\u{e9}");
        assert_eq!(utf8_prefix(b"a\xffb", true), "a\u{fffd}b");
    }
}

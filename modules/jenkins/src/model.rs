//! What Jenkins answers, typed: the fields the application reads, in Jenkins's names. Unknown
//! fields are ignored, missing ones take their default (a `tree=` query leaves most out), and
//! those Jenkins sends as `null` are `Option`s.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The controller (`GET /api/json`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Info {
    /// `hudson.model.Hudson`.
    #[serde(rename = "_class")]
    pub class: String,
    /// `NORMAL` or `EXCLUSIVE`.
    pub mode: String,
    /// The built-in node's name (empty).
    pub node_name: String,
    /// The built-in node's description.
    pub node_description: Option<String>,
    /// Executors on the built-in node.
    pub num_executors: u32,
    /// The system message.
    pub description: Option<String>,
    /// The top-level jobs and folders.
    pub jobs: Vec<JobSummary>,
    /// The top-level views.
    pub views: Vec<ViewSummary>,
    /// The view shown first.
    pub primary_view: Option<ViewSummary>,
    /// Whether Jenkins is preparing to shut down (no new builds start).
    pub quieting_down: bool,
    /// Whether security is enabled.
    pub use_security: bool,
    /// Whether CSRF crumbs are required.
    pub use_crumbs: bool,
    /// The configured root URL.
    pub url: Option<String>,
    /// The version, from the `X-Jenkins` header of the answer.
    #[serde(skip)]
    pub version: Option<String>,
}

/// A job or folder as listed in its parent (`jobs[name,url,color,_class]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobSummary {
    /// `hudson.model.FreeStyleProject`, `com.cloudbees.hudson.plugins.folder.Folder`, ...
    #[serde(rename = "_class")]
    pub class: String,
    /// The name in its folder.
    pub name: String,
    /// The absolute URL.
    pub url: String,
    /// The ball colour: `blue`, `red`, `yellow`, `notbuilt`, `disabled`, `aborted`, with
    /// `_anime` while building; none for folders.
    pub color: Option<String>,
    /// The newest build (listings from [`crate::JenkinsClient::jobs`]); none for folders and
    /// jobs never built.
    pub last_build: Option<BuildRef>,
    /// The newest successful build (unstable ones count, as in Jenkins).
    pub last_successful_build: Option<BuildRef>,
    /// The newest failed build.
    pub last_failed_build: Option<BuildRef>,
}

impl JobSummary {
    /// How the last build went, as [`Job::outcome`] tells it.
    pub fn outcome(&self) -> JobOutcome {
        outcome_of(
            &self.last_build,
            &self.last_successful_build,
            &self.last_failed_build,
        )
    }

    /// Whether this is a folder (the Folders plugin's, or another item group).
    pub fn is_folder(&self) -> bool {
        is_folder_class(&self.class)
    }
}

pub(crate) fn is_folder_class(class: &str) -> bool {
    class.ends_with(".Folder") || class.ends_with("OrganizationFolder")
}

/// A build as a job refers to it (`lastBuild`, `builds`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BuildRef {
    /// The build number.
    pub number: u64,
    /// The absolute URL.
    pub url: String,
}

/// A job (`GET /job/.../api/json`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    /// `hudson.model.FreeStyleProject`, `org.jenkinsci.plugins.workflow.job.WorkflowJob`, ...
    #[serde(rename = "_class")]
    pub class: String,
    /// The name in its folder.
    pub name: String,
    /// The full path, `folder/job`.
    pub full_name: String,
    /// The display name.
    pub display_name: String,
    /// The absolute URL.
    pub url: String,
    /// The description.
    pub description: Option<String>,
    /// The ball colour (see [`JobSummary::color`]).
    pub color: Option<String>,
    /// Whether it can be built (not disabled).
    pub buildable: bool,
    /// Whether a build of it is waiting in the queue.
    pub in_queue: bool,
    /// The number the next build will get.
    pub next_build_number: u64,
    /// The newest build, finished or not; `None` when never built.
    pub last_build: Option<BuildRef>,
    /// The newest finished build.
    pub last_completed_build: Option<BuildRef>,
    /// The newest successful build.
    pub last_successful_build: Option<BuildRef>,
    /// The newest failed build.
    pub last_failed_build: Option<BuildRef>,
    /// The newest stable build.
    pub last_stable_build: Option<BuildRef>,
    /// The newest unstable build.
    pub last_unstable_build: Option<BuildRef>,
    /// The recent builds, newest first.
    pub builds: Vec<BuildRef>,
    /// The job's properties; [`Job::parameters`] reads the parameter definitions from them.
    pub property: Vec<JobProperty>,
}

/// A job property; only `parameterDefinitions` is read (`hudson.model.ParametersDefinitionProperty`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobProperty {
    /// The property's class.
    #[serde(rename = "_class")]
    pub class: String,
    /// The build parameters it defines.
    pub parameter_definitions: Vec<ParameterDefinition>,
}

/// One build parameter of a job.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParameterDefinition {
    /// The parameter's name (`params1`).
    pub name: String,
    /// `StringParameterDefinition`, `BooleanParameterDefinition`, `ChoiceParameterDefinition`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Its description.
    pub description: Option<String>,
    /// The value a build gets when none is given.
    pub default_parameter_value: Option<ParameterValue>,
}

/// A parameter's value (`{"name": "params1", "value": "defaultVal"}`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ParameterValue {
    /// The parameter's name.
    pub name: String,
    /// The value: a string, a boolean, ...
    pub value: serde_json::Value,
}

/// The original's job status (`getJobStatus`: 0, 1, 2), from which build the last one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Never built (the original's 0).
    NeverBuilt,
    /// The last build is the last successful one (the original's 1).
    Succeeded,
    /// The last build is the last failed one (the original's 2).
    Failed,
    /// Building, unstable, aborted or not built (the original's 0).
    Other,
}

impl Job {
    /// The build parameters the job defines (empty for a job without parameters).
    pub fn parameters(&self) -> impl Iterator<Item = &ParameterDefinition> {
        self.property
            .iter()
            .flat_map(|p| p.parameter_definitions.iter())
    }

    /// Whether the job takes parameters: it must then be built with `buildWithParameters`.
    pub fn is_parameterized(&self) -> bool {
        self.parameters().next().is_some()
    }

    /// Whether this item is a folder.
    pub fn is_folder(&self) -> bool {
        is_folder_class(&self.class)
    }

    /// How the last build went, as the original's `getJobStatus` told it.
    pub fn outcome(&self) -> JobOutcome {
        outcome_of(
            &self.last_build,
            &self.last_successful_build,
            &self.last_failed_build,
        )
    }
}

/// The original's status from a job's newest, last successful and last failed builds.
fn outcome_of(
    last: &Option<BuildRef>,
    successful: &Option<BuildRef>,
    failed: &Option<BuildRef>,
) -> JobOutcome {
    let number = |b: &Option<BuildRef>| b.as_ref().map(|b| b.number);
    match number(last) {
        None | Some(0) => JobOutcome::NeverBuilt,
        n if n == number(successful) => JobOutcome::Succeeded,
        n if n == number(failed) => JobOutcome::Failed,
        _ => JobOutcome::Other,
    }
}

/// How a finished build ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildResult {
    /// `SUCCESS`.
    Success,
    /// `UNSTABLE` (tests failed).
    Unstable,
    /// `FAILURE`.
    Failure,
    /// `NOT_BUILT`.
    NotBuilt,
    /// `ABORTED`.
    Aborted,
    /// A result this client does not know.
    #[serde(other)]
    Unknown,
}

/// A build (`GET /job/.../N/api/json`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Build {
    /// `hudson.model.FreeStyleBuild`, `org.jenkinsci.plugins.workflow.job.WorkflowRun`, ...
    #[serde(rename = "_class")]
    pub class: String,
    /// The build number.
    pub number: u64,
    /// The absolute URL.
    pub url: String,
    /// `#12`, or the name given to it.
    pub display_name: String,
    /// `folder » job #12`.
    pub full_display_name: String,
    /// The description.
    pub description: Option<String>,
    /// The result; `None` while building.
    pub result: Option<BuildResult>,
    /// Whether it is still running.
    pub building: bool,
    /// How long it took, in milliseconds (0 while building).
    pub duration: u64,
    /// How long Jenkins expects it to take, in milliseconds (-1 when unknown).
    pub estimated_duration: i64,
    /// When it was scheduled, in milliseconds since the epoch.
    pub timestamp: i64,
    /// The queue item it came from.
    pub queue_id: i64,
    /// The node it ran on (empty for the built-in node).
    pub built_on: Option<String>,
}

/// The task of a queue item: the job to build.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueTask {
    /// The job's name.
    pub name: String,
    /// The job's absolute URL.
    pub url: String,
    /// The job's ball colour.
    pub color: Option<String>,
}

/// A queue item (`/queue/api/json` lists the waiting ones; `/queue/item/N/api/json` also knows
/// those that left the queue in the last few minutes).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueItem {
    /// `hudson.model.Queue$WaitingItem`, `$BlockedItem`, `$BuildableItem`, `$LeftItem`.
    #[serde(rename = "_class")]
    pub class: String,
    /// The queue id.
    pub id: u64,
    /// The job to build.
    pub task: QueueTask,
    /// Why it is still waiting (`In the quiet period. Expires in 4.9 sec`).
    pub why: Option<String>,
    /// Whether it waits for another build (of a job that does not build concurrently).
    pub blocked: bool,
    /// Whether it waits only for an executor.
    pub buildable: bool,
    /// Whether it waits for an executor none of the nodes can offer.
    pub stuck: bool,
    /// For an item that left the queue: whether it was cancelled.
    pub cancelled: Option<bool>,
    /// For an item that left the queue as a build: that build.
    pub executable: Option<BuildRef>,
    /// When it entered the queue, in milliseconds since the epoch.
    pub in_queue_since: i64,
    /// The build parameters, one `name=value` a line.
    pub params: Option<String>,
    /// `queue/item/N/`, relative to the root.
    pub url: String,
}

impl QueueItem {
    /// Whether it left the queue (started as a build or was cancelled).
    pub fn has_left(&self) -> bool {
        self.class.ends_with("$LeftItem") || self.cancelled.is_some() || self.executable.is_some()
    }
}

/// A folder (`GET /job/.../api/json` of a `com.cloudbees.hudson.plugins.folder.Folder`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Folder {
    /// `com.cloudbees.hudson.plugins.folder.Folder`.
    #[serde(rename = "_class")]
    pub class: String,
    /// The name in its parent.
    pub name: String,
    /// The full path.
    pub full_name: String,
    /// The display name.
    pub display_name: String,
    /// The absolute URL.
    pub url: String,
    /// The description.
    pub description: Option<String>,
    /// The jobs and folders in it.
    pub jobs: Vec<JobSummary>,
}

/// A node, the built-in one included (`/computer/api/json`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Node {
    /// `hudson.model.Hudson$MasterComputer`, `hudson.slaves.SlaveComputer`, ...
    #[serde(rename = "_class")]
    pub class: String,
    /// `Built-In Node` or the agent's name.
    pub display_name: String,
    /// The description.
    pub description: Option<String>,
    /// Whether no executor is busy.
    pub idle: bool,
    /// Whether it is offline.
    pub offline: bool,
    /// Whether it was taken offline by hand.
    pub temporarily_offline: bool,
    /// Its executors.
    pub num_executors: u32,
    /// Why it is offline, when it is.
    pub offline_cause_reason: Option<String>,
}

/// A view as listed (`views[name,url]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ViewSummary {
    /// `hudson.model.AllView`, `hudson.model.ListView`, ...
    #[serde(rename = "_class")]
    pub class: String,
    /// The name (`all`).
    pub name: String,
    /// The absolute URL.
    pub url: String,
}

/// A view (`GET /view/NAME/api/json`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct View {
    /// `hudson.model.AllView`, `hudson.model.ListView`, ...
    #[serde(rename = "_class")]
    pub class: String,
    /// The name.
    pub name: String,
    /// The absolute URL.
    pub url: String,
    /// The description.
    pub description: Option<String>,
    /// The jobs it shows.
    pub jobs: Vec<JobSummary>,
}

/// An installed plugin (`/pluginManager/api/json?depth=1`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Plugin {
    /// The id, `cloudbees-folder`.
    pub short_name: String,
    /// The display name, `Folders Plugin`.
    pub long_name: String,
    /// The installed version.
    pub version: String,
    /// Whether it is loaded.
    pub active: bool,
    /// Whether it is enabled (takes effect at restart).
    pub enabled: bool,
    /// Whether an update is available.
    pub has_update: bool,
    /// Whether it is marked for removal.
    pub deleted: bool,
    /// Its home page.
    pub url: Option<String>,
}

/// A piece of a build's console (`logText/progressiveText`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsoleChunk {
    /// The text from the requested offset, at most `max_console_bytes` of it (cut at a character
    /// boundary; invalid UTF-8 replaced).
    pub text: String,
    /// Where the next read starts (`X-Text-Size`, an offset Jenkins defines: pass it back as it
    /// is). When [`ConsoleChunk::truncated`], reading from here skips the part not read.
    pub next_start: u64,
    /// Whether the build is still writing (`X-More-Data: true`): read again from `next_start`.
    pub more: bool,
    /// Whether the answer held more than `max_console_bytes` and the rest was not read.
    pub truncated: bool,
}

/// A CSRF crumb (`/crumbIssuer/api/json`): the header to send and its value. The value is kept
/// out of `Debug`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Crumb {
    /// The header (or form field) that carries it, `Jenkins-Crumb`.
    pub crumb_request_field: String,
    crumb: SecretString,
}

impl Crumb {
    /// The crumb itself.
    pub fn value(&self) -> &str {
        self.crumb.expose_secret()
    }
}

impl std::fmt::Debug for Crumb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crumb")
            .field("crumb_request_field", &self.crumb_request_field)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reads_with_nulls_and_unknown_fields() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "_class": "hudson.model.FreeStyleProject",
            "actions": [{}], "description": null, "displayName": "go-test",
            "fullName": "f/go-test", "name": "go-test", "url": "http://h/job/f/job/go-test/",
            "buildable": true, "builds": [{"_class": "x", "number": 2, "url": "u2"}],
            "color": "blue_anime", "inQueue": false, "nextBuildNumber": 3,
            "lastBuild": {"number": 2, "url": "u2"}, "lastFailedBuild": null,
            "lastSuccessfulBuild": {"number": 2, "url": "u2"},
            "property": [{"_class": "hudson.model.ParametersDefinitionProperty",
                "parameterDefinitions": [{"_class": "hudson.model.StringParameterDefinition",
                    "defaultParameterValue": {"_class": "x", "name": "params1", "value": "defaultVal"},
                    "description": null, "name": "params1", "type": "StringParameterDefinition"}]},
                {"_class": "other"}]
        }))
        .unwrap();
        assert_eq!(job.full_name, "f/go-test");
        assert_eq!(job.last_build.as_ref().unwrap().number, 2);
        assert!(job.last_failed_build.is_none());
        assert!(job.is_parameterized());
        let p = job.parameters().next().unwrap();
        assert_eq!(p.name, "params1");
        assert_eq!(
            p.default_parameter_value.as_ref().unwrap().value,
            "defaultVal"
        );
        assert_eq!(job.outcome(), JobOutcome::Succeeded);
    }

    #[test]
    fn outcomes_follow_the_originals_rule() {
        let b = |n| {
            Some(BuildRef {
                number: n,
                url: String::new(),
            })
        };
        let mut job = Job::default();
        assert_eq!(job.outcome(), JobOutcome::NeverBuilt);
        job.last_build = b(3);
        job.last_failed_build = b(3);
        job.last_successful_build = b(2);
        assert_eq!(job.outcome(), JobOutcome::Failed);
        job.last_failed_build = b(1);
        assert_eq!(job.outcome(), JobOutcome::Other);
    }

    #[test]
    fn build_results_and_queue_items_read() {
        let build: Build = serde_json::from_value(serde_json::json!({
            "number": 4, "result": null, "building": true, "queueId": 17, "duration": 0,
            "timestamp": 1700000000000_i64, "url": "u", "estimatedDuration": -1
        }))
        .unwrap();
        assert_eq!(build.result, None);
        assert_eq!(build.queue_id, 17);
        for (text, result) in [
            ("SUCCESS", BuildResult::Success),
            ("FAILURE", BuildResult::Failure),
            ("UNSTABLE", BuildResult::Unstable),
            ("ABORTED", BuildResult::Aborted),
            ("NOT_BUILT", BuildResult::NotBuilt),
            ("SOMETHING_NEW", BuildResult::Unknown),
        ] {
            assert_eq!(
                serde_json::from_value::<BuildResult>(serde_json::json!(text)).unwrap(),
                result
            );
        }
        let left: QueueItem = serde_json::from_value(serde_json::json!({
            "_class": "hudson.model.Queue$LeftItem", "id": 9, "blocked": false,
            "buildable": false, "cancelled": false, "why": null,
            "executable": {"_class": "hudson.model.FreeStyleBuild", "number": 5, "url": "u5"},
            "task": {"name": "go-test", "url": "t", "color": "blue"}, "inQueueSince": 1
        }))
        .unwrap();
        assert!(left.has_left());
        assert_eq!(left.executable.unwrap().number, 5);
    }

    #[test]
    fn a_crumb_keeps_its_value_out_of_debug() {
        let crumb: Crumb = serde_json::from_value(serde_json::json!({
            "_class": "hudson.security.csrf.DefaultCrumbIssuer",
            "crumb": "c0ffee1234", "crumbRequestField": "Jenkins-Crumb"
        }))
        .unwrap();
        assert_eq!(crumb.value(), "c0ffee1234");
        let shown = format!("{crumb:?}");
        assert!(
            !shown.contains("c0ffee1234") && shown.contains("Jenkins-Crumb"),
            "{shown}"
        );
    }
}

//! An async client of the Jenkins REST API (docs/jenkins.md), covering what the original reached
//! through `gojenkins`: the controller's info, the build queue, jobs and folders (by full path),
//! builds and their console, nodes, views and plugins.
//!
//! # Talking to Jenkins
//!
//! - Every request carries basic auth (`jenkins.username` with an API token or a password in
//!   `jenkins.password`), sent up front: Jenkins never asks for it.
//! - Every `POST` carries a CSRF crumb from `GET /crumbIssuer/api/json`, fetched once before the
//!   first `POST` and kept. Jenkins binds a crumb to the web session it was issued in, so the
//!   client keeps cookies (`JSESSIONID.*`). A `POST` refused with 403 "No valid crumb was
//!   included in the request" (the session expired, Jenkins restarted) fetches a new crumb and is
//!   sent once more. A 404 from the crumb issuer means CSRF protection is off: no crumb is sent.
//!   Jenkins ≥ 2.96 does not ask API-token requests for a crumb; sending one anyway is harmless
//!   and keeps password logins working.
//! - Redirects are not followed: Jenkins answers most `POST`s (`createItem`, `doDelete`,
//!   `doRename`, older `cancelItem`) with a 302 to a page the client does not need.
//! - Nothing is sent at construction ([`JenkinsClient::new`]): the application starts while
//!   Jenkins is down, and each call reports [`JenkinsError::Unreachable`] until it is back.
//!
//! # Names
//!
//! A job is named by its full path, folders first: `team/service/deploy` is
//! `/job/team/job/service/job/deploy`, each name percent-encoded. The original's form,
//! `team/job/service/job/deploy`, is accepted too ([`job_url_path`]).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod error;
mod message;
mod model;
mod path;
mod transport;

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

pub use client::{FOLDER_MODE, JenkinsClient};
pub use error::JenkinsError;
pub use model::{
    Build, BuildRef, BuildResult, ConsoleChunk, Crumb, Folder, Info, Job, JobOutcome, JobProperty,
    JobSummary, Node, ParameterDefinition, ParameterValue, Plugin, QueueItem, QueueTask, View,
    ViewSummary,
};
pub use path::{job_url_path, queue_id_from_location, split_job_path};

/// The `jenkins` section: the original's keys (`host`, `username`, `password`) and limits.
///
/// | key | default |
/// |---|---|
/// | `host` | (required) |
/// | `username` | (required; empty for anonymous access) |
/// | `password` | (required; an API token or the password) |
/// | `connect_timeout` | `3s` |
/// | `request_timeout` | `10s` |
/// | `max_console_bytes` | `1048576` (1 MiB) |
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsSettings {
    /// The controller's base URL, `http://127.0.0.1:8080`, with its path prefix when Jenkins is
    /// served under one (`https://ci.example.com/jenkins`). Credentials never go in it.
    pub host: String,
    /// The user the client acts as; empty sends no credentials (anonymous access).
    pub username: String,
    /// The user's API token (preferred) or password. Never logged, never in an error.
    pub password: SecretString,
    /// How long connecting may take.
    #[serde(with = "humantime_serde", default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// How long one request may take, connecting and reading the whole answer included.
    #[serde(with = "humantime_serde", default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// The most bytes of console text one read keeps ([`JenkinsClient::console_text`]); the rest
    /// of that answer is not read and the chunk says it was truncated.
    #[serde(default = "default_max_console_bytes")]
    pub max_console_bytes: usize,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_console_bytes() -> usize {
    1024 * 1024
}

impl JenkinsSettings {
    /// Settings for `host` as `username` with the default timeouts and console cap.
    pub fn new(
        host: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        JenkinsSettings {
            host: host.into(),
            username: username.into(),
            password: SecretString::from(password.into()),
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            max_console_bytes: default_max_console_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_take_defaults_and_refuse_unknown_keys() {
        let s: JenkinsSettings = serde_json::from_value(serde_json::json!({
            "host": "http://127.0.0.1:8080", "username": "admin", "password": "t0k3n"
        }))
        .unwrap();
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.request_timeout, Duration::from_secs(10));
        assert_eq!(s.max_console_bytes, 1 << 20);

        let s: JenkinsSettings = serde_json::from_value(serde_json::json!({
            "host": "h", "username": "u", "password": "p",
            "connect_timeout": "250ms", "request_timeout": "1m", "max_console_bytes": 10
        }))
        .unwrap();
        assert_eq!(s.connect_timeout, Duration::from_millis(250));
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.max_console_bytes, 10);

        let bad = serde_json::from_value::<JenkinsSettings>(serde_json::json!({
            "host": "h", "username": "u", "password": "p", "passwd": "x"
        }));
        assert!(bad.unwrap_err().to_string().contains("passwd"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = JenkinsSettings::new("http://127.0.0.1:8080", "admin", "s3cr3t-t0k3n");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t-t0k3n"), "{shown}");
        assert!(shown.contains("admin"), "{shown}");
        let client = JenkinsClient::new(&s).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cr3t-t0k3n"), "{shown}");
        assert!(shown.contains("127.0.0.1:8080"), "{shown}");
    }
}

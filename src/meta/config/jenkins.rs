//! `jenkins.*` (docs/jenkins.md): the Jenkins client and its routes.

use std::time::Duration;

use goex_config::{ConfigError, invalid};
use serde::Deserialize;

use super::refuse_zero;

/// `jenkins.*` (docs/jenkins.md): the original's `host`, `username`, `password`, and more.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    /// The controller's URL (`http://127.0.0.1:8080`, a path prefix allowed); empty: not
    /// configured, the `/jenkins/*` routes answer 503 / 10004.
    pub host: String,
    /// The user the app acts as.
    pub username: String,
    /// Its API token (preferred) or password (`APP__JENKINS__PASSWORD`).
    pub password: secrecy::SecretString,
    /// How long connecting may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one request may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The most bytes of console one answer carries (a page of `GET /jenkins/log`).
    pub max_console_bytes: usize,
    /// The job `GET /jenkins/index` shows without `?job=` (the original's `go-test`).
    pub default_job: String,
    /// Gone (issue 22): the `/jenkins/*` routes are for users with the admin role. Read only
    /// to refuse it at start with a message naming `go_example users grant-admin NAME`.
    #[serde(default)]
    pub admins: Option<serde::de::IgnoredAny>,
}

impl JenkinsConfig {
    /// The client's settings.
    pub fn settings(&self) -> goex_jenkins::JenkinsSettings {
        goex_jenkins::JenkinsSettings {
            host: self.host.trim().to_owned(),
            username: self.username.clone(),
            password: self.password.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_console_bytes: self.max_console_bytes,
        }
    }

    /// `jenkins.*`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.admins.is_some() {
            return Err(invalid(
                "jenkins.admins",
                "is gone: a name list in config makes an admin of whoever registers the name; \
                 remove it and make admins with `go_example users grant-admin NAME`",
            ));
        }
        refuse_zero(&[
            ("jenkins.connect_timeout", self.connect_timeout.is_zero()),
            ("jenkins.request_timeout", self.request_timeout.is_zero()),
            ("jenkins.max_console_bytes", self.max_console_bytes == 0),
        ])
    }
}

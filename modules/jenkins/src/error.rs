//! The one error type of the crate: what went wrong, in words Jenkins used where it gave any.

use std::time::Duration;

/// What can go wrong talking to Jenkins. No variant ever carries the password or the crumb.
#[derive(Debug, thiserror::Error)]
pub enum JenkinsError {
    /// The settings cannot make a client (a bad `host`, a zero timeout).
    #[error("jenkins settings: {0}")]
    Settings(String),
    /// A job or folder name that cannot be a Jenkins path (empty, `.` or `..`).
    #[error("not a Jenkins item name: {0:?}")]
    InvalidName(String),
    /// Jenkins could not be reached, or did not answer (connecting or reading) in time.
    #[error("jenkins unreachable: {0}")]
    Unreachable(String),
    /// Jenkins refused the credentials (401).
    #[error("jenkins refused the credentials: {0}")]
    Unauthorized(String),
    /// Jenkins refused the request (403) although it carried a fresh crumb: the user lacks a
    /// permission.
    #[error("jenkins forbade it: {0}")]
    Forbidden(String),
    /// The named item (a job, folder, build, queue item, node, view) does not exist (404).
    #[error("not found in jenkins: {0}")]
    NotFound(String),
    /// Jenkins answered with another error status; `message` is what Jenkins said (its
    /// `X-Error` header, else the gist of its error page).
    #[error("jenkins answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Jenkins's message, at most ~200 characters.
        message: String,
    },
    /// The answer is not what the API documents (unreadable JSON, no `Location`).
    #[error("jenkins answer unreadable: {0}")]
    BadResponse(String),
    /// The queue item was cancelled before it became a build.
    #[error("queue item {0} was cancelled")]
    Cancelled(u64),
    /// The queue item was still waiting when the deadline passed.
    #[error("queue item {queue_id} did not start within {waited:?}: {why}")]
    NotStarted {
        /// The queue item.
        queue_id: u64,
        /// How long the client waited.
        waited: Duration,
        /// Jenkins's reason (`why`), or empty.
        why: String,
    },
}

impl JenkinsError {
    /// Every [`JenkinsError::kind`], for metrics made ahead.
    pub const KINDS: [&'static str; 10] = [
        "settings",
        "invalid_name",
        "unreachable",
        "unauthorized",
        "forbidden",
        "not_found",
        "status",
        "bad_response",
        "cancelled",
        "not_started",
    ];

    /// A fixed name of the error's kind (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            JenkinsError::Settings(_) => "settings",
            JenkinsError::InvalidName(_) => "invalid_name",
            JenkinsError::Unreachable(_) => "unreachable",
            JenkinsError::Unauthorized(_) => "unauthorized",
            JenkinsError::Forbidden(_) => "forbidden",
            JenkinsError::NotFound(_) => "not_found",
            JenkinsError::Status { .. } => "status",
            JenkinsError::BadResponse(_) => "bad_response",
            JenkinsError::Cancelled(_) => "cancelled",
            JenkinsError::NotStarted { .. } => "not_started",
        }
    }
}

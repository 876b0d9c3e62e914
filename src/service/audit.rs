//! The audit trail of admin actions (issue 22): one structured record at info per action, with
//! who did it, what, to what, from where and how it ended. Routes that take the `Admin`
//! extractor are recorded by the request lifecycle; the `go_example users` commands and the
//! services they call record their own.

use slog::Logger;

/// Who acts: a user id, or `cli` for the command line (whose client is the machine itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The user id, or `cli`.
    pub id: String,
    /// The client address, or `local`.
    pub client: String,
}

impl Actor {
    /// The operator at the command line.
    pub fn cli() -> Self {
        Self {
            id: "cli".into(),
            client: "local".into(),
        }
    }
}

/// Writes one audit record: `action` done to `target` by `actor`, ending in `outcome`.
pub fn record(logger: &Logger, actor: &Actor, action: &str, target: &str, outcome: &str) {
    slog::info!(logger, "audit";
        "audit" => true,
        "actor_id" => actor.id.as_str(),
        "action" => action,
        "target" => target,
        "client" => actor.client.as_str(),
        "outcome" => outcome);
}

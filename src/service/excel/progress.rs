//! The socket app's push of import progress: every `excel.progress_poll_interval` it reads the
//! jobs of its connected users that changed since the last look (one indexed query, none when
//! nobody is connected) and sends each to the user's connections as an `import` frame:
//!
//! ```json
//! {"type":"import","job":{"id":"…","status":"running","rows":20000,"written":19000,…}}
//! ```
//!
//! The jobs are in the database, so this works whichever process runs the import.

use std::sync::Arc;
use std::time::Duration;

use slog::Logger;

use super::jobs::{millis, now_ms};
use crate::model::excel::ImportJobView;
use crate::repository::mysql::import_job::ImportJobRepository;
use crate::service::socket::SocketHub;

/// The frame for `job`.
pub fn frame(job: &ImportJobView) -> String {
    serde_json::json!({"type": "import", "job": job}).to_string()
}

/// Pushes progress until the returned future is dropped.
pub async fn push_progress(
    hub: Arc<dyn SocketHub>,
    jobs: Arc<dyn ImportJobRepository>,
    every: Duration,
    stale_after: Duration,
    logger: Logger,
) {
    let mut since = now_ms();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let users = hub.connected_users();
        if users.is_empty() {
            since = since.max(now_ms() - 1);
            continue;
        }
        match jobs.changed_since(since, &users).await {
            Ok(rows) => {
                let now = now_ms();
                for row in &rows {
                    since = since.max(row.updated_at);
                    let view = ImportJobView::of(row, now, millis(stale_after));
                    hub.send_to_user(row.user_id, frame(&view).into());
                }
            }
            Err(e) => slog::warn!(logger, "import progress not read"; "error" => %e),
        }
    }
}

//! The socket app's push of import progress: every `excel.progress_poll_interval` it reads the
//! jobs of its connected users that changed since the last look (one indexed query, none when
//! nobody is connected) and sends each to the user's connections as an `import` frame:
//!
//! ```json
//! {"type":"import","job":{"id":"…","status":"running","rows":20000,"written":19000,…}}
//! ```
//!
//! The jobs are in the database, so this works whichever process runs the import.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use goex_tracing::KeyValue;
use shaku::{Component, Interface};
use slog::Logger;

use super::jobs::{millis, now_ms};
use crate::meta::config::ExcelConfig;
use crate::model::excel::{ImportJobRow, ImportJobView};
use crate::repository::mysql::import_job::ImportJobRepository;
use crate::service::socket::SocketHub;

/// The push of import progress to the socket app's connections, started by the socket app for
/// as long as it serves.
#[async_trait]
pub trait ImportProgressPush: Interface {
    /// Pushes progress until the returned future is dropped ([`push_progress`]).
    async fn run(&self);
}

/// [`ImportProgressPush`] over the hub and the import jobs.
#[derive(Component)]
#[shaku(interface = ImportProgressPush)]
pub struct ImportProgressPushImpl {
    #[shaku(inject)]
    hub: Arc<dyn SocketHub>,
    #[shaku(inject)]
    jobs: Arc<dyn ImportJobRepository>,
    /// `excel.*`: how often to look (`progress_poll_interval`) and when a running job counts
    /// as stale (from `import_timeout`).
    excel: Arc<ExcelConfig>,
    logger: Logger,
    /// A span per push when tracing is on, linked to the import's request.
    tracing: goex_tracing::Tracing,
}

#[async_trait]
impl ImportProgressPush for ImportProgressPushImpl {
    async fn run(&self) {
        push_progress(
            self.hub.clone(),
            self.jobs.clone(),
            self.excel.progress_poll_interval,
            self.excel.import_stale_after(),
            self.logger.clone(),
            self.tracing.clone(),
        )
        .await;
    }
}

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
    tracing: goex_tracing::Tracing,
) {
    // The cursor trails the newest change seen by OVERLAP: a write stamped earlier that commits
    // later (another process, another job) is still read; what was already sent is not sent
    // again.
    let mut newest = now_ms();
    let mut sent: HashMap<String, (i64, String, i64, i64)> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let users = hub.connected_users();
        if users.is_empty() {
            newest = newest.max(now_ms());
            sent.clear();
            continue;
        }
        match jobs.changed_since(newest - OVERLAP_MS, &users).await {
            Ok(rows) => {
                let now = now_ms();
                for row in &rows {
                    newest = newest.max(row.updated_at);
                    let state = (
                        row.updated_at,
                        row.status.clone(),
                        row.rows_read,
                        row.rows_written,
                    );
                    if sent.get(&row.id) == Some(&state) {
                        continue;
                    }
                    let view = ImportJobView::of(row, now, millis(stale_after));
                    let span = push_span(&tracing, row);
                    let delivered = hub.send_to_user(row.user_id, frame(&view).into());
                    if let Some(mut span) = span {
                        span.set_attributes([KeyValue::new(
                            "import.delivered_to",
                            i64::try_from(delivered).unwrap_or(i64::MAX),
                        )]);
                        span.end();
                    }
                    sent.insert(row.id.clone(), state);
                }
                sent.retain(|_, (at, ..)| *at >= newest - 2 * OVERLAP_MS);
            }
            Err(e) => slog::warn!(logger, "import progress not read"; "error" => %e),
        }
    }
}

/// The span of one push of `job`'s progress, linked to the trace of the request that started
/// the import (kept in its row), when tracing is on.
fn push_span(tracing: &goex_tracing::Tracing, job: &ImportJobRow) -> Option<goex_tracing::Span> {
    let link = job
        .traceparent
        .as_deref()
        .and_then(goex_tracing::parse_traceparent);
    let mut span = tracing.linked_span(
        "import progress",
        goex_tracing::SpanKind::Producer,
        link.as_ref(),
    )?;
    span.set_attributes([
        KeyValue::new("import.status", job.status.clone()),
        KeyValue::new("import.rows_read", job.rows_read),
        KeyValue::new("import.rows_written", job.rows_written),
    ]);
    Some(span)
}

/// How far behind the newest change seen the socket app looks again (commit order and clocks
/// of the writing processes may differ by this much).
const OVERLAP_MS: i64 = 5_000;

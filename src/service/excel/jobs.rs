//! Every import is a job (`import_jobs`): it runs in a task of its own, its progress is stored
//! as it goes, and the request waits for it only while it stays small. Past `excel.async_rows`
//! rows read the request answers 202 with the job, which goes on in the background; its
//! progress is read with `GET /excel/import/{id}` and pushed by the socket app.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::import::{CreationBudget, ImportOptions, ImportProgress, import_users};
use crate::meta::config::ExcelConfig;
use crate::model::excel::{ImportJobRow, ImportJobView, ImportReport, JobStatus};
use crate::repository::mysql::import_job::ImportJobRepository;
use crate::repository::mysql::user::UserRepository;
use crate::service::error::ServiceError;
use crate::service::password::BulkPasswordHasher;

/// The jobs a process runs: their progress as it is now, even where the database cannot
/// store it while they run (SQLite).
#[derive(Clone, Debug, Default)]
pub struct RunningJobs(Arc<Mutex<HashMap<String, Progress>>>);

/// A job's (rows read, rows written), as it changes.
type Progress = watch::Receiver<(usize, usize)>;

impl RunningJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Progress>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn progress(&self, id: &str) -> Option<(usize, usize)> {
        self.lock().get(id).map(|seen| *seen.borrow())
    }
}

/// How long a job's end is retried when it cannot be stored (the stale window's margin).
const FINISH_RETRIES_FOR: Duration = Duration::from_secs(55);

/// How often a running job stores its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What `POST /excel/import` started.
#[derive(Debug)]
pub enum ImportStarted {
    /// It ended within the request: committed, with its report.
    Finished(ImportReport),
    /// It goes on in the background.
    Running(ImportJobView),
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn job_id() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Progress through a watch channel: (rows read, rows written).
struct Watched(watch::Sender<(usize, usize)>);

impl ImportProgress for Watched {
    fn advanced(&self, rows: usize, written: usize) {
        self.0.send_replace((rows, written));
    }
}

/// The parts a job needs.
pub struct JobParts {
    /// The users.
    pub users: Arc<dyn UserRepository>,
    /// The import's password hasher.
    pub hasher: Arc<dyn BulkPasswordHasher>,
    /// The jobs.
    pub jobs: Arc<dyn ImportJobRepository>,
    /// `excel.*`: the import's limits, how long jobs are kept and when a request stops waiting.
    pub excel: Arc<ExcelConfig>,
    /// The users the importing admin may still create.
    pub budget: CreationBudget,
    /// Jobs running and ended, when metrics are on.
    pub metrics: Option<goex_metrics::ImportJobMetrics>,
}

/// One of the `excel.max_running_imports` places, taken before the upload is received (so
/// uploads are bounded too) and held until the import ends.
#[derive(Debug)]
pub struct ImportSlot(tokio::sync::OwnedSemaphorePermit);

/// Takes a place for an import.
///
/// # Errors
/// 503 / 10009 at `excel.max_running_imports` (the places of `running`).
pub fn reserve(running: &Arc<Semaphore>) -> Result<ImportSlot, ServiceError> {
    running
        .clone()
        .try_acquire_owned()
        .map(ImportSlot)
        .map_err(|_| ServiceError::AtCapacity("excel.max_running_imports"))
}

/// Starts the import of `file` for `user` as a job, and waits for it while it is small.
///
/// # Errors
/// 503 / 10004 when the job cannot be stored;
/// the import's own errors when it ends within the request.
pub async fn start(
    parts: JobParts,
    local: &RunningJobs,
    slot: ImportSlot,
    user: i64,
    file: File,
    options: ImportOptions,
) -> Result<ImportStarted, ServiceError> {
    let permit = slot.0;
    let now = now_ms();
    // Old jobs go as new ones come.
    let retention = millis(parts.excel.job_retention);
    // Best effort: an old job left for the next import is no failure of this one.
    let _ = parts.jobs.prune(now.saturating_sub(retention)).await;
    let row = ImportJobRow {
        id: job_id(),
        user_id: user,
        status: JobStatus::Running.as_str().into(),
        rows_read: 0,
        rows_written: 0,
        result: None,
        created_at: now,
        updated_at: now,
        traceparent: goex_tracing::current().map(|span| goex_tracing::traceparent(&span)),
    };
    parts.jobs.create(&row).await?;
    let (progress, mut seen) = watch::channel((0usize, 0usize));
    let id = row.id.clone();
    let async_rows = parts.excel.async_rows;
    let local = local.clone();
    local.lock().insert(id.clone(), seen.clone());
    let counted = parts.metrics.clone().map(Counted::start);
    let mut task = tokio::spawn(async move {
        let mut counted = counted;
        let outcome = run(parts, &id, file, options, progress).await;
        if let Some(counted) = &mut counted {
            counted.done = outcome.is_ok();
        }
        local.lock().remove(&id);
        drop(permit);
        outcome
    });
    loop {
        tokio::select! {
            // Progress first: an import that read past async_rows answers 202 however soon it
            // ends, so the answer's shape depends on the file, not on timing.
            biased;
            changed = seen.changed(), if seen.has_changed().is_ok() => {
                let (rows, written) = *seen.borrow_and_update();
                if changed.is_ok() && rows > async_rows {
                    // The task goes on detached; the caller gets the job.
                    let mut view = ImportJobView::of(&row, now_ms(), i64::MAX);
                    view.rows = rows as u64;
                    view.written = written as u64;
                    return Ok(ImportStarted::Running(view));
                }
            }
            ended = &mut task => {
                return match ended {
                    Ok(outcome) => outcome.map(ImportStarted::Finished),
                    Err(e) => Err(ServiceError::Internal(Box::new(e))),
                };
            }
        }
    }
}

/// A running job in `go_example_import_jobs_*`: counted as ended when dropped, failed unless
/// marked done (a task that panicked ends failed too).
struct Counted {
    metrics: goex_metrics::ImportJobMetrics,
    done: bool,
}

impl Counted {
    fn start(metrics: goex_metrics::ImportJobMetrics) -> Self {
        metrics.started();
        Self {
            metrics,
            done: false,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.ended(self.done);
    }
}

/// Runs the import, storing its progress every [`PROGRESS_EVERY`] and its end.
async fn run(
    parts: JobParts,
    id: &str,
    file: File,
    options: ImportOptions,
    progress: watch::Sender<(usize, usize)>,
) -> Result<ImportReport, ServiceError> {
    let latest = progress.subscribe();
    let watched = Watched(progress);
    let import = import_users(
        parts.users.clone(),
        parts.hasher.clone(),
        file,
        options,
        &parts.excel,
        Some(&parts.budget),
        &watched,
    );
    tokio::pin!(import);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let outcome = loop {
        tokio::select! {
            outcome = &mut import => break outcome,
            _ = tick.tick() => {
                let (rows, written) = *latest.borrow();
                // A failed progress write is not the import's failure: the next one may pass.
                let _ = parts.jobs.progress(id, rows as i64, written as i64, now_ms()).await;
            }
        }
    };
    let (rows, written) = *latest.borrow();
    let (status, result) = match &outcome {
        Ok(report) => (
            JobStatus::Done,
            serde_json::to_string(report).unwrap_or_default(),
        ),
        Err(e) => (JobStatus::Failed, failure_json(e)),
    };
    let (rows, written) = match &outcome {
        Ok(report) => (
            report.rows,
            report.inserted + report.updated + report.skipped,
        ),
        Err(_) => (rows, written),
    };
    // Retried: on SQLite another import may hold the write lock for a while. If it never
    // lands, the job shows as abandoned; the import itself ended as `outcome` says.
    let mut pause = Duration::from_millis(200);
    let give_up = tokio::time::Instant::now() + FINISH_RETRIES_FOR;
    while parts
        .jobs
        .finish(id, status, rows as i64, written as i64, &result, now_ms())
        .await
        .is_err()
        && tokio::time::Instant::now() + pause < give_up
    {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    outcome
}

/// A failure as the envelope's `error` object shows it (in English; `code` is the key).
fn failure_json(e: &ServiceError) -> String {
    let code = e.code();
    let message = match e.public_detail() {
        Some(detail) => format!("{}: {detail}", code.en),
        None => code.en.to_owned(),
    };
    let mut error = serde_json::json!({
        "code": code.code.to_string(),
        "message": message,
    });
    if let ServiceError::ImportRejected(report) = e {
        error["details"] = serde_json::to_value(report).unwrap_or_default();
    }
    error.to_string()
}

/// The job `id` as its owner `user` sees it.
///
/// # Errors
/// 404 / 10005 when there is no such job or it is someone else's.
pub async fn view(
    jobs: &dyn ImportJobRepository,
    excel: &ExcelConfig,
    local: &RunningJobs,
    user: i64,
    id: &str,
) -> Result<ImportJobView, ServiceError> {
    let row = jobs
        .find(id)
        .await?
        .filter(|row| row.user_id == user)
        .ok_or(ServiceError::NotFound)?;
    let mut view = ImportJobView::of(&row, now_ms(), millis(excel.import_stale_after()));
    if view.status == JobStatus::Running
        && let Some((rows, written)) = local.progress(id)
    {
        view.rows = rows as u64;
        view.written = written as u64;
    }
    Ok(view)
}

/// `d` in milliseconds.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

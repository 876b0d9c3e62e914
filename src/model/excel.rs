//! The Excel import's options, rows and report (docs/excel.md).

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an import does with bad rows (`excel.import_mode`, or `?mode=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// One bad row and nothing is written: 400 / 30001 with the report.
    #[default]
    AllOrNothing,
    /// Bad rows are reported and left out; the valid ones are written.
    SkipInvalid,
}

/// What an import does with a username that exists (`excel.on_existing`, or `?on_existing=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnExisting {
    /// Leaves the user as it is and counts the row as skipped.
    #[default]
    Skip,
    /// Sets its gender, and its password when the row has one (never its id or creation time).
    Update,
}

/// A valid row, ready to be written: the name canonical, the password hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedUser {
    /// The canonical username ([`crate::model::forms::canonical_username`]).
    pub username: String,
    /// An argon2id PHC string, or `None` when the row has no 密码 (the user then gets
    /// [`NO_PASSWORD`] on insert and keeps its password on update).
    pub password_hash: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    pub gender: i16,
    /// The row's 创建时间, or `None` for now.
    pub created_at: Option<NaiveDateTime>,
}

/// The password hash of a user who has none: no PHC string, so no password matches it, and
/// verifying against it costs what verifying a real hash costs (`service::password`). Set a
/// password by importing the row again with its 密码 and `on_existing=update`.
pub const NO_PASSWORD: &str = "!";

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// New users.
    pub inserted: usize,
    /// Existing users changed (`on_existing: update`).
    pub updated: usize,
    /// Existing users left alone (`on_existing: skip`).
    pub skipped: usize,
}

/// A bad cell or row: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RowError {
    /// The row as a spreadsheet shows it (the header is usually row 1).
    pub row: u32,
    /// The column's header (`用户名`), or empty for the row as a whole.
    pub column: String,
    /// What is wrong.
    pub reason: String,
}

/// What an import did (or, refused, would have done).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    /// The mode it ran in.
    pub mode: ImportMode,
    /// The existing-username rule it ran with.
    pub on_existing: OnExisting,
    /// Whether its writes were committed (`false`: nothing was written).
    pub committed: bool,
    /// Data rows read (blank rows not counted).
    pub rows: usize,
    /// Users created.
    pub inserted: usize,
    /// Existing users updated.
    pub updated: usize,
    /// Rows of existing users left alone.
    pub skipped: usize,
    /// Bad rows (never written).
    pub invalid: usize,
    /// The first `excel.max_reported_errors` problems, in row order.
    pub errors: Vec<RowError>,
    /// Whether there were more problems than `errors` lists.
    pub errors_truncated: bool,
}

impl ImportReport {
    /// Adds a batch's counts.
    pub fn add(&mut self, batch: BatchOutcome) {
        self.inserted += batch.inserted;
        self.updated += batch.updated;
        self.skipped += batch.skipped;
    }

    /// Records a problem, keeping at most `cap`.
    pub fn report(&mut self, error: RowError, cap: usize) {
        if self.errors.len() < cap {
            self.errors.push(error);
        } else {
            self.errors_truncated = true;
        }
    }

    /// Clears the write counts: the transaction was rolled back.
    pub fn rolled_back(&mut self) {
        self.committed = false;
        self.inserted = 0;
        self.updated = 0;
        self.skipped = 0;
    }
}

/// A row of `import_jobs`: one import, its progress and its result.
#[derive(
    Clone, Debug, PartialEq, Eq, diesel::Queryable, diesel::Selectable, diesel::Insertable,
)]
#[diesel(table_name = crate::model::schema::import_jobs)]
pub struct ImportJobRow {
    /// 128 random bits, hex.
    pub id: String,
    /// Who started it (only they may read it).
    pub user_id: i64,
    /// `running`, `done` or `failed` ([`JobStatus`]).
    pub status: String,
    /// Data rows read so far.
    pub rows_read: i64,
    /// Rows written so far (inserted, updated or skipped).
    pub rows_written: i64,
    /// The report (`done`) or the error (`failed`), JSON.
    pub result: Option<String>,
    /// Started, unix milliseconds.
    pub created_at: i64,
    /// Last progress, unix milliseconds (a heartbeat while it runs).
    pub updated_at: i64,
    /// The W3C `traceparent` of the request that started it, when traced: the socket app's
    /// progress pushes link to that trace (docs/tracing.md).
    pub traceparent: Option<String>,
}

/// Where an import stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Reading and writing.
    Running,
    /// Committed: `report` says what it did.
    Done,
    /// Refused or failed, nothing written: `error` says why.
    Failed,
    /// Its process stopped before it ended (still running past `excel.import_timeout`):
    /// nothing was written.
    Abandoned,
}

impl JobStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Abandoned => "abandoned",
        }
    }
}

/// An import as `GET /excel/import/{id}`, a background `POST /excel/import` and the socket app's
/// `import` frames show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImportJobView {
    /// The job's id.
    pub id: String,
    /// Where it stands.
    pub status: JobStatus,
    /// Data rows read so far.
    pub rows: u64,
    /// Rows written so far (inserted, updated or skipped; uncommitted until `done`).
    pub written: u64,
    /// Started, unix milliseconds.
    pub started_at: i64,
    /// Last progress, unix milliseconds.
    pub updated_at: i64,
    /// When `done`: what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ImportReport>,
    /// When `failed`: the error envelope's `error` object (code, message, details).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

impl ImportJobView {
    /// The row as shown at `now_ms`: a job still running `stale_ms` after it started is
    /// abandoned (an import cannot outlive `excel.import_timeout`; its process stopped).
    pub fn of(row: &ImportJobRow, now_ms: i64, stale_ms: i64) -> ImportJobView {
        let status = match row.status.as_str() {
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            _ if now_ms.saturating_sub(row.created_at) > stale_ms => JobStatus::Abandoned,
            _ => JobStatus::Running,
        };
        let result = row.result.as_deref();
        ImportJobView {
            id: row.id.clone(),
            status,
            rows: u64::try_from(row.rows_read).unwrap_or(0),
            written: u64::try_from(row.rows_written).unwrap_or(0),
            started_at: row.created_at,
            updated_at: row.updated_at,
            report: (status == JobStatus::Done)
                .then(|| result.and_then(|r| serde_json::from_str(r).ok()))
                .flatten(),
            error: (status == JobStatus::Failed)
                .then(|| result.and_then(|r| serde_json::from_str(r).ok()))
                .flatten(),
        }
    }
}

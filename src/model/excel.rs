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

//! `excel.*` (docs/excel.md): the Excel import and export and their limits.

use std::time::Duration;

use goex_config::{ConfigError, invalid};
use serde::Deserialize;

use super::refuse_zero;

/// Rows of an xlsx sheet below its header row.
pub const EXCEL_MAX_DATA_ROWS: usize = 1_048_575;

/// The largest `excel.import_batch_size`: MySQL takes 65,535 placeholders a statement and
/// SQLite 32,766, and an imported row has 5.
pub const MAX_IMPORT_BATCH: usize = 5_000;

/// `excel.*` (docs/excel.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcelConfig {
    /// The export's file name (`Content-Disposition`; UTF-8 allowed).
    pub export_file_name: String,
    /// Users read per database query while exporting.
    pub export_page_size: usize,
    /// Most users one export may hold (a sheet holds 1,048,575 below its header); more: 400.
    pub max_export_rows: usize,
    /// Where the workbook being written spills its rows, and where uploads are kept while
    /// they are imported; empty: the system's temp directory.
    pub temp_dir: String,
    /// The largest `POST /excel/import` body (bytes), counted while it streams in; more:
    /// 413 / 10007.
    pub max_upload_size: u64,
    /// How long an upload may take to arrive; longer: 408 / 10012.
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// Most data rows one import may hold; more: 400 / 10000, nothing written.
    pub max_import_rows: usize,
    /// Rows per statement inside the import's transaction.
    pub import_batch_size: usize,
    /// The default for bad rows: `all_or_nothing` or `skip_invalid` (`?mode=` overrides it).
    pub import_mode: crate::model::excel::ImportMode,
    /// The default for usernames that exist: `skip` or `update` (`?on_existing=` overrides it).
    pub on_existing: crate::model::excel::OnExisting,
    /// Problems listed in an import's report at most (the count covers all of them).
    pub max_reported_errors: usize,
    /// The longest an import may take (check, hashing and writing); longer: 503 / 10004.
    #[serde(with = "humantime_serde")]
    pub import_timeout: Duration,
    /// Zip entries an uploaded workbook may have (checked before parsing).
    pub max_zip_entries: usize,
    /// Bytes an uploaded workbook may unpack to, all entries together (from the zip
    /// directory, before parsing; an entry that unpacks to more than it declares fails).
    pub max_unpacked_size: u64,
    /// The largest unpacked/packed ratio of an entry over 1 MiB unpacked.
    pub max_compression_ratio: u64,
    /// Unpacked bytes of an upload's shared-strings table at most (held in memory while read).
    pub max_shared_strings_size: u64,
    /// Rows read after which `POST /excel/import` stops waiting and answers 202 with the job,
    /// which goes on in the background.
    pub async_rows: usize,
    /// Imports running at once in one process; more: 503 / 10009.
    pub max_running_imports: usize,
    /// Exports being written at once in one process; more: 503 / 10009.
    pub max_running_exports: usize,
    /// Users one admin's imports may create per hour; more: 429 / 10008, nothing written.
    pub max_created_per_hour: i64,
    /// Threads an import hashes its passwords on, at the lowest OS priority (never the login
    /// slots of `auth.hash_concurrency`).
    pub password_hash_slots: usize,
    /// Rows with a 密码 one import may hold (each costs an argon2 hash); more: 400 / 10000.
    pub max_password_rows: usize,
    /// How long finished import jobs are kept for `GET /excel/import/{id}`.
    #[serde(with = "humantime_serde")]
    pub job_retention: Duration,
    /// How often the socket app looks for import progress to push to connected users.
    #[serde(with = "humantime_serde")]
    pub progress_poll_interval: Duration,
}

impl ExcelConfig {
    /// `excel.*`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        refuse_zero(&[
            ("excel.export_page_size", self.export_page_size == 0),
            ("excel.max_export_rows", self.max_export_rows == 0),
            ("excel.max_upload_size", self.max_upload_size == 0),
            ("excel.upload_timeout", self.upload_timeout.is_zero()),
            ("excel.max_import_rows", self.max_import_rows == 0),
            ("excel.import_batch_size", self.import_batch_size == 0),
            ("excel.max_running_exports", self.max_running_exports == 0),
            ("excel.max_created_per_hour", self.max_created_per_hour <= 0),
            ("excel.import_timeout", self.import_timeout.is_zero()),
            ("excel.max_zip_entries", self.max_zip_entries == 0),
            ("excel.max_unpacked_size", self.max_unpacked_size == 0),
            (
                "excel.max_compression_ratio",
                self.max_compression_ratio == 0,
            ),
        ])?;
        if self.import_batch_size > MAX_IMPORT_BATCH {
            return Err(invalid(
                "excel.import_batch_size",
                format!("at most {MAX_IMPORT_BATCH}: a batch is one statement, 5 parameters a row"),
            ));
        }
        if self.max_import_rows > EXCEL_MAX_DATA_ROWS {
            return Err(invalid(
                "excel.max_import_rows",
                format!("a sheet holds at most {EXCEL_MAX_DATA_ROWS} rows below its header"),
            ));
        }
        if self.max_export_rows > EXCEL_MAX_DATA_ROWS {
            return Err(invalid(
                "excel.max_export_rows",
                format!("a sheet holds at most {EXCEL_MAX_DATA_ROWS} rows below its header"),
            ));
        }
        if self.export_file_name.trim().is_empty()
            || self.export_file_name.contains(['/', '\\', '"', '\r', '\n'])
        {
            return Err(invalid(
                "excel.export_file_name",
                "a file name (no path separators, quotes or line breaks)",
            ));
        }
        Ok(())
    }
}

impl ExcelConfig {
    /// `excel.temp_dir`, `None` when empty (the system's temp directory).
    pub fn temp_path(&self) -> Option<std::path::PathBuf> {
        Some(self.temp_dir.trim())
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from)
    }

    /// When a running import job counts as abandoned: an import cannot outlive
    /// `import_timeout`, so one still running a minute past it lost its process (and its
    /// transaction with it).
    pub fn import_stale_after(&self) -> Duration {
        self.import_timeout + Duration::from_secs(60)
    }
}

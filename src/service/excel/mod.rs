//! Users to and from Excel (the original's `excel_service.go`; docs/excel.md).
//!
//! The import is in [`import`] (the file's reading in [`sheet`]).
//!
//! The export reads users in keyset pages and writes them with rust_xlsxwriter in constant
//! memory: each row goes to the sheet's temp file as it comes, and the workbook is zipped into an
//! anonymous temp file that the controller streams. Memory stays at a page of users and the
//! writer's buffers however many rows there are. Passwords and hashes are never written.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use shaku::{Component, Interface};
use tokio::sync::mpsc;

pub mod import;
pub mod jobs;
pub mod progress;
pub mod sheet;

use crate::meta::config::ExcelConfig;
use crate::model::excel::{ImportJobView, ImportReport};
use crate::model::user::{UserFilter, UserListing};
use crate::repository::mysql::import_job::ImportJobRepository;
use crate::repository::mysql::user::UserRepository;
use crate::repository::redis::throttle::LoginThrottleRepository;
use crate::service::error::ServiceError;
use crate::service::password::BulkPasswordHasher;

pub use self::import::{CreationBudget, ImportOptions, ImportProgress};
pub use self::jobs::{ImportSlot, ImportStarted, RunningJobs};

/// The export's columns (the original's names, its 密码 column dropped).
pub const EXPORT_HEADER: [&str; 4] = ["用户Id", "用户名", "性别", "创建时间"];

/// A finished workbook in an anonymous temp file (gone when dropped), at its start.
#[derive(Debug)]
pub struct ExportFile {
    /// The xlsx bytes.
    pub file: File,
    /// Its length in bytes.
    pub len: u64,
    /// Users written.
    pub rows: usize,
}

/// Excel import and export.
#[async_trait]
pub trait ExcelService: Interface {
    /// Writes the users matching `filter` as an xlsx workbook, in one of
    /// `excel.max_running_exports` places. (How many one admin may start is the `rate_limit`
    /// rule `excel-export`, spent before the route's handler runs.)
    ///
    /// # Errors
    /// 400 / 10000 past `excel.max_export_rows`; 503 / 10004 when the database cannot be
    /// read; 500 / 30000 when the workbook cannot be written; 503 / 10009 when every place is
    /// taken.
    async fn export(&self, filter: UserFilter) -> Result<ExportFile, ServiceError>;

    /// Imports the users of the uploaded workbook `file` for `user` ([`import::import_users`])
    /// as a job that the caller waits for while it is small ([`jobs`]).
    ///
    /// # Errors
    /// As [`import::import_users`] and [`jobs::start`]; whatever the error, nothing was
    /// written.
    async fn import(
        &self,
        slot: ImportSlot,
        user: i64,
        file: File,
        options: ImportOptions,
    ) -> Result<ImportStarted, ServiceError>;

    /// Takes one of the `excel.max_running_imports` places, before the upload is received.
    ///
    /// # Errors
    /// 503 / 10009 when they are all taken.
    fn reserve_import(&self) -> Result<ImportSlot, ServiceError>;

    /// Runs an import to its end here, with `progress` told as it goes (the CLI: no job row,
    /// no `excel.async_rows`).
    ///
    /// # Errors
    /// As [`import::import_users`].
    async fn import_now(
        &self,
        file: File,
        options: ImportOptions,
        progress: &dyn ImportProgress,
    ) -> Result<ImportReport, ServiceError>;

    /// [`ExcelService::export`], `progress` told the rows written so far (the CLI).
    ///
    /// # Errors
    /// As [`ExcelService::export`].
    async fn export_with(
        &self,
        filter: UserFilter,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<ExportFile, ServiceError>;

    /// The import job `id` of `user`.
    ///
    /// # Errors
    /// 404 / 10005 when it does not exist or is someone else's.
    async fn job(&self, user: i64, id: &str) -> Result<ImportJobView, ServiceError>;
}

/// [`ExcelService`] over the user repository.
#[derive(Component)]
#[shaku(interface = ExcelService)]
pub struct ExcelServiceImpl {
    #[shaku(inject)]
    users: Arc<dyn UserRepository>,
    #[shaku(inject)]
    hasher: Arc<dyn BulkPasswordHasher>,
    #[shaku(inject)]
    jobs: Arc<dyn ImportJobRepository>,
    #[shaku(inject)]
    throttle: Arc<dyn LoginThrottleRepository>,
    /// `excel.*`: the export's and the import's limits, as configured.
    excel: Arc<ExcelConfig>,
    /// Exports being written at once in this process (`excel.max_running_exports` places).
    running_exports: Arc<tokio::sync::Semaphore>,
    /// Imports running at once in this process (`excel.max_running_imports` places).
    running_imports: Arc<tokio::sync::Semaphore>,
    /// The import jobs this process runs, with their live progress.
    running_jobs: RunningJobs,
    /// Jobs running and ended (`go_example_import_jobs_*`), when metrics are on.
    metrics: Option<goex_metrics::ImportJobMetrics>,
}

/// Why the export failed to write: 30000.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// rust_xlsxwriter refused.
    #[error("writing the workbook: {0}")]
    Xlsx(#[from] XlsxError),
    /// The temp file.
    #[error("the workbook's temp file: {0}")]
    Io(#[from] std::io::Error),
    /// The reading side stopped before the last page.
    #[error("the export was abandoned")]
    Abandoned,
}

impl From<ExportError> for ServiceError {
    fn from(e: ExportError) -> Self {
        ServiceError::Export(Box::new(e))
    }
}

#[async_trait]
impl ExcelService for ExcelServiceImpl {
    async fn export(&self, filter: UserFilter) -> Result<ExportFile, ServiceError> {
        let _place = self
            .running_exports
            .clone()
            .try_acquire_owned()
            .map_err(|_| ServiceError::AtCapacity("excel.max_running_exports"))?;
        // A client that goes away drops this future: the pages stop, the writer sees the
        // listing end unfinished and drops its file.
        export_users(self.users.clone(), filter, &self.excel, &|_| ()).await
    }

    fn reserve_import(&self) -> Result<ImportSlot, ServiceError> {
        jobs::reserve(&self.running_imports)
    }

    async fn import(
        &self,
        slot: ImportSlot,
        user: i64,
        file: File,
        options: ImportOptions,
    ) -> Result<ImportStarted, ServiceError> {
        let parts = jobs::JobParts {
            users: self.users.clone(),
            hasher: self.hasher.clone(),
            jobs: self.jobs.clone(),
            excel: self.excel.clone(),
            budget: CreationBudget {
                throttle: self.throttle.clone(),
                subject: format!("excel-created:{user}"),
                limit: self.excel.max_created_per_hour,
                window: std::time::Duration::from_secs(3600),
            },
            metrics: self.metrics.clone(),
        };
        jobs::start(parts, &self.running_jobs, slot, user, file, options).await
    }

    async fn import_now(
        &self,
        file: File,
        options: ImportOptions,
        progress: &dyn ImportProgress,
    ) -> Result<ImportReport, ServiceError> {
        // The operator at the command line creates as many as the file holds.
        import::import_users(
            self.users.clone(),
            self.hasher.clone(),
            file,
            options,
            &self.excel,
            None,
            progress,
        )
        .await
    }

    async fn export_with(
        &self,
        filter: UserFilter,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<ExportFile, ServiceError> {
        export_users(self.users.clone(), filter, &self.excel, progress).await
    }

    async fn job(&self, user: i64, id: &str) -> Result<ImportJobView, ServiceError> {
        jobs::view(&*self.jobs, &self.excel, &self.running_jobs, user, id).await
    }
}

/// Reads the users in pages and has [`write_workbook`] write them.
async fn export_users(
    users: Arc<dyn UserRepository>,
    filter: UserFilter,
    excel: &ExcelConfig,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<ExportFile, ServiceError> {
    // Two pages in flight at most: the database and the writer overlap, memory stays flat.
    let (pages, received) = mpsc::channel::<Vec<UserListing>>(2);
    let temp_dir = excel.temp_path();
    let writer = tokio::task::spawn_blocking(move || write_workbook(received, temp_dir));
    let page_size = i64::try_from(excel.export_page_size).unwrap_or(i64::MAX);
    let (mut after, mut rows) = (0, 0);
    loop {
        let page = users.page(&filter, after, page_size).await?;
        let last_page = page.len() < excel.export_page_size;
        rows += page.len();
        if rows > excel.max_export_rows {
            return Err(ServiceError::invalid(
                "",
                format!(
                    "more than {} users match (excel.max_export_rows): narrow the filter",
                    excel.max_export_rows
                ),
            ));
        }
        if let Some(user) = page.last() {
            after = user.id;
            if pages.send(page).await.is_err() {
                break; // the writer failed: its error is below
            }
            progress(rows);
        }
        if last_page {
            // The empty page says the listing is complete.
            let _ = pages.send(Vec::new()).await;
            break;
        }
    }
    drop(pages);
    let (file, len) = writer
        .await
        .map_err(|e| ServiceError::Internal(Box::new(e)))??;
    Ok(ExportFile { file, len, rows })
}

/// Writes the pages from `pages` (ended by an empty one) and zips the workbook into an
/// anonymous temp file.
fn write_workbook(
    mut pages: mpsc::Receiver<Vec<UserListing>>,
    temp_dir: Option<PathBuf>,
) -> Result<(File, u64), ExportError> {
    let mut workbook = Workbook::new();
    if let Some(dir) = &temp_dir {
        workbook.set_tempdir(dir)?;
    }
    let bold = Format::new().set_bold();
    let when = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    sheet.set_name("users")?;
    for (col, (name, width)) in EXPORT_HEADER
        .iter()
        .zip([12.0, 24.0, 8.0, 20.0])
        .enumerate()
    {
        let col = col as u16;
        sheet.write_string_with_format(0, col, *name, &bold)?;
        sheet.set_column_width(col, width)?;
    }
    let mut row: u32 = 0;
    let mut complete = false;
    while let Some(page) = pages.blocking_recv() {
        if page.is_empty() {
            complete = true;
            break;
        }
        for user in &page {
            row += 1;
            // Ids and genders are numbers (exact below 2^53); names are strings, never
            // formulas, whatever they start with.
            sheet.write_number(row, 0, user.id as f64)?;
            sheet.write_string(row, 1, &user.username)?;
            sheet.write_number(row, 2, f64::from(user.gender))?;
            sheet.write_datetime_with_format(row, 3, user.created_at, &when)?;
        }
    }
    if !complete {
        return Err(ExportError::Abandoned);
    }
    let mut file = match &temp_dir {
        Some(dir) => tempfile::tempfile_in(dir)?,
        None => tempfile::tempfile()?,
    };
    workbook.save_to_writer(&mut file)?;
    let len = file.stream_position()?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len))
}

//! The users import: a blocking reader streams the first sheet and validates each row with the
//! API's rules, in two passes over the uploaded file (issue 22):
//!
//! 1. **Check**: every row is read and validated, nothing is written and no lock is taken; a
//!    refused file (all-or-nothing with a bad row) ends here. The passwords of the rows that
//!    have one (at most `excel.max_password_rows`) are kept.
//! 2. **Hash**: those passwords are hashed on the import's own threads at the lowest OS
//!    priority (`excel.password_hash_slots`), never on the slots logins use.
//! 3. **Write**: the file is read again and the valid rows go in batches inside one
//!    transaction, committed at the end. On SQLite the write lock is held only here. New users
//!    count against the importing admin's `excel.max_created_per_hour` as they are written.
//!
//! Memory stays at a batch, the names seen and the hashes, however many rows there are.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::sync::mpsc;

use super::sheet::{self, Column, Flow, ReadError, Row, SheetError, Value, ZipLimits};
use crate::meta::config::ExcelConfig;
use crate::meta::validator::{validate_password, validate_username};
use crate::model::excel::{ImportMode, ImportReport, ImportedUser, OnExisting, RowError};
use crate::model::forms::canonical_username;
use crate::repository::error::RepoError;
use crate::repository::mysql::user::{UserImport, UserRepository};
use crate::repository::redis::throttle::LoginThrottleRepository;
use crate::service::error::ServiceError;
use crate::service::password::BulkPasswordHasher;

/// The users an admin's imports may create per hour (`excel.max_created_per_hour`), counted in
/// the throttle store (shared by the processes when Redis is on).
pub struct CreationBudget {
    /// The counters.
    pub throttle: Arc<dyn LoginThrottleRepository>,
    /// The admin's counter (`excel-created:<user id>`).
    pub subject: String,
    /// Users per window.
    pub limit: i64,
    /// The window (an hour).
    pub window: Duration,
}

/// How one import runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Bad rows: refuse all, or leave them out.
    pub mode: ImportMode,
    /// Existing usernames: skip or update.
    pub on_existing: OnExisting,
}

/// How far an import got (for background jobs' progress).
pub trait ImportProgress: Send + Sync {
    /// `rows` data rows read so far, `written` of them written.
    fn advanced(&self, rows: usize, written: usize);
}

impl ImportProgress for () {
    fn advanced(&self, _: usize, _: usize) {}
}

/// Times an import starts over when a concurrent writer took one of its names between the
/// lookup and the insert, or InnoDB chose it as a deadlock victim (the transaction is rolled
/// back and the file read again, a moment later; the next look sees the names).
const ATTEMPTS: usize = 5;

/// A random byte (for the retries' jitter).
fn rand_byte() -> u8 {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut byte = [0u8; 1];
    OsRng.fill_bytes(&mut byte);
    byte[0]
}

/// Imports the users of the workbook in `file` (see the module's documentation); `budget`
/// counts the users it creates (none from the command line).
///
/// # Errors
/// 400 / 30002 for a file that is not a readable users workbook or breaks a zip limit; 400 /
/// 10000 past `excel.max_import_rows` or `excel.max_password_rows`; 400 / 30001
/// ([`ServiceError::ImportRejected`]) when the mode is all-or-nothing and a row is bad; 429 /
/// 10008 past `excel.max_created_per_hour`; 503 / 10004 when the database fails or the import
/// outlives `excel.import_timeout`. Whatever the error, nothing was written.
pub async fn import_users(
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn BulkPasswordHasher>,
    file: File,
    options: ImportOptions,
    excel: &ExcelConfig,
    budget: Option<&CreationBudget>,
    progress: &dyn ImportProgress,
) -> Result<ImportReport, ServiceError> {
    let copy = |file: &File| {
        file.try_clone()
            .map_err(|e| ServiceError::Internal(Box::new(e)))
    };
    // One deadline for every phase and attempt: a job is never shown abandoned while it runs.
    let whole = async {
        let checked = check(copy(&file)?, options, excel, progress).await?;
        let (rows, passwords): (Vec<u32>, Vec<String>) = checked.passwords.into_iter().unzip();
        let hashes: HashMap<u32, String> = rows
            .into_iter()
            .zip(hasher.hash_all(passwords).await?)
            .collect();
        let mut attempt = 1;
        loop {
            let outcome = write(
                &*users,
                &hashes,
                copy(&file)?,
                options,
                excel,
                budget,
                &Progress {
                    inner: progress,
                    rows: checked.rows,
                },
            )
            .await;
            match outcome {
                Ok(report) => return Ok(report),
                Err(Failure::Raced(_)) if attempt < ATTEMPTS => {
                    // Apart, so that imports that lost to each other do not meet again at once.
                    let jitter = u64::from(rand_byte()) % 25;
                    tokio::time::sleep(Duration::from_millis(25 * attempt as u64 + jitter)).await;
                    attempt += 1;
                }
                Err(Failure::Raced(e)) => return Err(e.into()),
                Err(Failure::Service(e)) => return Err(e),
            }
        }
    };
    tokio::time::timeout(excel.import_timeout, whole)
        .await
        .unwrap_or_else(|_| {
            Err(ServiceError::Unavailable {
                dependency: "database",
                source: format!(
                    "the import outlived excel.import_timeout ({:?})",
                    excel.import_timeout
                )
                .into(),
            })
        })
}

/// The write pass's progress: rows read stay at what the check read (they never go back).
struct Progress<'a> {
    inner: &'a dyn ImportProgress,
    rows: usize,
}

impl ImportProgress for Progress<'_> {
    fn advanced(&self, _: usize, written: usize) {
        self.inner.advanced(self.rows, written);
    }
}

/// What the check pass found in a file that may be written.
struct Checked {
    /// Data rows read.
    rows: usize,
    /// (row number, password) of the valid rows with a 密码.
    passwords: Vec<(u32, String)>,
}

/// An attempt's failure: a unique-key race worth another attempt, or final.
enum Failure {
    Raced(RepoError),
    Service(ServiceError),
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        Failure::Service(e)
    }
}

impl From<RepoError> for Failure {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict(_) => Failure::Raced(e),
            other => Failure::Service(other.into()),
        }
    }
}

/// A row that passed validation, its password not yet hashed.
#[derive(Debug)]
struct Candidate {
    username: String,
    password: Option<String>,
    gender: i16,
    created_at: Option<NaiveDateTime>,
}

/// What the reader sends for each data row.
#[derive(Debug)]
enum Parsed {
    Good(u32, Candidate),
    Bad(Vec<RowError>),
}

/// Why the reader stopped early.
#[derive(Debug)]
enum ReaderStop {
    TooManyRows(usize),
    Gone,
}

/// One pass over the file: the blocking reader, and the rows it sends told apart into valid
/// ones (each name once) and problems, which the report counts and lists.
struct Pass {
    received: mpsc::Receiver<Vec<Parsed>>,
    reader: tokio::task::JoinHandle<Result<(), ReadError<ReaderStop>>>,
    report: ImportReport,
    seen: HashSet<Box<str>>,
    cap: usize,
}

impl Pass {
    fn start(file: File, options: ImportOptions, excel: &ExcelConfig) -> Self {
        let (sender, received) = mpsc::channel::<Vec<Parsed>>(2);
        let (zip, max_rows, batch) = (
            ZipLimits::of(excel),
            excel.max_import_rows,
            excel.import_batch_size,
        );
        Pass {
            received,
            reader: tokio::task::spawn_blocking(move || {
                read_guarded(file, zip, max_rows, batch, &sender)
            }),
            report: ImportReport {
                mode: options.mode,
                on_existing: options.on_existing,
                ..ImportReport::default()
            },
            seen: HashSet::new(),
            cap: excel.max_reported_errors,
        }
    }

    /// The valid rows of the next chunk, with their row numbers; `None` at the end.
    async fn next(&mut self) -> Option<Vec<(u32, Candidate)>> {
        let chunk = self.received.recv().await?;
        let mut valid = Vec::with_capacity(chunk.len());
        for parsed in chunk {
            self.report.rows += 1;
            let problems = match parsed {
                Parsed::Good(number, candidate) => {
                    if self.seen.insert(candidate.username.as_str().into()) {
                        valid.push((number, candidate));
                        continue;
                    }
                    vec![RowError {
                        row: number,
                        column: Column::Username.header().into(),
                        reason: "the same username is on an earlier row".into(),
                    }]
                }
                Parsed::Bad(problems) => problems,
            };
            self.report.invalid += 1;
            for problem in problems {
                self.report.report(problem, self.cap);
            }
        }
        Some(valid)
    }

    /// Ends the pass (the reader stops when it is not read any more): the report, or why the
    /// file could not be read.
    async fn finish(self) -> Result<ImportReport, ServiceError> {
        drop(self.received);
        match self
            .reader
            .await
            .map_err(|e| ServiceError::Internal(Box::new(e)))?
        {
            Err(ReadError::Sheet(e)) => Err(bad_workbook(e)),
            Err(ReadError::Row(ReaderStop::TooManyRows(max))) => Err(ServiceError::invalid(
                "uploadFile",
                format!("more than {max} data rows (excel.max_import_rows)"),
            )),
            Err(ReadError::Row(ReaderStop::Gone)) | Ok(()) => Ok(self.report),
        }
    }
}

/// The check pass: reads and validates every row, writes nothing.
///
/// # Errors
/// As [`import_users`], but for the database's.
async fn check(
    file: File,
    options: ImportOptions,
    excel: &ExcelConfig,
    progress: &dyn ImportProgress,
) -> Result<Checked, ServiceError> {
    let mut pass = Pass::start(file, options, excel);
    let mut passwords = Vec::new();
    let mut too_many_passwords = false;
    while let Some(valid) = pass.next().await {
        for (number, candidate) in valid {
            if let Some(password) = candidate.password {
                if passwords.len() == excel.max_password_rows {
                    too_many_passwords = true;
                } else {
                    passwords.push((number, password));
                }
            }
        }
        progress.advanced(pass.report.rows, 0);
    }
    let mut report = pass.finish().await?;
    if report.invalid > 0 && options.mode == ImportMode::AllOrNothing {
        report.rolled_back();
        return Err(ServiceError::ImportRejected(Box::new(report)));
    }
    if too_many_passwords {
        return Err(ServiceError::invalid(
            "uploadFile",
            format!(
                "more than {} rows with 密码 (excel.max_password_rows): each costs a password hash",
                excel.max_password_rows
            ),
        ));
    }
    Ok(Checked {
        rows: report.rows,
        passwords,
    })
}

/// The write pass: reads the checked file again and writes its valid rows in one transaction,
/// their passwords' `hashes` by row number.
async fn write(
    users: &dyn UserRepository,
    hashes: &HashMap<u32, String>,
    file: File,
    options: ImportOptions,
    excel: &ExcelConfig,
    budget: Option<&CreationBudget>,
    progress: &dyn ImportProgress,
) -> Result<ImportReport, Failure> {
    let mut created = Created { budget, kept: 0 };
    let outcome = write_counted(users, hashes, file, options, excel, &mut created, progress).await;
    if outcome.is_err() {
        // Nothing was written: the users this attempt counted were not created.
        created.give_back(created.kept).await;
    }
    outcome
}

/// The users an attempt counted against its budget and kept.
struct Created<'a> {
    budget: Option<&'a CreationBudget>,
    kept: i64,
}

impl Created<'_> {
    /// Counts `rows` new users just written; refused past the limit (the caller rolls back and
    /// gives everything back).
    async fn count(&mut self, rows: usize) -> Result<(), Failure> {
        let Some(budget) = self.budget.filter(|_| rows > 0) else {
            return Ok(());
        };
        let n = rows as i64;
        let count = budget
            .throttle
            .reserve_many(&budget.subject, n, budget.window)
            .await?;
        self.kept += n;
        if count > budget.limit {
            return Err(ServiceError::TooManyRequests.into());
        }
        Ok(())
    }

    /// Gives back `n` counted users that were not created after all (best effort: a failure
    /// only leaves the count higher).
    async fn give_back(&mut self, n: i64) {
        if let Some(budget) = self.budget
            && n > 0
        {
            let _ = budget.throttle.release_many(&budget.subject, n).await;
            self.kept -= n;
        }
    }
}

async fn write_counted(
    users: &dyn UserRepository,
    hashes: &HashMap<u32, String>,
    file: File,
    options: ImportOptions,
    excel: &ExcelConfig,
    created: &mut Created<'_>,
    progress: &dyn ImportProgress,
) -> Result<ImportReport, Failure> {
    let mut pass = Pass::start(file, options, excel);
    let mut open: Option<Box<dyn UserImport>> = None;
    // Only skip_invalid gets bad rows here: the check refused the others.
    let written = async {
        while let Some(valid) = pass.next().await {
            if valid.is_empty() {
                continue;
            }
            let batch: Vec<ImportedUser> = valid
                .into_iter()
                .map(|(number, candidate)| ImportedUser {
                    password_hash: candidate
                        .password
                        .and_then(|_| hashes.get(&number).cloned()),
                    username: candidate.username,
                    gender: candidate.gender,
                    created_at: candidate.created_at,
                })
                .collect();
            let import = match &mut open {
                Some(import) => import,
                None => open.insert(users.begin_import().await?),
            };
            let outcome = import.write(&batch, options.on_existing).await?;
            // Counted once written (uncommitted): past the allowance the whole transaction is
            // rolled back, so the users it counted were never created.
            created.count(outcome.inserted).await?;
            let report = &mut pass.report;
            report.add(outcome);
            progress.advanced(
                report.rows,
                report.inserted + report.updated + report.skipped,
            );
        }
        Ok::<(), Failure>(())
    }
    .await;
    let read = pass.finish().await;
    let mut report = match (written, read) {
        (Ok(()), Ok(report)) => report,
        (Err(failure), _) => {
            rollback(open).await;
            return Err(failure);
        }
        (Ok(()), Err(e)) => {
            rollback(open).await;
            return Err(e.into());
        }
    };
    if let Some(import) = open {
        import.commit().await?;
    }
    report.committed = true;
    Ok(report)
}

/// Rolls an open import back, best effort: a connection dropped mid-transaction is rolled back
/// by the server.
async fn rollback(open: Option<Box<dyn UserImport>>) {
    if let Some(import) = open {
        let _ = import.rollback().await;
    }
}

fn bad_workbook(e: SheetError) -> ServiceError {
    ServiceError::BadWorkbook(e.to_string())
}

/// [`read_file`], a panic in it taken for an unreadable file: calamine and zip have panicked
/// on hostile files before.
fn read_guarded(
    file: File,
    zip: ZipLimits,
    max_rows: usize,
    batch: usize,
    sender: &mpsc::Sender<Vec<Parsed>>,
) -> Result<(), ReadError<ReaderStop>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        read_file(file, zip, max_rows, batch, sender)
    }))
    .unwrap_or_else(|_| {
        Err(ReadError::Sheet(SheetError::Unreadable(
            "the reader failed on this file".into(),
        )))
    })
}

/// The blocking side: checks the zip, reads and validates the rows, sends them in chunks.
fn read_file(
    mut file: File,
    zip: ZipLimits,
    max_rows: usize,
    batch: usize,
    sender: &mpsc::Sender<Vec<Parsed>>,
) -> Result<(), ReadError<ReaderStop>> {
    sheet::check_zip(&mut file, zip).map_err(ReadError::Sheet)?;
    let now = chrono::Utc::now().naive_utc();
    let mut chunk = Vec::with_capacity(batch);
    let mut rows = 0;
    sheet::read_rows(file, |row| {
        rows += 1;
        if rows > max_rows {
            return Err(ReaderStop::TooManyRows(max_rows));
        }
        let number = row.number;
        chunk.push(match validate(row, now) {
            Ok(candidate) => Parsed::Good(number, candidate),
            Err(problems) => Parsed::Bad(problems),
        });
        if chunk.len() == batch {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(batch));
            sender.blocking_send(full).map_err(|_| ReaderStop::Gone)?;
        }
        Ok(Flow::Continue)
    })?;
    if !chunk.is_empty() {
        sender
            .blocking_send(chunk)
            .map_err(|_| ReadError::Row(ReaderStop::Gone))?;
    }
    Ok(())
}

/// The earliest creation time a row may carry (MySQL's TIMESTAMP starts in 1970).
fn earliest() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 2)
        .unwrap_or_default()
        .and_time(chrono::NaiveTime::MIN)
}

/// A row against the API's rules (registration's username, password and gender rules), every
/// problem of the row reported.
fn validate(mut row: Row, now: NaiveDateTime) -> Result<Candidate, Vec<RowError>> {
    let number = row.number;
    let mut problems = Vec::new();
    let mut problem = |column: Column, reason: String| {
        problems.push(RowError {
            row: number,
            column: column.header().into(),
            reason,
        });
    };
    let rule = |e: validator::ValidationError| {
        e.message
            .map(|m| m.into_owned())
            .unwrap_or_else(|| e.code.into_owned())
    };

    let username = match text_of(row.take(Column::Username)) {
        Ok(Some(name)) => {
            let name = canonical_username(&name);
            match validate_username(&name) {
                Ok(()) => Some(name),
                Err(e) => {
                    problem(Column::Username, rule(e));
                    None
                }
            }
        }
        Ok(None) => {
            problem(Column::Username, "required".into());
            None
        }
        Err(why) => {
            problem(Column::Username, why);
            None
        }
    };
    let password = match text_of(row.take(Column::Password)) {
        Ok(Some(password)) => match validate_password(&password) {
            Ok(()) => Some(password),
            Err(e) => {
                problem(Column::Password, rule(e));
                None
            }
        },
        Ok(None) => None,
        Err(why) => {
            problem(Column::Password, why);
            None
        }
    };
    let gender = match row.take(Column::Gender) {
        Value::Empty => Some(0),
        Value::Number(n) if [0.0, 1.0, 2.0].contains(&n) => Some(n as i16),
        Value::Text(t) => match t.trim() {
            "" | "0" | "未知" => Some(0),
            "1" | "男" => Some(1),
            "2" | "女" => Some(2),
            _ => None,
        },
        _ => None,
    };
    if gender.is_none() {
        problem(
            Column::Gender,
            "must be 0 (未知 unknown), 1 (男 male) or 2 (女 female)".into(),
        );
    }
    let created_at = match row.take(Column::CreatedAt) {
        Value::Empty => Ok(None),
        Value::DateTime(t) => Ok(Some(t)),
        Value::Text(t) if t.trim().is_empty() => Ok(None),
        Value::Text(t) => sheet::parse_date_time(&t).map(Some).ok_or(()),
        _ => Err(()),
    };
    let created_at = match created_at {
        Ok(Some(t)) if t < earliest() || t > now => {
            problem(
                Column::CreatedAt,
                "must lie between 1970-01-02 and now".into(),
            );
            None
        }
        Ok(t) => t,
        Err(()) => {
            problem(
                Column::CreatedAt,
                "must be a date, or text like 2026-01-02 03:04:05".into(),
            );
            None
        }
    };
    match (username, gender) {
        (Some(username), Some(gender)) if problems.is_empty() => Ok(Candidate {
            username,
            password,
            gender,
            created_at,
        }),
        _ => Err(problems),
    }
}

/// A text column's value: text as it is, numbers as typed (`123456`); `None` when empty.
fn text_of(value: Value) -> Result<Option<String>, String> {
    match value {
        Value::Empty => Ok(None),
        Value::Text(t) if t.is_empty() => Ok(None),
        Value::Text(t) => Ok(Some(t)),
        Value::Number(n) => Ok(Some(sheet::number_text(n))),
        Value::Bool(_) | Value::DateTime(_) | Value::BadDate => {
            Err("must be text, not a date or a boolean".into())
        }
        Value::Error(e) => Err(format!("an error cell ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    const LIMITS: ZipLimits = ZipLimits {
        max_entries: 100,
        max_unpacked: 64 << 20,
        max_ratio: 200,
        max_shared_strings: 16 << 20,
    };

    fn valid_workbook() -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let when = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
        let sheet = book.add_worksheet();
        for (c, name) in ["用户名", "性别", "密码", "创建时间"].iter().enumerate() {
            sheet.write_string(0, c as u16, *name).unwrap();
        }
        for r in 1..20u32 {
            sheet.write_string(r, 0, format!("fuzzer{r:03}")).unwrap();
            sheet.write_number(r, 1, f64::from(r % 3)).unwrap();
            sheet.write_string(r, 2, "abc12345").unwrap();
            sheet
                .write_number_with_format(r, 3, 45000.5, &when)
                .unwrap();
        }
        book.save_to_buffer().unwrap()
    }

    /// Reads `bytes` as an upload, the rows drained on another thread: what came back.
    fn read_bytes(bytes: &[u8]) -> (Result<(), ReadError<ReaderStop>>, usize) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let (sender, mut received) = mpsc::channel::<Vec<Parsed>>(2);
        let drain = std::thread::spawn(move || {
            let mut rows = 0;
            while let Some(chunk) = received.blocking_recv() {
                rows += chunk.len();
            }
            rows
        });
        let result = read_guarded(file, LIMITS, 10_000, 7, &sender);
        drop(sender);
        (result, drain.join().unwrap())
    }

    #[test]
    fn the_valid_workbook_reads_whole() {
        let (result, rows) = read_bytes(&valid_workbook());
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(rows, 19);
    }

    /// A sheet of random cells: shared-string indexes past the table, dates far outside
    /// Excel's range, odd types and references, rows out of order.
    fn sheet_xml() -> impl Strategy<Value = String> {
        let cell = (
            0u32..2_000_000,
            0u32..20_000,
            prop_oneof![
                Just("s"),
                Just("n"),
                Just("str"),
                Just("b"),
                Just("e"),
                Just("inlineStr"),
                Just("d"),
                Just("zz")
            ],
            prop_oneof![
                Just("0".to_owned()),
                Just("99999".to_owned()),
                Just("-1e300".to_owned()),
                Just("1e300".to_owned()),
                Just("NaN".to_owned()),
                Just("45000.5".to_owned()),
                Just("".to_owned()),
                "[ -~]{0,12}",
            ],
            0u8..3,
        );
        proptest::collection::vec(cell, 0..40).prop_map(|cells| {
            let mut xml = String::from(
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
            );
            for (row, col, kind, value, style) in cells {
                let value = value.replace(['<', '&'], "");
                let reference = format!("{}{}", (b'A' + (col % 26) as u8) as char, row + 1);
                xml.push_str(&format!(
                    r#"<row r="{}"><c r="{reference}" t="{kind}" s="{style}"><v>{value}</v><is><t>{value}</t></is></c></row>"#,
                    row + 1
                ));
            }
            xml.push_str("</sheetData></worksheet>");
            xml
        })
    }

    /// The valid workbook with its sheet replaced by `xml`.
    fn with_sheet(xml: &str) -> Vec<u8> {
        let mut source = zip::ZipArchive::new(std::io::Cursor::new(valid_workbook())).unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..source.len() {
            let entry = source.by_index_raw(i).unwrap();
            let name = entry.name().unwrap().into_owned();
            drop(entry);
            if name == "xl/worksheets/sheet1.xml" {
                out.start_file(name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                out.write_all(xml.as_bytes()).unwrap();
            } else {
                out.raw_copy_file(source.by_index_raw(i).unwrap()).unwrap();
            }
        }
        out.finish().unwrap().into_inner()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Damaged bytes anywhere (the zip directory included) and a cut: an answer, never a
        /// panic or a hang.
        #[test]
        fn damaged_workbooks_answer(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
            cut in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let mut bytes = valid_workbook();
            for (at, byte) in flips {
                let at = at.index(bytes.len());
                bytes[at] ^= byte | 1;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            let (result, _) = read_bytes(&bytes);
            if let Err(ReadError::Row(stop)) = result {
                prop_assert!(false, "the reader stopped for {stop:?}");
            }
        }

        /// A well-formed zip holding a hostile sheet: an answer, never a panic.
        #[test]
        fn hostile_sheets_answer(xml in sheet_xml()) {
            let (result, _) = read_bytes(&with_sheet(&xml));
            if let Err(ReadError::Row(stop)) = result {
                prop_assert!(false, "the reader stopped for {stop:?}");
            }
        }
    }
}

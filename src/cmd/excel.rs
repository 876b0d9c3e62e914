//! `go_example excel export|import`: the Excel service from the command line, on the
//! configured database, with progress bars (docs/excel.md).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use shaku::HasComponent;
use slog::Logger;

use crate::cmd::describe;
use crate::meta::config::AppConfig;
use crate::model::excel::{ImportMode, OnExisting};
use crate::model::user::UserFilter;
use crate::service::error::ServiceError;
use crate::service::excel::{ExcelService, ImportOptions, ImportProgress};

/// A spinner on stderr (hidden when stderr is not a terminal) with `what` before the counts.
fn spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Writes every user matching the filter to `out`; returns the number written.
///
/// # Errors
/// The database, the workbook or the file failed.
pub async fn export(
    config: &AppConfig,
    logger: &Logger,
    out: &Path,
    filter: UserFilter,
) -> anyhow::Result<usize> {
    let (infra, module) = crate::cmd::assemble(config, logger).await?;
    let excel: &dyn ExcelService = module.resolve_ref();
    let bar = spinner("{spinner} exporting users: {pos} rows written ({elapsed})");
    let progress = {
        let bar = bar.clone();
        move |rows: usize| bar.set_position(rows as u64)
    };
    let result = excel.export_with(filter, &progress).await;
    bar.finish_and_clear();
    infra.close().await;
    let workbook = result.map_err(describe)?;
    let mut file = tokio::fs::File::from_std(workbook.file);
    let mut target = tokio::fs::File::create(out)
        .await
        .with_context(|| format!("creating {}", out.display()))?;
    tokio::io::copy(&mut file, &mut target)
        .await
        .with_context(|| format!("writing {}", out.display()))?;
    target.sync_all().await?;
    eprintln!(
        "exported {} users to {} ({} bytes)",
        workbook.rows,
        out.display(),
        workbook.len
    );
    Ok(workbook.rows)
}

/// Progress to a spinner.
struct Bar(ProgressBar);

impl ImportProgress for Bar {
    fn advanced(&self, rows: usize, written: usize) {
        self.0.set_position(rows as u64);
        self.0.set_message(format!("{written} written"));
    }
}

/// Imports the workbook at `path`; prints the report as JSON on stdout.
///
/// # Errors
/// The file cannot be read, or the import failed or was refused (its report is printed
/// first).
pub async fn import(
    config: &AppConfig,
    logger: &Logger,
    path: &Path,
    mode: Option<ImportMode>,
    on_existing: Option<OnExisting>,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (infra, module) = crate::cmd::assemble(config, logger).await?;
    let excel: &dyn ExcelService = module.resolve_ref();
    let options = ImportOptions {
        mode: mode.unwrap_or(config.excel.import_mode),
        on_existing: on_existing.unwrap_or(config.excel.on_existing),
    };
    let bar = Bar(spinner(
        "{spinner} importing users: {pos} rows read, {msg} ({elapsed})",
    ));
    let result = excel.import_now(file, options, &bar).await;
    bar.0.finish_and_clear();
    infra.close().await;
    match result {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Err(ServiceError::ImportRejected(report)) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::bail!(
                "{} of {} rows are invalid; nothing was written (--mode skip_invalid leaves them out)",
                report.invalid,
                report.rows
            )
        }
        Err(e) => Err(describe(e)),
    }
}

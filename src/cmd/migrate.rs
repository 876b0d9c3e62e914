//! `go_example migrate`: applies the configured backend's pending migrations without the
//! diesel CLI.

use anyhow::Context;
use slog::Logger;

use crate::assembly::infra::Infra;
use crate::meta::config::AppConfig;

/// Applies pending migrations and logs each version applied.
///
/// # Errors
/// The database is unreachable or a migration fails.
pub async fn run(config: &AppConfig, logger: &Logger) -> anyhow::Result<Vec<String>> {
    let infra = Infra::build(config, logger)
        .await
        .context("building the database pool")?;
    let applied = infra.migrate().await.context("applying migrations")?;
    if applied.is_empty() {
        slog::info!(logger, "migrations: nothing to apply"; "backend" => infra.database.backend());
    }
    for version in &applied {
        slog::info!(logger, "migration applied"; "version" => version, "backend" => infra.database.backend());
    }
    infra.close().await;
    Ok(applied)
}

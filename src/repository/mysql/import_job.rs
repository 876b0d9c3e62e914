//! Excel import jobs in the relational database (`import_jobs`), where every process of the
//! deployment sees them (docs/excel.md).

use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use goex_database::{with_connection, with_write_connection};
use shaku::{Component, Interface};

use crate::model::excel::{ImportJobRow, JobStatus};
use crate::model::schema::import_jobs;
use crate::repository::client::DatabaseClient;
use crate::repository::error::RepoError;
use crate::repository::mysql::token::retrying;

/// Reads and writes import jobs. Reads go to the primary: progress must be current.
#[async_trait]
pub trait ImportJobRepository: Interface {
    /// Stores a new job.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn create(&self, job: &ImportJobRow) -> Result<(), RepoError>;

    /// Records a running job's progress at `now_ms`. On SQLite this writes nothing: the import
    /// holds SQLite's one write lock until it ends, so progress is then known only to the
    /// process that runs it.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn progress(
        &self,
        id: &str,
        rows: i64,
        written: i64,
        now_ms: i64,
    ) -> Result<(), RepoError>;

    /// Ends a job: `done` or `failed`, with its result (JSON).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn finish(
        &self,
        id: &str,
        status: JobStatus,
        rows: i64,
        written: i64,
        result: &str,
        now_ms: i64,
    ) -> Result<(), RepoError>;

    /// The job `id`, or `None`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn find(&self, id: &str) -> Result<Option<ImportJobRow>, RepoError>;

    /// Jobs of `users` changed after `since_ms`, oldest change first (the socket app's push).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn changed_since(
        &self,
        since_ms: i64,
        users: &[i64],
    ) -> Result<Vec<ImportJobRow>, RepoError>;

    /// Deletes jobs last changed before `before_ms`; returns how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn prune(&self, before_ms: i64) -> Result<usize, RepoError>;
}

/// What progress and the end write to a job's row (`None`: left as it is).
#[derive(AsChangeset)]
#[diesel(table_name = import_jobs)]
struct JobChange<'a> {
    status: Option<&'a str>,
    rows_read: i64,
    rows_written: i64,
    result: Option<&'a str>,
    updated_at: i64,
}

impl DieselImportJobRepository {
    /// Applies `change` to job `id` when its status is one of `statuses`, retried as a
    /// deadlock victim.
    async fn update(
        &self,
        id: &str,
        statuses: &[&str],
        change: &JobChange<'_>,
    ) -> Result<(), RepoError> {
        let db = self.db.database();
        retrying(|| async {
            with_write_connection!(db, |conn| {
                diesel::update(
                    import_jobs::table
                        .find(id)
                        .filter(import_jobs::status.eq_any(statuses)),
                )
                .set(change)
                .execute(conn)
                .await
            })
        })
        .await?;
        Ok(())
    }
}

/// [`ImportJobRepository`] over diesel-async.
#[derive(Component)]
#[shaku(interface = ImportJobRepository)]
pub struct DieselImportJobRepository {
    #[shaku(inject)]
    db: Arc<dyn DatabaseClient>,
}

#[async_trait]
impl ImportJobRepository for DieselImportJobRepository {
    async fn create(&self, job: &ImportJobRow) -> Result<(), RepoError> {
        let db = self.db.database();
        retrying(|| async {
            with_write_connection!(db, |conn| {
                diesel::insert_into(import_jobs::table)
                    .values(job)
                    .execute(conn)
                    .await
            })
        })
        .await?;
        Ok(())
    }

    async fn progress(
        &self,
        id: &str,
        rows: i64,
        written: i64,
        now_ms: i64,
    ) -> Result<(), RepoError> {
        if self.db.database().backend() == "sqlite" {
            return Ok(());
        }
        let change = JobChange {
            status: None,
            rows_read: rows,
            rows_written: written,
            result: None,
            updated_at: now_ms,
        };
        // Only while it runs: a late heartbeat never reopens an ended job.
        self.update(id, &[JobStatus::Running.as_str()], &change)
            .await
    }

    async fn finish(
        &self,
        id: &str,
        status: JobStatus,
        rows: i64,
        written: i64,
        result: &str,
        now_ms: i64,
    ) -> Result<(), RepoError> {
        let change = JobChange {
            status: Some(status.as_str()),
            rows_read: rows,
            rows_written: written,
            result: Some(result),
            updated_at: now_ms,
        };
        let any = [
            JobStatus::Running.as_str(),
            JobStatus::Done.as_str(),
            JobStatus::Failed.as_str(),
        ];
        self.update(id, &any, &change).await
    }

    async fn find(&self, id: &str) -> Result<Option<ImportJobRow>, RepoError> {
        let db = self.db.database();
        let row = with_connection!(db, |conn| {
            import_jobs::table
                .find(id)
                .select(ImportJobRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row)
    }

    async fn changed_since(
        &self,
        since_ms: i64,
        users: &[i64],
    ) -> Result<Vec<ImportJobRow>, RepoError> {
        let db = self.db.database();
        let rows = with_connection!(db, |conn| {
            import_jobs::table
                .filter(import_jobs::updated_at.gt(since_ms))
                .filter(import_jobs::user_id.eq_any(users))
                .order(import_jobs::updated_at.asc())
                .select(ImportJobRow::as_select())
                .load(conn)
                .await
        })?;
        Ok(rows)
    }

    async fn prune(&self, before_ms: i64) -> Result<usize, RepoError> {
        let db = self.db.database();
        let gone = retrying(|| async {
            with_write_connection!(db, |conn| {
                diesel::delete(import_jobs::table.filter(import_jobs::updated_at.lt(before_ms)))
                    .execute(conn)
                    .await
            })
        })
        .await?;
        Ok(gone)
    }
}

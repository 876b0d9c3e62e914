//! SQLite specifics: the async connection type over diesel's synchronous one, where its
//! blocking calls run, its pool, and statements run on a held connection's blocking side.

use diesel::SqliteConnection;
use diesel::result::ConnectionError;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use slog::Logger;

use crate::observe::Instruments;
use crate::{Database, DatabaseSettings, DbError, PooledCall, SqliteSettings};

/// The async SQLite connection type used by the pools.
pub type SqliteAsync = SyncConnectionWrapper<SqliteConnection, DetachedBlocking>;

/// Runs SQLite's blocking calls on tokio's blocking pool, and lets a call whose future is
/// dropped finish there on its own.
///
/// diesel-async's default spawner waits for such a call in the future's `Drop` with
/// `block_in_place`, which panics on a current-thread runtime: every actix worker is one, so a
/// client that went away mid-query, or actix dropping a request's pending extractors, panicked
/// the worker. Letting the call finish detached is safe: each call holds the connection's mutex
/// for its whole run, so the connection's next call (from whoever checks it out next) waits
/// for it to end, as the default spawner's callers did.
pub enum DetachedBlocking {
    /// The runtime the connection was made on.
    Handle(tokio::runtime::Handle),
    /// A runtime of its own, when the connection was made outside one (the diesel CLI path).
    Runtime(tokio::runtime::Runtime),
}

impl diesel_async::sync_connection_wrapper::SpawnBlocking for DetachedBlocking {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync>>>
    where
        R: Send + 'static,
    {
        let handle = match self {
            Self::Handle(handle) => handle.spawn_blocking(task),
            Self::Runtime(runtime) => runtime.spawn_blocking(task),
        };
        Box::pin(async move { handle.await.map_err(Into::into) })
    }

    fn get_runtime() -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => Self::Handle(handle),
            Err(_) => Self::Runtime(
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime for SQLite's blocking calls"),
            ),
        }
    }
}

/// A pooled SQLite connection in use by one statement. If the statement does not end (its
/// future was dropped, or it timed out), its blocking call may still be running with a share of
/// the connection, and diesel-async panics on the next transaction or pool check of a shared
/// connection ("Cannot access shared transaction state"): such a connection is taken out of the
/// pool instead of going back, and closes when the call ends.
#[doc(hidden)]
pub type SqliteCall = PooledCall<AsyncDieselConnectionManager<SqliteAsync>>;

/// Runs `task` on a held SQLite connection's synchronous connection, within
/// `database.query_timeout`: for what diesel-async does only with exclusive access (a
/// transaction's begin, commit and rollback) or not at all (multi-row inserts).
///
/// # Errors
/// The statement's error, or [`DbError::Unavailable`] when it takes longer.
pub async fn sqlite_blocking<R: Send + 'static>(
    db: &Database,
    call: &mut SqliteCall,
    task: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<R> + Send + 'static,
) -> Result<R, DbError> {
    db.bounded(async {
        call.connection()
            .spawn_blocking(task)
            .await
            .map_err(DbError::from)
    })
    .await
}

/// The pool of the SQLite file: WAL, `busy_timeout`, foreign keys, made on first use.
pub(crate) fn sqlite_pool(
    settings: &DatabaseSettings,
    sqlite: &SqliteSettings,
    logger: &Logger,
) -> Result<Pool<SqliteAsync>, DbError> {
    if let Some(dir) = sqlite.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            DbError::Settings(format!("sqlite.path {}: {e}", sqlite.path.display()))
        })?;
    }
    let busy_ms = sqlite.busy_timeout.as_millis();
    let sql_log = sqlite
        .is_debug
        .then(|| logger.new(slog::o!("db" => "sqlite")));
    let mut config = ManagerConfig::<SqliteAsync>::default();
    // No `SELECT 1` on each checkout (diesel-async's default, `Verified`): a connection to a
    // local file does not go away, and the check cost a blocking-pool hop per checkout.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let sql_log = sql_log.clone();
        Box::pin(async move {
            let mut conn = SqliteAsync::establish(&url).await?;
            // WAL lets readers run beside the single writer; busy_timeout makes writers queue
            // instead of failing with SQLITE_BUSY. busy_timeout first: the journal_mode pragma
            // needs a lock too, and a connection opened while another holds one (a long import)
            // failed with "database is locked" when it came second.
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
            ))
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
            if let Some(log) = sql_log {
                // The SQL log only: statements run on the blocking pool, away from the request's
                // task, so no statement observer would see whose they are.
                conn.set_instrumentation(Instruments::new(Some(log), None));
            }
            Ok(conn)
        })
    });
    let url = sqlite.path.to_string_lossy().into_owned();
    let manager = AsyncDieselConnectionManager::<SqliteAsync>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(sqlite.max_open.max(1))
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.acquire_timeout))
        .recycle_timeout(Some(settings.acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Settings(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a current-thread runtime, as on every actix worker: a query whose future is dropped
    /// in flight neither panics nor breaks the connection, which answers its next query.
    #[tokio::test]
    async fn a_sqlite_query_dropped_in_flight_finishes_on_its_own() {
        use diesel_async::RunQueryDsl;
        let mut conn = SqliteAsync::establish(":memory:").await.expect("sqlite");
        let slow = diesel::sql_query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
             SELECT count(*) FROM c",
        );
        let dropped =
            tokio::time::timeout(std::time::Duration::from_millis(5), slow.execute(&mut conn))
                .await;
        assert!(dropped.is_err(), "the query was still running when dropped");
        conn.batch_execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .await
            .expect("the connection's next query");
    }
}

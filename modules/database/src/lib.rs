//! Database pools for the repositories: MySQL through diesel-async's pure-Rust `mysql_async`
//! backend, or an embedded SQLite file through `SyncConnectionWrapper` (bundled libsqlite3).
//!
//! Pools are built lazily (a database that is down does not stop the process; requests that need
//! it fail fast with [`DbError::Unavailable`]) and carry the original's xorm knobs: `max_open`,
//! `max_idle`, `max_lifetime` and SQL logging when `is_debug` is on.
//!
//! MySQL can run as a group (the original's xorm `EngineGroup`): writes on the primary, reads on
//! replicas by policy, with health checks, fallback to the primary and read-your-writes
//! ([`group`], [`session`]).
//!
//! For metrics, each node's pool numbers can be read ([`Database::pool_status`]) and every
//! checkout reported to a [`PoolObserver`]. This crate stays free of any metrics library: the
//! observer is a trait the application's assembly implements over its registry, so the
//! dependency points from the assembly to both crates, never from a client crate to another.
//!
//! Files by job, re-exported here as one flat API: `settings.rs` (the config sections),
//! `error.rs` (what can fail), `pool.rs` (the [`Database`] handle, checkouts, held
//! connections), `sqlite.rs` and `mysql.rs` (each backend's pool and connection setup), `dsn.rs`
//! (MySQL DSN forms and accounts), `observe.rs` (pool numbers, checkout reports, SQL logging),
//! `macros.rs` (the connection macros).

pub mod group;
pub mod recycle;
pub mod session;
pub mod watch;

mod dsn;
mod error;
mod macros;
mod mysql;
mod observe;
mod pool;
mod settings;
mod sqlite;

pub use dsn::{MysqlAccount, mysql_account, mysql_url, node_label};
pub use error::{AcquireFailure, DbError};
pub use observe::{
    PoolObserver, PoolStatus, Statement, StatementEnd, StatementObserver, summarize,
};
pub use pool::{Database, DbPool, HeldConnection, PRIMARY_LABEL, PRIMARY_NODE, PooledCall};
pub use settings::{DatabaseSettings, Driver, MysqlSettings, ReplicaSettings, SqliteSettings};
pub use sqlite::{DetachedBlocking, SqliteAsync, SqliteCall, sqlite_blocking};

/// Types the [`with_connection!`] macro names.
pub mod reexport {
    pub use diesel_async::AsyncMysqlConnection;
}

diesel::define_sql_function! {
    /// MySQL's `LAST_INSERT_ID()`.
    #[sql_name = "LAST_INSERT_ID"]
    fn mysql_last_insert_id() -> diesel::sql_types::BigInt;
}

diesel::define_sql_function! {
    /// SQLite's `last_insert_rowid()`.
    #[sql_name = "last_insert_rowid"]
    fn sqlite_last_insert_rowid() -> diesel::sql_types::BigInt;
}

/// The connections whose last INSERT's generated id [`last_insert_id`] reads.
pub trait InsertedId: Send {
    /// Reads it.
    fn read_last_insert_id(
        &mut self,
    ) -> std::pin::Pin<Box<dyn Future<Output = diesel::QueryResult<i64>> + Send + '_>>;
}

impl InsertedId for diesel_async::AsyncMysqlConnection {
    fn read_last_insert_id(
        &mut self,
    ) -> std::pin::Pin<Box<dyn Future<Output = diesel::QueryResult<i64>> + Send + '_>> {
        use diesel_async::RunQueryDsl;
        // A function call, not an SQL literal: diesel-async caches its prepared statement (an
        // uncached literal statement is closed on the connection's next use).
        Box::pin(diesel::select(mysql_last_insert_id()).get_result(self))
    }
}

impl InsertedId for SqliteAsync {
    fn read_last_insert_id(
        &mut self,
    ) -> std::pin::Pin<Box<dyn Future<Output = diesel::QueryResult<i64>> + Send + '_>> {
        use diesel_async::RunQueryDsl;
        Box::pin(diesel::select(sqlite_last_insert_rowid()).get_result(self))
    }
}

/// The id the last INSERT on `conn` generated: MySQL has no `RETURNING`, so a repository inserts,
/// then reads the id back on the same connection (inside one `with_write_connection!` body, which
/// is compiled once per backend).
///
/// # Errors
/// The query fails.
pub async fn last_insert_id<C: InsertedId>(conn: &mut C) -> diesel::QueryResult<i64> {
    conn.read_last_insert_id().await
}

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

pub mod group;
pub mod recycle;
pub mod session;
pub mod watch;

use std::sync::Arc;

use std::path::PathBuf;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{ConnectionError, DatabaseErrorKind};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncMysqlConnection, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use slog::Logger;

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

/// Which database backs the repositories (`database.driver`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// The embedded default: a SQLite file, no server.
    Sqlite,
    /// A MySQL or MariaDB server.
    Mysql,
}

/// The `database` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite` or `mysql`.
    pub driver: Driver,
    /// Apply pending migrations when the app starts (on for the embedded default).
    pub migrate_on_start: bool,
    /// Longest wait for a free pooled connection before the request fails with 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Longest a statement may run before the request fails with 503 (a hung server must not
    /// hang requests).
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// A MySQL connection idle longer than this is checked (`SELECT 1`) before it is handed
    /// out; one used more recently is trusted (a dead one is dropped by the statement that
    /// finds it: `recycle`).
    #[serde(with = "humantime_serde", default = "default_verify_idle_after")]
    pub verify_idle_after: Duration,
}

fn default_verify_idle_after() -> Duration {
    recycle::VERIFY_AFTER
}

/// The `sqlite` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSettings {
    /// The database file; its folder is created if missing.
    pub path: PathBuf,
    /// Pooled connections (SQLite serialises writers; readers run in parallel under WAL).
    pub max_open: usize,
    /// How long a writer waits for the lock before failing (`PRAGMA busy_timeout`).
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// Log every SQL statement at debug level.
    pub is_debug: bool,
}

/// The `mysql` section (the original's `SingleConfig`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/database`; the Go form
    /// `user:password@tcp(host:port)/database?charset=utf8mb4` is accepted too.
    pub dsn: SecretString,
    /// Most connections open at once (`SetMaxOpenConns`).
    pub max_open: usize,
    /// Most idle connections kept (`SetMaxIdleConns`); extra idle ones are closed.
    pub max_idle: usize,
    /// Connections older than this are closed and replaced (`SetConnMaxLifetime`).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// Longest wait for a new connection to be established.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Log every SQL statement at debug level (xorm `ShowSQL`).
    pub is_debug: bool,
    /// Read replicas; empty means a single node. `mysql.dsn` is the primary.
    pub replicas: Vec<ReplicaSettings>,
    /// How reads are spread over healthy replicas.
    pub read_policy: group::ReadPolicy,
    /// How often replicas are pinged; a failing one leaves the rotation until it answers again.
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// After a session writes, its reads stay on the primary this long (0 = off).
    #[serde(with = "humantime_serde")]
    pub read_your_writes: Duration,
}

impl MysqlSettings {
    /// Who each DSN signs in as, by config key: `mysql.dsn`, then `mysql.replicas[i].dsn`
    /// (see [`mysql_account`]; the passwords stay inside).
    pub fn accounts(&self) -> Vec<(String, Result<MysqlAccount, DbError>)> {
        std::iter::once(("mysql.dsn".to_owned(), &self.dsn))
            .chain(
                self.replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("mysql.replicas[{i}].dsn"), &r.dsn)),
            )
            .map(|(key, dsn)| (key, mysql_account(dsn.expose_secret())))
            .collect()
    }
}

/// One read replica (`mysql.replicas[]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSettings {
    /// Its DSN. Use an account without write privileges: a write applied on a replica breaks
    /// GTID replication.
    pub dsn: SecretString,
    /// Share of reads under the `weighted` policy.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time, or the server went away.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The query failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The pool could not be built from the settings.
    #[error("database settings: {0}")]
    Settings(String),
}

impl DbError {
    /// Whether a read that failed so on a replica should be retried on the primary: the node
    /// was unreachable or the server refused the statement (e.g. a replica behind on DDL).
    pub fn is_node_failure(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable(_) | DbError::Query(diesel::result::Error::DatabaseError(..))
        )
    }

    /// Whether the error means the database could not be reached (as opposed to a bad query).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(diesel::result::Error::DatabaseError(kind, _)) => matches!(
                kind,
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
            ),
            _ => false,
        }
    }
}

/// Why a connection could not be checked out of a pool, as a bounded set for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireFailure {
    /// No connection was freed within `database.acquire_timeout`: the pool is saturated.
    Timeout,
    /// A new connection could not be made, or an idle one failed its check, in time or at
    /// all: the node is unreachable.
    Connect,
    /// The pool is closed (shutting down).
    Closed,
}

impl AcquireFailure {
    /// Every kind, for counters made ahead of their first increment.
    pub const ALL: [AcquireFailure; 3] = [Self::Timeout, Self::Connect, Self::Closed];

    /// `timeout`, `connect` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Closed => "closed",
        }
    }

    fn of<E>(e: &deadpool::managed::PoolError<E>) -> Self {
        use deadpool::managed::{PoolError as E, TimeoutType};
        match e {
            E::Timeout(TimeoutType::Wait) => Self::Timeout,
            E::Closed => Self::Closed,
            // Create/recycle timeouts, the driver's refusal, a failed hook; and no runtime,
            // which the builders here always set.
            E::Timeout(_) | E::Backend(_) | E::PostCreateHook(_) | E::NoRuntimeSpecified => {
                Self::Connect
            }
        }
    }
}

/// Told of every checkout made by [`with_connection!`], [`with_write_connection!`] and
/// [`with_read_connection!`] (the application's metrics implement it). Called on the request
/// path: implementations must be cheap and must not block.
pub trait PoolObserver: Send + Sync {
    /// A checkout from node `node` (its index in [`Database::node_labels`]) ended after
    /// `waited`, with a connection (`failure` is `None`) or without.
    fn checkout(&self, node: usize, waited: Duration, failure: Option<AcquireFailure>);
}

/// One pool's numbers at this instant (deadpool's `Pool::status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open, idle or checked out.
    pub size: usize,
    /// Idle connections ready to be checked out.
    pub available: usize,
    /// Most connections the pool opens.
    pub max_size: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl PoolStatus {
    /// Connections checked out.
    pub fn in_use(&self) -> usize {
        self.size.saturating_sub(self.available)
    }

    fn of<M: deadpool::managed::Manager>(pool: &deadpool::managed::Pool<M>) -> Self {
        let s = pool.status();
        Self {
            size: s.size,
            available: s.available,
            max_size: s.max_size,
            waiting: s.waiting,
        }
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// A pool of one backend or the other. Repositories match on it through [`with_connection!`].
#[derive(Clone)]
pub enum DbPool {
    /// MySQL / MariaDB.
    Mysql(recycle::MysqlPool),
    /// Embedded SQLite.
    Sqlite(Pool<SqliteAsync>),
}

/// The database client handed to repositories: a cheap clone of the pools.
#[derive(Clone)]
pub struct Database {
    pool: DbPool,
    replicas: Option<group::SharedSet>,
    recent_writes: Option<Arc<session::RecentWrites>>,
    query_timeout: Duration,
    logger: Logger,
    nodes: String,
    observer: Option<Arc<dyn PoolObserver>>,
    sqlite_path: Option<PathBuf>,
}

/// Runs `$body` with `$conn` bound to a pooled connection of the primary (or the only node),
/// without marking the session: pings, migrations, reads that must see the latest data.
/// Writes use [`with_write_connection!`], reads [`with_read_connection!`]. The body is compiled
/// once per backend, so the same diesel DSL serves MySQL and SQLite; it yields
/// `Result<T, diesel::result::Error>` and the macro `Result<T, DbError>`, bounded by
/// `database.query_timeout`.
#[macro_export]
macro_rules! with_connection {
    ($db:expr, |$conn:ident| $body:expr) => {{
        let db: &$crate::Database = &$db;
        $crate::__on_pool!(db, db.pool(), |$conn| $body)
    }};
}

/// [`with_connection!`] for writes and transactions: on the primary, and the current session
/// (see [`session`]) then reads from the primary for `mysql.read_your_writes`.
#[macro_export]
macro_rules! with_write_connection {
    ($db:expr, |$conn:ident| $body:expr) => {{
        let db: &$crate::Database = &$db;
        let result = $crate::__on_pool!(db, db.pool(), |$conn| $body);
        if result.is_ok() {
            db.note_write();
        }
        result
    }};
}

/// [`with_connection!`] for reads: on a healthy replica chosen by `mysql.read_policy`, else on
/// the primary. A read that fails on a replica is retried once on the primary and the replica
/// leaves the rotation, so a replica going down fails no request.
#[macro_export]
macro_rules! with_read_connection {
    ($db:expr, |$conn:ident| $body:expr) => {{
        let db: &$crate::Database = &$db;
        match db.pick_replica() {
            Some(replica) => {
                let in_flight = replica.begin_read();
                let first = match db.checkout(replica.node(), replica.pool()).await {
                    Ok(mut guard) => {
                        let result = {
                            let $conn: &mut $crate::reexport::AsyncMysqlConnection = &mut guard;
                            db.bounded(async { $body.map_err($crate::DbError::from) })
                                .await
                        };
                        $crate::recycle::settle(guard, &result);
                        result
                    }
                    Err(e) => Err(e),
                };
                drop(in_flight);
                match first {
                    Err(e) if e.is_node_failure() => {
                        db.replica_failed(replica, &e);
                        db.note_primary_read();
                        $crate::__on_pool!(db, db.pool(), |$conn| $body)
                    }
                    other => other,
                }
            }
            None => {
                db.note_primary_read();
                $crate::__on_pool!(db, db.pool(), |$conn| $body)
            }
        }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __on_pool {
    ($db:expr, $pool:expr, |$conn:ident| $body:expr) => {
        // `$pool` is the primary's (node 0).
        match $pool {
            $crate::DbPool::Mysql(pool) => match $db.checkout($crate::PRIMARY_NODE, pool).await {
                Ok(mut guard) => {
                    let result = {
                        let $conn: &mut $crate::reexport::AsyncMysqlConnection = &mut guard;
                        $db.bounded(async { $body.map_err($crate::DbError::from) })
                            .await
                    };
                    $crate::recycle::settle(guard, &result);
                    result
                }
                Err(e) => Err(e),
            },
            $crate::DbPool::Sqlite(pool) => match $db.checkout($crate::PRIMARY_NODE, pool).await {
                Ok(guard) => {
                    let mut call = $crate::SqliteCall::new(guard);
                    let (result, ended) = {
                        let $conn: &mut $crate::SqliteAsync = call.connection();
                        $db.bounded_call(async { $body.map_err($crate::DbError::from) })
                            .await
                    };
                    if ended {
                        call.ended();
                    }
                    result
                }
                Err(e) => Err(e),
            },
        }
    };
}

/// A pooled SQLite connection in use by one statement. If the statement does not end (its
/// future was dropped, or it timed out), its blocking call may still be running with a share of
/// the connection, and diesel-async panics on the next transaction or pool check of a shared
/// connection ("Cannot access shared transaction state"): such a connection is taken out of the
/// pool instead of going back, and closes when the call ends.
#[doc(hidden)]
pub type SqliteCall = PooledCall<AsyncDieselConnectionManager<SqliteAsync>>;

/// A pooled connection that goes back to the pool only once marked [`PooledCall::ended`];
/// dropped before that, it is taken out of the pool and closed ([`SqliteCall`],
/// [`HeldConnection`]).
pub struct PooledCall<M: deadpool::managed::Manager> {
    connection: Option<deadpool::managed::Object<M>>,
    ended: bool,
}

impl<M: deadpool::managed::Manager> PooledCall<M> {
    /// Holds `connection`.
    pub fn new(connection: deadpool::managed::Object<M>) -> Self {
        Self {
            connection: Some(connection),
            ended: false,
        }
    }

    /// The connection.
    pub fn connection(&mut self) -> &mut M::Type {
        self.connection.as_mut().expect("present until dropped")
    }

    /// Its use ended cleanly: it may go back to the pool.
    pub fn ended(&mut self) {
        self.ended = true;
    }
}

impl<M: deadpool::managed::Manager> Drop for PooledCall<M> {
    fn drop(&mut self) {
        if !self.ended
            && let Some(connection) = self.connection.take()
        {
            drop(deadpool::managed::Object::take(connection));
        }
    }
}

/// A connection of the primary kept checked out across several statements: a transaction that
/// spans awaits (the Excel import). Statements run on it through [`on_held!`]. Dropped inside a
/// transaction, or after a statement that did not end, it never goes back to the pool: it is
/// closed, and the server rolls the transaction back (an idle connection in the pool would
/// keep its locks). [`HeldConnection::release`] after a clean commit or rollback lets it go
/// back. A SQLite one's transaction is driven with [`sqlite_blocking`].
pub enum HeldConnection {
    /// MySQL / MariaDB.
    Mysql(PooledCall<recycle::MysqlManager>),
    /// Embedded SQLite.
    Sqlite(SqliteCall),
}

impl HeldConnection {
    /// The transaction ended cleanly: the connection may go back to the pool when dropped.
    pub fn release(&mut self) {
        match self {
            HeldConnection::Mysql(call) => call.ended(),
            HeldConnection::Sqlite(call) => call.ended(),
        }
    }
}

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

impl Database {
    /// Checks a primary connection out for [`HeldConnection`]'s use.
    ///
    /// # Errors
    /// [`DbError::Unavailable`] when no connection can be had in time.
    pub async fn hold_primary(&self) -> Result<HeldConnection, DbError> {
        Ok(match &self.pool {
            DbPool::Mysql(pool) => {
                HeldConnection::Mysql(PooledCall::new(self.checkout(PRIMARY_NODE, pool).await?))
            }
            DbPool::Sqlite(pool) => {
                HeldConnection::Sqlite(SqliteCall::new(self.checkout(PRIMARY_NODE, pool).await?))
            }
        })
    }
}

/// Runs `$body` with `$conn` bound to a [`HeldConnection`]'s connection, bounded by
/// `database.query_timeout` like [`with_connection!`]; the body is compiled once per backend and
/// yields `Result<T, diesel::result::Error>`, the macro `Result<T, DbError>`.
#[macro_export]
macro_rules! on_held {
    ($db:expr, $held:expr, |$conn:ident| $body:expr) => {{
        let db: &$crate::Database = &$db;
        match $held {
            $crate::HeldConnection::Mysql(call) => {
                let $conn: &mut $crate::reexport::AsyncMysqlConnection = call.connection();
                db.bounded(async { $body.map_err($crate::DbError::from) })
                    .await
            }
            $crate::HeldConnection::Sqlite(call) => {
                let $conn: &mut $crate::SqliteAsync = call.connection();
                db.bounded(async { $body.map_err($crate::DbError::from) })
                    .await
            }
        }
    }};
}

/// The primary's index among the nodes ([`Database::node_labels`]); replicas follow in
/// `mysql.replicas` order.
pub const PRIMARY_NODE: usize = 0;

/// The primary's label in node lists ([`group::NodeStats`], [`Database::node_labels`]).
pub const PRIMARY_LABEL: &str = "primary";

/// Types the [`with_connection!`] macro names.
pub mod reexport {
    pub use diesel_async::AsyncMysqlConnection;
}

impl Database {
    /// Builds the pool for `settings.driver`. Nothing is connected yet: connections are made on
    /// first use, so a database that is down fails requests, not the start.
    ///
    /// # Errors
    /// The settings cannot make a pool (bad DSN, SQLite folder not creatable).
    pub fn connect(
        settings: &DatabaseSettings,
        sqlite: &SqliteSettings,
        mysql: &MysqlSettings,
        logger: &Logger,
    ) -> Result<Database, DbError> {
        let (pool, replicas) = match settings.driver {
            Driver::Sqlite => (DbPool::Sqlite(sqlite_pool(settings, sqlite, logger)?), None),
            Driver::Mysql => {
                let primary = mysql_pool(settings, mysql, mysql.dsn.expose_secret(), logger)?;
                let mut nodes = Vec::with_capacity(mysql.replicas.len());
                for (i, replica) in mysql.replicas.iter().enumerate() {
                    let dsn = replica.dsn.expose_secret();
                    let pool = mysql_pool(settings, mysql, dsn, logger)?;
                    nodes.push(group::Replica::new(
                        node_label(dsn),
                        PRIMARY_NODE + 1 + i,
                        pool,
                        replica.weight,
                    ));
                }
                let set = (!nodes.is_empty())
                    .then(|| Arc::new(group::ReplicaSet::new(nodes, mysql.read_policy)));
                if let Some(set) = &set {
                    group::spawn_health_checks(
                        Arc::downgrade(set),
                        mysql.health_check_interval.max(Duration::from_millis(50)),
                        mysql.connect_timeout,
                        logger.new(slog::o!("db" => "mysql")),
                    );
                }
                (DbPool::Mysql(primary), set)
            }
        };
        let recent_writes = replicas
            .as_ref()
            .and_then(|_| session::RecentWrites::new(mysql.read_your_writes))
            .map(Arc::new);
        let nodes = match settings.driver {
            Driver::Sqlite => format!("sqlite {}", sqlite.path.display()),
            Driver::Mysql => {
                let replicas: Vec<String> = mysql
                    .replicas
                    .iter()
                    .map(|r| node_label(r.dsn.expose_secret()))
                    .collect();
                format!(
                    "mysql {} replicas [{}]",
                    node_label(mysql.dsn.expose_secret()),
                    replicas.join(", ")
                )
            }
        };
        Ok(Database {
            pool,
            replicas,
            recent_writes,
            query_timeout: settings.query_timeout,
            logger: logger.clone(),
            nodes,
            observer: None,
            sqlite_path: (settings.driver == Driver::Sqlite).then(|| sqlite.path.clone()),
        })
    }

    /// This database with every checkout reported to `observer` (before it is cloned: clones
    /// made earlier keep reporting to what they had).
    pub fn with_observer(mut self, observer: Arc<dyn PoolObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The nodes' labels, in node order: `primary` (the only node on SQLite or without
    /// replicas), then each replica's `host:port` as [`group::NodeStats`] names it.
    pub fn node_labels(&self) -> Vec<String> {
        std::iter::once(PRIMARY_LABEL.to_owned())
            .chain(
                self.replicas
                    .iter()
                    .flat_map(|s| s.replicas.iter().map(|r| r.label().to_owned())),
            )
            .collect()
    }

    /// Each node's pool numbers now, in the order of [`Database::node_labels`]. Cheap (one
    /// short lock per pool): meant for a metrics scrape, not for every request.
    pub fn pool_status(&self) -> Vec<PoolStatus> {
        let primary = match &self.pool {
            DbPool::Mysql(p) => PoolStatus::of(p),
            DbPool::Sqlite(p) => PoolStatus::of(p),
        };
        std::iter::once(primary)
            .chain(
                self.replicas
                    .iter()
                    .flat_map(|s| s.replicas.iter().map(|r| PoolStatus::of(&r.pool))),
            )
            .collect()
    }

    /// Checks a connection out of `pool`, node `node`, telling the observer if there is one
    /// (then the checkout costs two clock reads and a call; without, nothing).
    ///
    /// # Errors
    /// [`DbError::Unavailable`] when no connection can be had in time.
    #[doc(hidden)]
    pub async fn checkout<M>(
        &self,
        node: usize,
        pool: &deadpool::managed::Pool<M>,
    ) -> Result<deadpool::managed::Object<M>, DbError>
    where
        M: deadpool::managed::Manager<Error = ManagerError>,
    {
        let Some(observer) = &self.observer else {
            return pool.get().await.map_err(DbError::from);
        };
        let started = std::time::Instant::now();
        let result = pool.get().await;
        let failure = result.as_ref().err().map(AcquireFailure::of);
        observer.checkout(node, started.elapsed(), failure);
        result.map_err(DbError::from)
    }

    /// Where the pools point, without credentials (`mysql db:3306 replicas [r1:3306]`).
    pub fn nodes(&self) -> &str {
        &self.nodes
    }

    /// A healthy replica for the next read, or `None` to read from the primary (no replicas,
    /// none healthy, or the session wrote within the read-your-writes window).
    #[doc(hidden)]
    pub fn pick_replica(&self) -> Option<&group::Replica> {
        let set = self.replicas.as_ref()?;
        if self.recent_writes.as_ref().is_some_and(|r| r.pinned()) {
            return None;
        }
        set.pick()
    }

    #[doc(hidden)]
    pub fn replica_failed(&self, replica: &group::Replica, error: &DbError) {
        if let Some(set) = &self.replicas {
            set.mark_failed(replica, &self.logger, error);
        }
    }

    #[doc(hidden)]
    pub fn note_write(&self) {
        if let Some(r) = &self.recent_writes {
            r.wrote();
        }
    }

    #[doc(hidden)]
    pub fn note_primary_read(&self) {
        if let Some(set) = &self.replicas {
            set.primary_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// [`Database::bounded`], and whether the statement ended (`false`: it timed out, and a
    /// blocking SQLite call may still be running).
    #[doc(hidden)]
    pub async fn bounded_call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> (Result<T, DbError>, bool) {
        match tokio::time::timeout(self.query_timeout, fut).await {
            Ok(result) => (result, true),
            Err(_) => (
                Err(DbError::Unavailable(format!(
                    "no answer within {:?}",
                    self.query_timeout
                ))),
                false,
            ),
        }
    }

    /// Runs a statement within `database.query_timeout`.
    ///
    /// # Errors
    /// [`DbError::Unavailable`] when it takes longer.
    #[doc(hidden)]
    pub async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        match tokio::time::timeout(self.query_timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(DbError::Unavailable(format!(
                "no answer within {:?}",
                self.query_timeout
            ))),
        }
    }

    /// Reads served per node and their health (empty without replicas).
    pub fn node_stats(&self) -> Vec<group::NodeStats> {
        self.replicas
            .as_ref()
            .map(|s| s.stats())
            .unwrap_or_default()
    }

    /// The pool, for [`with_connection!`].
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// A [`watch::ChangeWatch`] of the SQLite file (none for MySQL), for caches that must see
    /// every commit: each call opens a connection of its own on first use.
    pub fn change_watch(&self) -> Option<watch::ChangeWatch> {
        self.sqlite_path.clone().map(watch::ChangeWatch::new)
    }

    /// `sqlite` or `mysql`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            DbPool::Mysql(_) => "mysql",
            DbPool::Sqlite(_) => "sqlite",
        }
    }

    /// Round-trips a `SELECT 1`.
    ///
    /// # Errors
    /// [`DbError::Unavailable`] when no connection can be had.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_connection!(self, |conn| conn.batch_execute("SELECT 1").await)
    }

    /// Applies the pending migrations of this backend; returns the versions applied.
    ///
    /// Needs a multi-threaded tokio runtime (diesel's harness is synchronous and runs under
    /// `block_in_place`).
    ///
    /// # Errors
    /// The database is unavailable or a migration fails.
    pub async fn migrate(
        &self,
        mysql: EmbeddedMigrations,
        sqlite: EmbeddedMigrations,
    ) -> Result<Vec<String>, DbError> {
        fn run<C>(
            harness: &mut AsyncMigrationHarness<C>,
            m: EmbeddedMigrations,
        ) -> Result<Vec<String>, DbError>
        where
            AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
            C: AsyncConnection,
            EmbeddedMigrations: diesel::migration::MigrationSource<C::Backend>,
        {
            harness
                .run_pending_migrations(m)
                .map(|v| v.into_iter().map(|v| v.to_string()).collect())
                .map_err(|e| DbError::Migration(e.to_string()))
        }
        match &self.pool {
            DbPool::Mysql(pool) => {
                let conn = pool.get().await?;
                let mut harness = AsyncMigrationHarness::new(deadpool::managed::Object::take(conn));
                run(&mut harness, mysql)
            }
            DbPool::Sqlite(pool) => {
                let conn = pool.get().await?;
                let mut harness = AsyncMigrationHarness::new(Object::take(conn));
                run(&mut harness, sqlite)
            }
        }
    }

    /// Closes the pools: waiting requests fail, idle connections are dropped.
    pub fn close(&self) {
        match &self.pool {
            DbPool::Mysql(p) => p.close(),
            DbPool::Sqlite(p) => p.close(),
        }
        for replica in self.replicas.iter().flat_map(|s| s.replicas.iter()) {
            replica.pool.close();
        }
    }
}

fn sqlite_pool(
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
                conn.set_instrumentation(SqlLog(log));
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

fn mysql_pool(
    settings: &DatabaseSettings,
    mysql: &MysqlSettings,
    dsn: &str,
    logger: &Logger,
) -> Result<recycle::MysqlPool, DbError> {
    let url = mysql_url(dsn)?;
    let sql_log = mysql
        .is_debug
        .then(|| logger.new(slog::o!("db" => "mysql")));
    let mut config = ManagerConfig::<AsyncMysqlConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let sql_log = sql_log.clone();
        Box::pin(async move {
            let mut conn = AsyncMysqlConnection::establish(&url).await?;
            // Sessions in UTC: TIMESTAMP defaults (CURRENT_TIMESTAMP) and the values the
            // application writes (chrono's UTC) then agree, as they do on SQLite, whatever the
            // server's own time zone.
            conn.batch_execute("SET time_zone = '+00:00'")
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            if let Some(log) = sql_log {
                conn.set_instrumentation(SqlLog(log));
            }
            Ok(conn)
        })
    });
    let manager = recycle::MysqlManager::new(
        AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(url, config),
        settings.verify_idle_after,
    );
    let pool = deadpool::managed::Pool::builder(manager)
        .max_size(mysql.max_open.max(1))
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(mysql.connect_timeout))
        .recycle_timeout(Some(mysql.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Settings(e.to_string()))?;
    spawn_reaper(pool.clone(), mysql.max_idle, mysql.max_lifetime);
    Ok(pool)
}

/// Enforces `max_idle` and `max_lifetime` on idle connections once a second, the way Go's
/// `database/sql` does (deadpool itself only bounds the total).
fn spawn_reaper(pool: recycle::MysqlPool, max_idle: usize, max_lifetime: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            let mut kept = 0usize;
            pool.retain(|_, metrics| {
                let keep =
                    (max_lifetime.is_zero() || metrics.age() < max_lifetime) && kept < max_idle;
                kept += usize::from(keep);
                keep
            });
        }
    });
}

/// Accepts the URL form and the Go driver's `user:pass@tcp(host:port)/db?params` form.
///
/// # Errors
/// The DSN is in neither form.
pub fn mysql_url(dsn: &str) -> Result<String, DbError> {
    if dsn.starts_with("mysql://") {
        return Ok(dsn.to_owned());
    }
    let bad = || {
        DbError::Settings("mysql.dsn is neither mysql://... nor user:pass@tcp(host:port)/db".into())
    };
    let (credentials, rest) = dsn.rsplit_once("@tcp(").ok_or_else(bad)?;
    let (host, rest) = rest.split_once(')').ok_or_else(bad)?;
    let (db, params) = rest
        .trim_start_matches('/')
        .split_once('?')
        .unwrap_or((rest.trim_start_matches('/'), ""));
    // Go's parseTime/charset/loc are driver hints mysql_async does not take.
    let _ = params;
    Ok(format!("mysql://{credentials}@{host}/{db}"))
}

/// Who a DSN signs in as. The password itself is left out, so a check or a message built from
/// this cannot print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlAccount {
    /// The user name, percent-decoded; empty when the DSN names none.
    pub user: String,
    /// Whether the DSN carries a non-empty password.
    pub has_password: bool,
}

/// The account of a DSN in either form [`mysql_url`] accepts: Go's `user:pass@tcp(...)/db`
/// (the password runs from the first `:` to the last `@tcp(`, as the Go driver reads it) or
/// `mysql://user:pass@host/db` (the user information is what precedes the last `@` of the
/// authority, as URL parsers read it).
///
/// # Errors
/// The DSN is in neither form (the message does not repeat it).
pub fn mysql_account(dsn: &str) -> Result<MysqlAccount, DbError> {
    mysql_url(dsn)?;
    let userinfo = match dsn.strip_prefix("mysql://") {
        Some(rest) => {
            let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
            authority
                .rsplit_once('@')
                .map_or("", |(userinfo, _)| userinfo)
        }
        None => dsn
            .rsplit_once("@tcp(")
            .map_or("", |(credentials, _)| credentials),
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let user = if dsn.starts_with("mysql://") {
        percent_decode(user)
    } else {
        user.to_owned()
    };
    Ok(MysqlAccount {
        user,
        has_password: !password.is_empty(),
    })
}

/// `%XX` sequences decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host:port` of a DSN, to name a node in logs and stats without its credentials.
pub fn node_label(dsn: &str) -> String {
    let url = mysql_url(dsn).unwrap_or_else(|_| dsn.to_owned());
    let after_at = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    let after_scheme = after_at.strip_prefix("mysql://").unwrap_or(after_at);
    after_scheme.split('/').next().unwrap_or("").to_owned()
}

/// Logs statements at debug level (xorm's `ShowSQL`). Bind values are not logged: they may hold
/// passwords or personal data.
struct SqlLog(Logger);

impl Instrumentation for SqlLog {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { query, error, .. } = event {
            let sql = query.to_string();
            let sql = sql.split(" -- binds:").next().unwrap_or(&sql);
            match error {
                None => slog::debug!(self.0, "sql"; "query" => sql),
                Some(e) => slog::debug!(self.0, "sql failed"; "query" => sql, "error" => %e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_dsn_becomes_a_url() {
        assert_eq!(
            mysql_url("root:root@tcp(127.0.0.1:3306)/go_example?charset=utf8mb4").unwrap(),
            "mysql://root:root@127.0.0.1:3306/go_example"
        );
        assert_eq!(mysql_url("mysql://u@h:1/d").unwrap(), "mysql://u@h:1/d");
        assert!(mysql_url("nonsense").is_err());
    }

    #[test]
    fn accounts_are_read_from_both_forms() {
        let account = |dsn: &str| mysql_account(dsn).unwrap();
        let user = |u: &str, has_password| MysqlAccount {
            user: u.into(),
            has_password,
        };
        assert_eq!(
            account("mysql://root@127.0.0.1:3306/go_example"),
            user("root", false)
        );
        assert_eq!(account("mysql://root:pw@h:1/d"), user("root", true));
        assert_eq!(account("mysql://%72oot:pw@h:1/d"), user("root", true));
        assert_eq!(account("mysql://app:@h:1/d"), user("app", false));
        assert_eq!(account("mysql://app:p%40ss@h:1/d?x=a@b"), user("app", true));
        assert_eq!(account("mysql://h:1/d"), user("", false));
        assert_eq!(
            account("root:root@tcp(127.0.0.1:3306)/x"),
            user("root", true)
        );
        assert_eq!(account("app:p@ss:w@tcp(db:3306)/x"), user("app", true));
        assert_eq!(account("app@tcp(db:3306)/x"), user("app", false));
        assert_eq!(account("@tcp(db:3306)/x"), user("", false));
        let err = mysql_account("secret-in-nonsense").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    type Seen = std::sync::Mutex<Vec<(usize, Duration, Option<AcquireFailure>)>>;

    struct Recorder(Arc<Seen>);

    impl PoolObserver for Recorder {
        fn checkout(&self, node: usize, waited: Duration, failure: Option<AcquireFailure>) {
            self.0.lock().unwrap().push((node, waited, failure));
        }
    }

    fn one_connection_sqlite() -> Database {
        let settings = DatabaseSettings {
            driver: Driver::Sqlite,
            migrate_on_start: false,
            acquire_timeout: Duration::from_millis(200),
            query_timeout: Duration::from_secs(2),
            verify_idle_after: Duration::from_secs(1),
        };
        let sqlite = SqliteSettings {
            path: ":memory:".into(),
            max_open: 1,
            busy_timeout: Duration::from_secs(1),
            is_debug: false,
        };
        let mysql = MysqlSettings {
            dsn: SecretString::from("mysql://u@127.0.0.1:1/x"),
            max_open: 1,
            max_idle: 1,
            max_lifetime: Duration::ZERO,
            connect_timeout: Duration::from_millis(100),
            is_debug: false,
            replicas: Vec::new(),
            read_policy: group::ReadPolicy::RoundRobin,
            health_check_interval: Duration::from_secs(1),
            read_your_writes: Duration::ZERO,
        };
        let logger = Logger::root(slog::Discard, slog::o!());
        Database::connect(&settings, &sqlite, &mysql, &logger).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkouts_are_reported_and_pools_read() {
        let seen = Arc::new(Seen::default());
        let db = one_connection_sqlite().with_observer(Arc::new(Recorder(seen.clone())));
        assert_eq!(db.node_labels(), vec!["primary".to_owned()]);
        db.ping().await.unwrap();
        let idle = db.pool_status()[0];
        assert_eq!((idle.size, idle.in_use(), idle.max_size), (1, 0, 1));

        let DbPool::Sqlite(pool) = db.pool() else {
            panic!("sqlite")
        };
        let held = db.checkout(PRIMARY_NODE, pool).await.unwrap();
        let busy = db.pool_status()[0];
        assert_eq!((busy.in_use(), busy.waiting), (1, 0));
        let waiter = tokio::spawn({
            let db = db.clone();
            async move { db.ping().await }
        });
        let mut waiting = 0;
        for _ in 0..100 {
            waiting = db.pool_status()[0].waiting;
            if waiting == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(waiting, 1, "the second caller waits");
        assert!(matches!(
            waiter.await.unwrap(),
            Err(DbError::Unavailable(_))
        ));
        drop(held);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.iter().all(|(node, _, _)| *node == PRIMARY_NODE));
        assert_eq!((seen[0].2, seen[1].2), (None, None));
        let (_, waited, failure) = seen[2];
        assert_eq!(failure, Some(AcquireFailure::Timeout));
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
    }

    #[test]
    fn pool_errors_map_to_bounded_kinds() {
        use deadpool::managed::{PoolError as E, TimeoutType};
        let kind = |e: E<()>| AcquireFailure::of(&e).as_str();
        assert_eq!(kind(E::Timeout(TimeoutType::Wait)), "timeout");
        assert_eq!(kind(E::Timeout(TimeoutType::Create)), "connect");
        assert_eq!(kind(E::Timeout(TimeoutType::Recycle)), "connect");
        assert_eq!(kind(E::Backend(())), "connect");
        assert_eq!(kind(E::Closed), "closed");
    }

    #[test]
    fn nodes_are_named_without_credentials() {
        assert_eq!(
            node_label("mysql://app:s3cret@db:3307/go_example"),
            "db:3307"
        );
        assert_eq!(node_label("app:s3cret@tcp(db:3306)/x"), "db:3306");
    }

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

    /// A pooled connection whose query was dropped in flight still has its blocking call
    /// running: diesel-async panics when the pool next checks it ("Cannot access shared
    /// transaction state"). It is taken out of the pool instead; the next caller gets a new one.
    #[tokio::test]
    async fn a_pooled_sqlite_connection_left_mid_query_is_not_reused() {
        use diesel_async::RunQueryDsl;
        let db = one_connection_sqlite();
        let dropped = tokio::time::timeout(Duration::from_millis(5), async {
            with_connection!(db, |conn| {
                diesel::sql_query(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                     WHERE x < 3000000) SELECT count(*) FROM c",
                )
                .execute(conn)
                .await
            })
        })
        .await;
        assert!(dropped.is_err(), "the query was still running when dropped");
        let mut held = db.hold_primary().await.expect("a connection");
        let HeldConnection::Sqlite(call) = &mut held else {
            panic!("sqlite")
        };
        use diesel_async::TransactionManager as _;
        type Manager = <SqliteAsync as AsyncConnection>::TransactionManager;
        Manager::begin_transaction(call.connection())
            .await
            .expect("a transaction");
        Manager::rollback_transaction(call.connection())
            .await
            .expect("rolled back");
    }
}

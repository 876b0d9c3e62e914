//! The database handle repositories get: the primary's pool and the replica set, checkouts
//! (observed and bounded by `database.query_timeout`), connections held across statements,
//! migrations and closing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;
use slog::Logger;

use crate::mysql::mysql_pool;
use crate::sqlite::sqlite_pool;
use crate::{
    AcquireFailure, DatabaseSettings, DbError, Driver, MysqlSettings, PoolObserver, PoolStatus,
    SqliteAsync, SqliteCall, SqliteSettings, StatementObserver, group, node_label, recycle,
    session, watch, with_connection,
};
// What the docs below link to.
#[cfg(doc)]
use crate::{on_held, sqlite_blocking};

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

/// The primary's index among the nodes ([`Database::node_labels`]); replicas follow in
/// `mysql.replicas` order.
pub const PRIMARY_NODE: usize = 0;

/// The primary's label in node lists ([`group::NodeStats`], [`Database::node_labels`]).
pub const PRIMARY_LABEL: &str = "primary";

impl Database {
    /// Builds the pool for `settings.driver`. Nothing is connected yet: connections are made on
    /// first use, so a database that is down fails requests, not the start.
    ///
    /// With `statements`, every MySQL statement is reported to it ([`StatementObserver`]).
    ///
    /// # Errors
    /// The settings cannot make a pool (bad DSN, SQLite folder not creatable).
    pub fn connect(
        settings: &DatabaseSettings,
        sqlite: &SqliteSettings,
        mysql: &MysqlSettings,
        logger: &Logger,
        statements: Option<Arc<dyn StatementObserver>>,
    ) -> Result<Database, DbError> {
        let (pool, replicas) = match settings.driver {
            Driver::Sqlite => (DbPool::Sqlite(sqlite_pool(settings, sqlite, logger)?), None),
            Driver::Mysql => {
                let statements = statements.as_ref();
                let primary = mysql_pool(
                    settings,
                    mysql,
                    mysql.dsn.expose_secret(),
                    logger,
                    statements,
                )?;
                let mut nodes = Vec::with_capacity(mysql.replicas.len());
                for (i, replica) in mysql.replicas.iter().enumerate() {
                    let dsn = replica.dsn.expose_secret();
                    let pool = mysql_pool(settings, mysql, dsn, logger, statements)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

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
        Database::connect(&settings, &sqlite, &mysql, &logger, None).unwrap()
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

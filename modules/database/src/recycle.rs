//! The MySQL pool's manager: diesel-async's, without its `SELECT 1` round trip on every
//! checkout of a connection that is in steady use.
//!
//! diesel-async's deadpool manager checks each connection it hands out with a `SELECT 1`
//! (`RecyclingMethod::Verified`): a third round trip for `GET /hello?id=` beside the user's
//! `SELECT` and the Redis `GET` (docs/benchmarks.md, issue 23). Go's `database/sql` sends
//! nothing there (go-sql-driver only peeks at the socket). Here the check runs only for a
//! connection not checked out within [`VERIFY_AFTER`]: one left idle, whose server may have
//! closed it or restarted since. A connection in steady use is handed out as is (after
//! diesel-async's own check that it is not inside a broken transaction); a statement on it
//! that fails as a dead connection would (or is cut off by `database.query_timeout`, leaving
//! it mid-protocol) takes it out of the pool ([`settle`]), so it never fails a second
//! request.

use std::time::Duration;

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, TransactionManager};

use crate::DbError;

/// A connection checked out within this long is not checked again with a round trip.
pub const VERIFY_AFTER: Duration = Duration::from_secs(1);

/// A pool of MySQL connections ([`MysqlManager`]).
pub type MysqlPool = deadpool::managed::Pool<MysqlManager>;

/// diesel-async's MySQL manager, verifying only connections idle for a while.
pub struct MysqlManager {
    inner: AsyncDieselConnectionManager<AsyncMysqlConnection>,
    verify_after: Duration,
}

impl MysqlManager {
    /// `inner`'s connections, verified by `inner`'s recycling method when not checked out
    /// within `verify_after` ([`VERIFY_AFTER`] in the app).
    pub fn new(
        inner: AsyncDieselConnectionManager<AsyncMysqlConnection>,
        verify_after: Duration,
    ) -> Self {
        Self {
            inner,
            verify_after,
        }
    }
}

impl std::fmt::Debug for MysqlManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlManager")
            .field("verify_after", &self.verify_after)
            .finish_non_exhaustive()
    }
}

impl deadpool::managed::Manager for MysqlManager {
    type Type = AsyncMysqlConnection;
    type Error = ManagerError;

    async fn create(&self) -> Result<AsyncMysqlConnection, ManagerError> {
        self.inner.create().await
    }

    async fn recycle(
        &self,
        conn: &mut AsyncMysqlConnection,
        metrics: &Metrics,
    ) -> RecycleResult<ManagerError> {
        if metrics.last_used() >= self.verify_after {
            return self.inner.recycle(conn, metrics).await;
        }
        // What diesel-async checks before its round trip.
        if std::thread::panicking()
            || <AsyncMysqlConnection as AsyncConnection>::TransactionManager::is_broken_transaction_manager(conn)
        {
            return Err(RecycleError::Message("Broken connection".into()));
        }
        Ok(())
    }
}

/// Whether a statement that failed with `error` may have left its connection unusable: the
/// connection went away or could not be written to (mysql_async's I/O and driver errors reach
/// diesel as `DatabaseError(Unknown, ..)`, as do server errors without a kind of their own), or
/// the statement was cut off mid-way (`Unavailable`: `database.query_timeout`).
pub fn in_doubt(error: &DbError) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match error {
        DbError::Unavailable(_) => true,
        DbError::Query(Error::DatabaseError(kind, _)) => matches!(
            kind,
            Kind::Unknown | Kind::ClosedConnection | Kind::UnableToSendCommand
        ),
        _ => false,
    }
}

/// A checked-out MySQL connection while its statement runs. A statement's future may be dropped
/// before it ends: actix-web polls a handler's extractors together and drops the others when one
/// fails (a bad body while the bearer token's login is being read), and a client may go away.
/// The connection is then mid-protocol (a result half read, a reply unread), and the next
/// statement on it would read the old one's bytes: dropped unsettled, it leaves the pool and
/// closes instead of going back.
#[doc(hidden)]
pub struct Checkout(Option<deadpool::managed::Object<MysqlManager>>);

impl Checkout {
    /// Watches `connection` until [`Checkout::settle`].
    pub fn new(connection: deadpool::managed::Object<MysqlManager>) -> Self {
        Self(Some(connection))
    }

    /// The statement ended with `result`: see [`settle`].
    pub fn settle<T>(mut self, result: &Result<T, DbError>) {
        if let Some(connection) = self.0.take() {
            settle(connection, result);
        }
    }
}

impl std::ops::Deref for Checkout {
    type Target = AsyncMysqlConnection;

    fn deref(&self) -> &AsyncMysqlConnection {
        match &self.0 {
            Some(connection) => connection,
            None => unreachable!("a checkout is used until it settles"),
        }
    }
}

impl std::ops::DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut AsyncMysqlConnection {
        match &mut self.0 {
            Some(connection) => connection,
            None => unreachable!("a checkout is used until it settles"),
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            drop(deadpool::managed::Object::take(connection));
        }
    }
}

/// Gives `connection` back to its pool after a statement that ended with `result`, or takes it
/// out (it closes) when the statement's failure leaves it [`in_doubt`]: without a check on
/// every checkout, a dead connection must not go back.
#[doc(hidden)]
pub fn settle<T>(connection: deadpool::managed::Object<MysqlManager>, result: &Result<T, DbError>) {
    if let Err(e) = result
        && in_doubt(e)
    {
        drop(deadpool::managed::Object::take(connection));
    }
}

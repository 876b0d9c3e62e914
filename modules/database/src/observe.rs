//! What the application can watch without this crate depending on a metrics library: each
//! pool's numbers ([`PoolStatus`]), every checkout ([`PoolObserver`]), and SQL statements logged
//! at debug level.

use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use slog::Logger;

use crate::AcquireFailure;
// What the docs below link to.
#[cfg(doc)]
use crate::{Database, with_connection, with_read_connection, with_write_connection};

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

    pub(crate) fn of<M: deadpool::managed::Manager>(pool: &deadpool::managed::Pool<M>) -> Self {
        let s = pool.status();
        Self {
            size: s.size,
            available: s.available,
            max_size: s.max_size,
            waiting: s.waiting,
        }
    }
}

/// Logs statements at debug level (xorm's `ShowSQL`). Bind values are not logged: they may hold
/// passwords or personal data.
pub(crate) struct SqlLog(pub(crate) Logger);

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

//! What can fail: [`DbError`] for callers, [`AcquireFailure`] as a bounded kind for metrics.

use diesel::result::DatabaseErrorKind;
use diesel_async::pooled_connection::deadpool::PoolError;

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

    pub(crate) fn of<E>(e: &deadpool::managed::PoolError<E>) -> Self {
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

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

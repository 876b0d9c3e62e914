//! The connection macros repositories use: one body, compiled once per backend, run on a
//! pooled (or held) connection within `database.query_timeout`. Exported at the crate root.

// What the docs below link to.
#[cfg(doc)]
use crate::{HeldConnection, session, with_read_connection, with_write_connection};

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
                    Ok(guard) => {
                        let mut guard = $crate::recycle::Checkout::new(guard);
                        let result = {
                            let $conn: &mut $crate::reexport::AsyncMysqlConnection = &mut guard;
                            db.bounded(async { $body.map_err($crate::DbError::from) })
                                .await
                        };
                        guard.settle(&result);
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
                Ok(guard) => {
                    let mut guard = $crate::recycle::Checkout::new(guard);
                    let result = {
                        let $conn: &mut $crate::reexport::AsyncMysqlConnection = &mut guard;
                        $db.bounded(async { $body.map_err($crate::DbError::from) })
                            .await
                    };
                    guard.settle(&result);
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

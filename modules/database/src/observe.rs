//! What the application can watch without this crate depending on a metrics library: each
//! pool's numbers ([`PoolStatus`]), every checkout ([`PoolObserver`]), and SQL statements logged
//! at debug level.

use std::sync::Arc;
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

/// Told of every statement a MySQL connection runs (the application's tracing implements it:
/// a span per statement). Called on the request path, inside the future that runs the
/// statement, so the request's task-locals are there; implementations must be cheap when they
/// do not follow a statement (return `None` before looking at its SQL).
///
/// SQLite statements are not reported: `SyncConnectionWrapper` runs them on the blocking pool,
/// away from the request's task.
pub trait StatementObserver: Send + Sync {
    /// `statement` begins: what to tell when it ends, or `None` to leave it.
    fn start(&self, statement: &Statement<'_>) -> Option<Box<dyn StatementEnd>>;
}

/// The end of a statement a [`StatementObserver`] follows.
pub trait StatementEnd: Send {
    /// It ended, failed with `error` (diesel's error, whose text holds no bind value) or not.
    fn end(self: Box<Self>, error: Option<&diesel::result::Error>);
}

/// A statement as it begins.
pub struct Statement<'a> {
    /// `mysql`.
    pub system: &'static str,
    /// The node it runs on, `host:port` ([`crate::node_label`]).
    pub server: &'a str,
    /// Its SQL as diesel shows it (bind values after ` -- binds:`): read it with [`summarize`],
    /// which never returns a value.
    pub sql: &'a dyn std::fmt::Display,
}

/// A statement's operation (`SELECT`, `INSERT`, ...: its first keyword, upper-cased, or `OTHER`)
/// and the table it names first (`FROM`, `INTO`, `UPDATE`), when that is a plain identifier of
/// at most 64 characters. Nothing else of the SQL is returned: no value, no bind.
pub fn summarize(sql: &str) -> (&'static str, Option<&str>) {
    const OPERATIONS: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "REPLACE",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "SET",
        "SHOW",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "WITH",
    ];
    let sql = sql.split(" -- binds:").next().unwrap_or(sql).trim_start();
    let first = sql
        .split(|c: char| c.is_ascii_whitespace() || c == '(' || c == ';')
        .next()
        .unwrap_or("");
    let Some(operation) = OPERATIONS
        .iter()
        .copied()
        .find(|op| op.eq_ignore_ascii_case(first))
    else {
        return ("OTHER", None);
    };
    let after = match operation {
        "SELECT" | "DELETE" | "WITH" => " FROM ",
        "INSERT" | "REPLACE" => " INTO ",
        "UPDATE" => "UPDATE ",
        _ => return (operation, None),
    };
    let table = find_ignore_case(sql, after)
        .map(|at| sql[at + after.len()..].trim_start())
        .and_then(|rest| {
            rest.split(|c: char| c.is_ascii_whitespace() || c == '(' || c == ',' || c == ';')
                .next()
        })
        .map(|name| name.trim_matches(|c| c == '`' || c == '"'))
        .filter(|name| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'`')
        });
    (operation, table)
}

/// The byte offset of the first `needle` (ASCII) in `haystack`, case aside.
fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// What a connection reports its statements to: the debug SQL log (xorm's `ShowSQL`; bind values
/// are not logged: they may hold passwords or personal data) and the statement observer.
pub(crate) struct Instruments {
    sql_log: Option<Logger>,
    statements: Option<(Arc<dyn StatementObserver>, Arc<str>)>,
    open: Option<Box<dyn StatementEnd>>,
}

impl Instruments {
    /// Reporting to `sql_log` and `statements` (the observer and the node's label).
    pub(crate) fn new(
        sql_log: Option<Logger>,
        statements: Option<(Arc<dyn StatementObserver>, Arc<str>)>,
    ) -> Self {
        Self {
            sql_log,
            statements,
            open: None,
        }
    }

    /// Whether there is anything to report to (else the connection gets no instrumentation).
    pub(crate) fn any(&self) -> bool {
        self.sql_log.is_some() || self.statements.is_some()
    }
}

impl Instrumentation for Instruments {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                if let Some((observer, server)) = &self.statements {
                    struct Sql<'a>(&'a dyn diesel::connection::DebugQuery);
                    impl std::fmt::Display for Sql<'_> {
                        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                            std::fmt::Display::fmt(self.0, f)
                        }
                    }
                    self.open = observer.start(&Statement {
                        system: "mysql",
                        server,
                        sql: &Sql(query),
                    });
                }
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                if let Some(end) = self.open.take() {
                    end.end(error);
                }
                if let Some(log) = &self.sql_log {
                    let sql = query.to_string();
                    let sql = sql.split(" -- binds:").next().unwrap_or(&sql);
                    match error {
                        None => slog::debug!(log, "sql"; "query" => sql),
                        Some(e) => slog::debug!(log, "sql failed"; "query" => sql, "error" => %e),
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_summarized_by_operation_and_table_without_values() {
        for (sql, want) in [
            (
                "SELECT `users`.`id`, `users`.`username` FROM `users` WHERE (`users`.`id` = ?) -- binds: [1]",
                ("SELECT", Some("users")),
            ),
            (
                "INSERT INTO `users` (`username`, `password_hash`) VALUES (?, ?) -- binds: [\"alice\", \"secret\"]",
                ("INSERT", Some("users")),
            ),
            (
                "UPDATE `logins` SET `revoked` = ? WHERE (`id` = ?) -- binds: [true, 3]",
                ("UPDATE", Some("logins")),
            ),
            (
                "delete from import_jobs where id = 4",
                ("DELETE", Some("import_jobs")),
            ),
            ("SET time_zone = '+00:00'", ("SET", None)),
            ("BEGIN", ("BEGIN", None)),
            ("SELECT 1", ("SELECT", None)),
            ("SELECT * FROM (SELECT 1) AS t", ("SELECT", None)),
            ("CALL secret('password')", ("OTHER", None)),
            ("", ("OTHER", None)),
            (
                "SELECT x FROM `a_table_name_that_is_far_too_long_to_be_a_table_anyone_would_really_write`",
                ("SELECT", None),
            ),
        ] {
            assert_eq!(summarize(sql), want, "{sql}");
        }
    }
}

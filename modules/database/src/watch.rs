//! Whether anything was committed to a SQLite file since a reader last looked, for caches that
//! must never serve a row another connection (of this process or another) has changed.
//!
//! SQLite's `PRAGMA data_version` answers exactly that: on one connection, its value changes
//! when any *other* connection commits. The watch keeps one connection of its own that never
//! writes, so every commit to the file (from this process's pool or from another process
//! sharing the file, as `make http` and `make grpc` do) changes what it reads. Under WAL the
//! pragma reads the shared-memory index, not the file: a few microseconds, run in place on the
//! caller's thread (no pool checkout, no blocking-thread hop).

use std::path::PathBuf;
use std::sync::Mutex;

use diesel::connection::SimpleConnection;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::BigInt;
use diesel::sqlite::Sqlite;
use diesel::{Connection, QueryResult, RunQueryDsl, SqliteConnection};

/// A stamp of the database's contents: two equal stamps from one [`ChangeWatch`] mean nothing
/// was committed in between.
pub type DataVersion = i64;

/// `PRAGMA data_version` as a query with a static id, so that diesel prepares it once per
/// connection and keeps the statement (`sql_query` would prepare it on every call).
#[derive(Clone, Copy, QueryId)]
struct DataVersionQuery;

impl Query for DataVersionQuery {
    type SqlType = BigInt;
}

impl QueryFragment<Sqlite> for DataVersionQuery {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("PRAGMA data_version");
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for DataVersionQuery {}

/// Reads [`DataVersion`]s of one SQLite file (see the module's documentation).
pub struct ChangeWatch {
    path: PathBuf,
    // Opened on first use (the file may not exist before the migrations ran), and again after
    // an error.
    conn: Mutex<Option<SqliteConnection>>,
}

impl ChangeWatch {
    /// A watch of the SQLite file at `path` (opened on first use).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            conn: Mutex::new(None),
        }
    }

    /// The current stamp; `None` when it cannot be read (the file is busy being recovered, or
    /// cannot be opened): the caller then reads the data itself, as without a watch.
    pub fn version(&self) -> Option<DataVersion> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = self.open();
        }
        let conn = guard.as_mut()?;
        match DataVersionQuery.get_result::<i64>(conn) {
            Ok(version) => Some(version),
            Err(_) => {
                *guard = None;
                None
            }
        }
    }

    fn open(&self) -> Option<SqliteConnection> {
        let mut conn = SqliteConnection::establish(&self.path.to_string_lossy()).ok()?;
        // Never wait: a read that cannot start at once is answered by the caller's own query.
        conn.batch_execute("PRAGMA busy_timeout = 0; PRAGMA query_only = ON;")
            .ok()?;
        Some(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> SqliteConnection {
        let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        conn.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (v INTEGER);")
            .unwrap();
        conn
    }

    #[test]
    fn a_commit_by_any_other_connection_changes_the_version_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut writer = open(&path);
        let watch = ChangeWatch::new(path.clone());
        let first = watch.version().expect("readable");
        assert_eq!(watch.version(), Some(first), "no commit, same stamp");
        diesel::sql_query("INSERT INTO t VALUES (1)")
            .execute(&mut writer)
            .unwrap();
        let second = watch.version().unwrap();
        assert_ne!(second, first, "a commit of another connection is seen");
        // A transaction in progress is not a change until it commits.
        writer
            .batch_execute("BEGIN; INSERT INTO t VALUES (2);")
            .unwrap();
        assert_eq!(watch.version(), Some(second));
        writer.batch_execute("COMMIT;").unwrap();
        assert_ne!(watch.version(), Some(second));
        // A second writer, as another process would be.
        let mut other = open(&path);
        let third = watch.version().unwrap();
        diesel::sql_query("DELETE FROM t")
            .execute(&mut other)
            .unwrap();
        assert_ne!(watch.version(), Some(third));
    }

    #[test]
    fn an_unopenable_file_answers_none() {
        let watch = ChangeWatch::new(PathBuf::from("/nonexistent-dir/for/sure/x.db"));
        assert_eq!(watch.version(), None);
    }
}

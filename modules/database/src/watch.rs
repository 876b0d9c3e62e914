//! Whether anything was committed to a SQLite file since a reader last looked, for caches that
//! must never serve a row another connection (of this process or another) has changed.
//!
//! SQLite's `PRAGMA data_version` answers exactly that: on one connection, its value changes
//! when any *other* connection commits. The watch keeps one connection of its own that never
//! writes, so every commit to the file (from this process's pool or from another process
//! sharing the file, as `make http` and `make grpc` do) changes what it reads. Under WAL the
//! pragma reads the shared-memory index, not the file: a few microseconds, run in place on the
//! caller's thread (no pool checkout, no blocking-thread hop).

use std::ffi::CString;
use std::path::PathBuf;
use std::ptr;
use std::sync::Mutex;

use libsqlite3_sys as ffi;

/// A stamp of the database's contents: two equal stamps from one [`ChangeWatch`] mean nothing
/// was committed in between.
pub type DataVersion = i64;

/// The watch's own connection and its prepared `PRAGMA data_version`, on libsqlite3 directly:
/// through diesel, the statement-cache lookup and the row iterator cost about as much again as
/// SQLite's own step (the read runs on every protected request).
struct Reader {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
}

// SAFETY: the connection is opened in multi-thread mode (`SQLITE_OPEN_NOMUTEX`: usable from any
// thread, by one at a time) and a `Reader` is only used under the watch's mutex.
unsafe impl Send for Reader {}

impl Reader {
    /// Opens `path` (never creating it) and prepares the pragma.
    fn open(path: &std::path::Path) -> Option<Self> {
        let path = CString::new(path.to_str()?).ok()?;
        let mut db = ptr::null_mut();
        // SAFETY: valid C string and out pointer; the handle is closed by `Drop` (also when
        // opening failed, as SQLite asks).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let mut reader = Reader {
            db,
            stmt: ptr::null_mut(),
        };
        if rc != ffi::SQLITE_OK || db.is_null() {
            return None;
        }
        // Never wait: a read that cannot start at once is answered by the caller's own query.
        // And never write.
        let setup = c"PRAGMA busy_timeout = 0; PRAGMA query_only = ON;";
        // SAFETY: open handle, NUL-terminated SQL, no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(db, setup.as_ptr(), None, ptr::null_mut(), ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return None;
        }
        let sql = c"PRAGMA data_version";
        // SAFETY: open handle, NUL-terminated SQL (-1: read to the NUL), out pointer; the
        // statement is finalized by `Drop` before the connection closes.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr(),
                -1,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut reader.stmt,
                ptr::null_mut(),
            )
        };
        (rc == ffi::SQLITE_OK && !reader.stmt.is_null()).then_some(reader)
    }

    /// One read of the pragma.
    fn read(&mut self) -> Option<DataVersion> {
        // SAFETY: a statement prepared on this open connection, used by one thread at a time;
        // it is reset after every step, so each read starts (and ends) its own transaction.
        unsafe {
            let version = match ffi::sqlite3_step(self.stmt) {
                ffi::SQLITE_ROW => Some(ffi::sqlite3_column_int64(self.stmt, 0)),
                _ => None,
            };
            let reset = ffi::sqlite3_reset(self.stmt);
            version.filter(|_| reset == ffi::SQLITE_OK)
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // SAFETY: both handles come from SQLite and are released once, the statement first (so the close succeeds); finalize and close
        // accept null.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
            ffi::sqlite3_close(self.db);
        }
    }
}

/// Reads [`DataVersion`]s of one SQLite file (see the module's documentation).
pub struct ChangeWatch {
    path: PathBuf,
    // Opened on first use (the file may not exist before the migrations ran), and again after
    // an error.
    reader: Mutex<Option<Reader>>,
}

impl ChangeWatch {
    /// A watch of the SQLite file at `path` (opened on first use).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            reader: Mutex::new(None),
        }
    }

    /// The current stamp; `None` when it cannot be read (the file is busy being recovered, or
    /// cannot be opened): the caller then reads the data itself, as without a watch.
    pub fn version(&self) -> Option<DataVersion> {
        let mut guard = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Reader::open(&self.path);
        }
        let version = guard.as_mut()?.read();
        if version.is_none() {
            *guard = None;
        }
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

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

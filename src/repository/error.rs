//! The repository layer's one error type. Driver errors (diesel, pool, later redis and mongodb)
//! are converted here, once, and never reach a service.

use goex_database::DbError;

/// A boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The record does not exist.
    #[error("record not found")]
    NotFound,
    /// A unique constraint was violated (e.g. a username that is taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backing store cannot be reached in time.
    #[error("{dependency} unavailable")]
    Unavailable {
        /// The dependency by name, as `/readyz` reports it.
        dependency: &'static str,
        /// What the driver said.
        #[source]
        source: BoxError,
    },
    /// Anything else: a bug or a broken invariant.
    #[error("repository failure")]
    Internal(#[source] BoxError),
}

impl RepoError {
    /// A unique violation on `table` named by its column: the first of `columns` whose unique
    /// key (`uk_<table>_<column>` in MySQL's and MongoDB's messages, `<table>.<column>` in
    /// SQLite's) the driver names. Any other error is returned as it is.
    pub fn named_conflict(self, table: &str, columns: &[&str]) -> RepoError {
        let RepoError::Conflict(message) = &self else {
            return self;
        };
        // Whole names only: `code` must not match the key of `code_2`.
        let names = |column: &&&str| {
            message.contains(&format!("uk_{table}_{column}'"))
                || message
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .any(|word| {
                        word == format!("{table}.{column}")
                            || word == format!("uk_{table}_{column}")
                    })
        };
        let named = columns.iter().find(names);
        match named {
            Some(column) => RepoError::Conflict((*column).to_owned()),
            None => self,
        }
    }
}

impl From<DbError> for RepoError {
    fn from(e: DbError) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as Diesel};
        if e.is_unavailable() {
            return RepoError::Unavailable {
                dependency: "database",
                source: Box::new(e),
            };
        }
        match e {
            DbError::Query(Diesel::NotFound) => RepoError::NotFound,
            DbError::Query(Diesel::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
                RepoError::Conflict(info.message().to_owned())
            }
            other => RepoError::Internal(Box::new(other)),
        }
    }
}

//! Users in the relational database (`users` table), for MySQL and the embedded SQLite alike.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::connection::{AnsiTransactionManager, TransactionManager as _};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, TransactionManager};
use goex_database::{
    Database, HeldConnection, on_held, sqlite_blocking, with_read_connection, with_write_connection,
};
use shaku::{Component, Interface};

use crate::model::excel::{BatchOutcome, ImportedUser, NO_PASSWORD, OnExisting};
use crate::model::schema::users;
use crate::model::user::{NewPhoneUser, NewUser, User, UserFilter, UserListing};
use crate::repository::client::DatabaseClient;
use crate::repository::error::RepoError;

/// Reads and writes user rows.
#[async_trait]
pub trait UserRepository: Interface {
    /// The user with `id`, or `None`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn find(&self, id: i64) -> Result<Option<User>, RepoError>;

    /// The user named `username`, or `None`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, RepoError>;

    /// [`UserRepository::find_by_username`] on the primary: for a change that must see the
    /// latest row.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn find_by_username_on_primary(&self, username: &str) -> Result<Option<User>, RepoError>;

    /// Replaces the password hash of user `id`.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user; [`RepoError::Unavailable`].
    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), RepoError>;

    /// Inserts a user and returns the stored row.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] when the username is taken.
    async fn create(&self, new: NewUser<'_>) -> Result<User, RepoError>;

    /// The user whose verified number is `phone`; when there is none, creates one named by the
    /// first of `names` that is free (with no password), all on the primary. Parallel calls
    /// for one phone create one user.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] when every name is taken; [`RepoError::Unavailable`].
    async fn find_or_create_by_phone(
        &self,
        phone: &str,
        names: &[String],
    ) -> Result<User, RepoError>;

    /// The user whose verified number is `phone`, or `None` (read from the primary: it
    /// decides a login).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn find_by_phone(&self, phone: &str) -> Result<Option<User>, RepoError>;

    /// Up to `limit` users matching `filter` with ids above `after_id`, by id: keyset pages,
    /// each as cheap as the first however deep the listing goes.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn page(
        &self,
        filter: &UserFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<UserListing>, RepoError>;

    /// Opens an import: one transaction on the primary that batches are written into, then
    /// committed or rolled back as a whole.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn begin_import(&self) -> Result<Box<dyn UserImport>, RepoError>;
}

/// An import's open transaction ([`UserRepository::begin_import`]). Dropped without
/// [`UserImport::commit`], it is rolled back.
#[async_trait]
pub trait UserImport: Send {
    /// Writes a batch of valid rows with distinct usernames: new names are inserted, existing
    /// ones skipped or updated by `on_existing`.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] when a concurrent writer took a name after it was looked up
    /// (the caller may start over); [`RepoError::Unavailable`] when the database fails.
    async fn write(
        &mut self,
        rows: &[ImportedUser],
        on_existing: OnExisting,
    ) -> Result<BatchOutcome, RepoError>;

    /// Commits everything written.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails (then nothing was written).
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;

    /// Rolls everything written back.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails (the server rolls back anyway when
    /// the connection is discarded).
    async fn rollback(self: Box<Self>) -> Result<(), RepoError>;
}

/// [`UserRepository`] over diesel-async.
#[derive(Component)]
#[shaku(interface = UserRepository)]
pub struct DieselUserRepository {
    #[shaku(inject)]
    db: Arc<dyn DatabaseClient>,
}

#[async_trait]
impl UserRepository for DieselUserRepository {
    async fn find(&self, id: i64) -> Result<Option<User>, RepoError> {
        let db = self.db.database();
        let row = with_read_connection!(db, |conn| {
            users::table
                .find(id)
                .select(User::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row)
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, RepoError> {
        let db = self.db.database();
        let row = with_read_connection!(db, |conn| {
            users::table
                .filter(users::username.eq(username))
                .select(User::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row)
    }

    async fn find_by_username_on_primary(&self, username: &str) -> Result<Option<User>, RepoError> {
        let db = self.db.database();
        let row = with_write_connection!(db, |conn| {
            users::table
                .filter(users::username.eq(username))
                .select(User::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row)
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), RepoError> {
        let db = self.db.database();
        let now = chrono::Utc::now().naive_utc();
        let updated = with_write_connection!(db, |conn| {
            diesel::update(users::table.find(id))
                .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
                .execute(conn)
                .await
        })?;
        if updated == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn create(&self, new: NewUser<'_>) -> Result<User, RepoError> {
        let db = self.db.database();
        // MySQL has no RETURNING: insert, then read the row back by its unique name, on the
        // same primary connection.
        let row = with_write_connection!(db, |conn| {
            match diesel::insert_into(users::table)
                .values(&new)
                .execute(conn)
                .await
            {
                Ok(_) => {
                    users::table
                        .filter(users::username.eq(new.username))
                        .select(User::as_select())
                        .first(conn)
                        .await
                }
                Err(e) => Err(e),
            }
        })?;
        Ok(row)
    }

    async fn find_by_phone(&self, phone: &str) -> Result<Option<User>, RepoError> {
        let db = self.db.database();
        let row = with_write_connection!(db, |conn| {
            users::table
                .filter(users::phone.eq(phone))
                .select(User::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row)
    }

    async fn find_or_create_by_phone(
        &self,
        phone: &str,
        names: &[String],
    ) -> Result<User, RepoError> {
        use diesel::result::{DatabaseErrorKind, Error as Diesel};
        let db = self.db.database();
        let row = with_write_connection!(db, |conn| {
            async {
                let by_phone = users::table
                    .filter(users::phone.eq(phone))
                    .select(User::as_select());
                if let Some(user) = by_phone.first(conn).await.optional()? {
                    return Ok(Some(user));
                }
                for name in names {
                    let new = NewPhoneUser {
                        username: name,
                        phone,
                        password_hash: NO_PASSWORD,
                    };
                    match diesel::insert_into(users::table)
                        .values(&new)
                        .execute(conn)
                        .await
                    {
                        Ok(_) => return by_phone.first(conn).await.optional(),
                        // The phone came in meanwhile (a parallel first login), or the name
                        // is someone else's: which one, the phone says.
                        Err(Diesel::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                            if let Some(user) = by_phone.first(conn).await.optional()? {
                                return Ok(Some(user));
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(None)
            }
            .await
        })?;
        row.ok_or_else(|| RepoError::Conflict("username: every candidate name is taken".into()))
    }

    async fn begin_import(&self) -> Result<Box<dyn UserImport>, RepoError> {
        let db = self.db.database().clone();
        let mut held = db.hold_primary().await?;
        match &mut held {
            HeldConnection::Mysql(call) => {
                db.bounded(async { begin(call.connection()).await.map_err(Into::into) })
                    .await?;
            }
            // IMMEDIATE: the write lock first, waiting up to `sqlite.busy_timeout` for it, so
            // concurrent imports queue (a deferred transaction that has read cannot take it
            // once another writer has committed: WAL fails it at once).
            HeldConnection::Sqlite(call) => {
                sqlite_blocking(&db, call, |c| {
                    AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
                })
                .await?;
            }
        }
        Ok(Box::new(DieselUserImport { db, held }))
    }

    async fn page(
        &self,
        filter: &UserFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<UserListing>, RepoError> {
        let db = self.db.database();
        let rows = with_read_connection!(db, |conn| {
            let mut query = users::table
                .into_boxed()
                .select(UserListing::as_select())
                .filter(users::id.gt(after_id))
                .order(users::id.asc())
                .limit(limit);
            if let Some(gender) = filter.gender {
                query = query.filter(users::gender.eq(gender));
            }
            if let Some(from) = filter.created_from {
                query = query.filter(users::created_at.ge(from));
            }
            if let Some(before) = filter.created_before {
                query = query.filter(users::created_at.lt(before));
            }
            query.load(conn).await
        })?;
        Ok(rows)
    }
}

/// A write of the import that another transaction got in the way of is a conflict the import
/// starts over from: a unique violation (a name taken meanwhile), an InnoDB deadlock (1213) or
/// a lock wait timeout (1205), which diesel reports by message only.
fn retryable(e: goex_database::DbError) -> RepoError {
    use goex_database::DbError;
    if let DbError::Query(diesel::result::Error::DatabaseError(_, info)) = &e {
        let message = info.message();
        if message.contains("Deadlock found") || message.contains("Lock wait timeout") {
            return RepoError::Conflict(message.to_owned());
        }
    }
    e.into()
}

/// An imported user's row: every column given, so one multi-row INSERT serves both backends.
#[derive(Insertable)]
#[diesel(table_name = users)]
struct ImportRow {
    username: String,
    password_hash: String,
    gender: i16,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

/// [`UserImport`] on a held primary connection.
struct DieselUserImport {
    db: Database,
    held: HeldConnection,
}

/// One multi-row INSERT. diesel writes those for SQLite only on its own synchronous connection
/// (it cannot prove to diesel-async that no column takes its DEFAULT), so there the statement
/// runs on the wrapped connection in a blocking call.
async fn insert_rows(
    db: &Database,
    held: &mut HeldConnection,
    rows: Vec<ImportRow>,
) -> Result<usize, goex_database::DbError> {
    let statement = diesel::insert_into(users::table).values(rows);
    match held {
        HeldConnection::Mysql(call) => {
            db.bounded(async {
                statement
                    .execute(call.connection())
                    .await
                    .map_err(Into::into)
            })
            .await
        }
        HeldConnection::Sqlite(call) => {
            sqlite_blocking(db, call, move |c| {
                diesel::RunQueryDsl::execute(statement, c)
            })
            .await
        }
    }
}

async fn begin(conn: &mut AsyncMysqlConnection) -> diesel::QueryResult<()> {
    <AsyncMysqlConnection as AsyncConnection>::TransactionManager::begin_transaction(conn).await
}

/// Ends the transaction: `commit` or roll back. SQLite's goes through the synchronous
/// connection: diesel-async needs exclusive access to the wrapper for it, which a statement
/// that timed out may still share.
async fn end(
    db: &Database,
    held: &mut HeldConnection,
    commit: bool,
) -> Result<(), goex_database::DbError> {
    type Mysql = <AsyncMysqlConnection as AsyncConnection>::TransactionManager;
    match held {
        HeldConnection::Mysql(call) => {
            db.bounded(async {
                let conn = call.connection();
                if commit {
                    Mysql::commit_transaction(conn).await.map_err(Into::into)
                } else {
                    Mysql::rollback_transaction(conn).await.map_err(Into::into)
                }
            })
            .await
        }
        HeldConnection::Sqlite(call) => {
            sqlite_blocking(db, call, move |c| {
                if commit {
                    AnsiTransactionManager::commit_transaction(c)
                } else {
                    AnsiTransactionManager::rollback_transaction(c)
                }
            })
            .await
        }
    }
}

#[async_trait]
impl UserImport for DieselUserImport {
    async fn write(
        &mut self,
        rows: &[ImportedUser],
        on_existing: OnExisting,
    ) -> Result<BatchOutcome, RepoError> {
        let names: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
        let existing: Vec<String> = on_held!(self.db, &mut self.held, |conn| {
            users::table
                .filter(users::username.eq_any(&names))
                .select(users::username)
                .load::<String>(conn)
                .await
        })
        .map_err(retryable)?;
        // MySQL's collation matches names case-insensitively and answers the stored spelling.
        let existing: std::collections::HashSet<String> = existing
            .iter()
            .map(|name| name.to_ascii_lowercase())
            .collect();
        // Rows in name order: two imports lock the same names in the same order, so InnoDB
        // has no deadlock to break between them.
        let mut rows: Vec<&ImportedUser> = rows.iter().collect();
        rows.sort_by(|a, b| a.username.cmp(&b.username));
        let now = chrono::Utc::now().naive_utc();
        let new_rows: Vec<ImportRow> = rows
            .iter()
            .filter(|r| !existing.contains(r.username.as_str()))
            .map(|r| ImportRow {
                username: r.username.clone(),
                password_hash: r.password_hash.as_deref().unwrap_or(NO_PASSWORD).to_owned(),
                gender: r.gender,
                created_at: r.created_at.unwrap_or(now),
                updated_at: now,
            })
            .collect();
        let mut outcome = BatchOutcome {
            inserted: new_rows.len(),
            ..BatchOutcome::default()
        };
        if !new_rows.is_empty() {
            insert_rows(&self.db, &mut self.held, new_rows)
                .await
                .map_err(retryable)?;
        }
        let known = rows
            .iter()
            .filter(|r| existing.contains(r.username.as_str()));
        match on_existing {
            OnExisting::Skip => outcome.skipped = known.count(),
            // Never the password hash (issue 22: an import that set passwords handed any
            // importer every account): passwords change only through `users reset-password`.
            OnExisting::Update => {
                for row in known {
                    let target = users::table.filter(users::username.eq(&row.username));
                    on_held!(self.db, &mut self.held, |conn| {
                        diesel::update(target)
                            .set((users::gender.eq(row.gender), users::updated_at.eq(now)))
                            .execute(conn)
                            .await
                    })
                    .map_err(retryable)?;
                    outcome.updated += 1;
                }
            }
        }
        Ok(outcome)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        end(&self.db, &mut self.held, true).await?;
        self.held.release();
        self.db.note_write();
        Ok(())
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), RepoError> {
        end(&self.db, &mut self.held, false).await?;
        self.held.release();
        Ok(())
    }
}

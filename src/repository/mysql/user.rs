//! Users in the relational database (`users` table), for MySQL and the embedded SQLite alike.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use goex_database::{with_read_connection, with_write_connection};
use shaku::{Component, Interface};

use crate::model::schema::users;
use crate::model::user::{NewUser, User, UserFilter};
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

    /// Inserts a user and returns the stored row.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] when the username is taken.
    async fn create(&self, new: NewUser<'_>) -> Result<User, RepoError>;

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
    ) -> Result<Vec<User>, RepoError>;
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

    async fn page(
        &self,
        filter: &UserFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<User>, RepoError> {
        let db = self.db.database();
        let rows = with_read_connection!(db, |conn| {
            let mut query = users::table
                .into_boxed()
                .select(User::as_select())
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

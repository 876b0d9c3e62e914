//! User roles in the relational database (`user_roles`), for MySQL and the embedded SQLite
//! alike. Reads go to the primary: a role decides what a login may do, and a replica's lag
//! would sign a token with a role already taken away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use goex_database::with_write_connection;
use shaku::{Component, Interface};

use crate::model::role::{NewUserRole, Role, Roles};
use crate::model::schema::user_roles;
use crate::repository::client::DatabaseClient;
use crate::repository::error::RepoError;

/// Reads and changes the roles of users. Each change is one statement: a grant made twice in
/// parallel is one row, and both callers learn which of them made it.
#[async_trait]
pub trait RoleRepository: Interface {
    /// The roles of `user_id` (none when it has none or does not exist).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn roles_of(&self, user_id: i64) -> Result<Roles, RepoError>;

    /// The roles of each of `user_ids` that has any.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn roles_of_many(&self, user_ids: &[i64]) -> Result<HashMap<i64, Roles>, RepoError>;

    /// Grants `role` to `user_id`; `false` when it already had it.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn grant(&self, user_id: i64, role: Role) -> Result<bool, RepoError>;

    /// Takes `role` from `user_id`; `false` when it did not have it.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached.
    async fn revoke(&self, user_id: i64, role: Role) -> Result<bool, RepoError>;
}

/// [`RoleRepository`] over diesel-async.
#[derive(Component)]
#[shaku(interface = RoleRepository)]
pub struct DieselRoleRepository {
    #[shaku(inject)]
    db: Arc<dyn DatabaseClient>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait]
impl RoleRepository for DieselRoleRepository {
    async fn roles_of(&self, user_id: i64) -> Result<Roles, RepoError> {
        let db = self.db.database();
        let names: Vec<String> = with_write_connection!(db, |conn| {
            user_roles::table
                .filter(user_roles::user_id.eq(user_id))
                .select(user_roles::role)
                .load(conn)
                .await
        })?;
        Ok(Roles::from_names(names.iter().map(String::as_str)))
    }

    async fn roles_of_many(&self, user_ids: &[i64]) -> Result<HashMap<i64, Roles>, RepoError> {
        if user_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let db = self.db.database();
        let rows: Vec<(i64, String)> = with_write_connection!(db, |conn| {
            user_roles::table
                .filter(user_roles::user_id.eq_any(user_ids))
                .select((user_roles::user_id, user_roles::role))
                .load(conn)
                .await
        })?;
        let mut roles = HashMap::new();
        for (id, name) in rows {
            if let Some(role) = Role::parse(&name) {
                let entry: &mut Roles = roles.entry(id).or_default();
                *entry = entry.with(role);
            }
        }
        Ok(roles)
    }

    async fn grant(&self, user_id: i64, role: Role) -> Result<bool, RepoError> {
        let db = self.db.database();
        let row = NewUserRole {
            user_id,
            role: role.as_str(),
            granted_at: now_ms(),
        };
        // INSERT IGNORE (MySQL) / INSERT OR IGNORE (SQLite): the row exists once either way.
        let inserted = with_write_connection!(db, |conn| {
            diesel::insert_or_ignore_into(user_roles::table)
                .values(&row)
                .execute(conn)
                .await
        })?;
        Ok(inserted > 0)
    }

    async fn revoke(&self, user_id: i64, role: Role) -> Result<bool, RepoError> {
        let db = self.db.database();
        let deleted = with_write_connection!(db, |conn| {
            diesel::delete(
                user_roles::table
                    .filter(user_roles::user_id.eq(user_id))
                    .filter(user_roles::role.eq(role.as_str())),
            )
            .execute(conn)
            .await
        })?;
        Ok(deleted > 0)
    }
}

//! The login record row (`logins`): the single sign-on record when Redis is off.

use diesel::prelude::*;

use crate::model::schema::logins;

/// A row of `logins`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = logins)]
pub struct LoginRow {
    /// The user (primary key: one login per user).
    pub user_id: i64,
    /// The login (session) id.
    pub sid: String,
    /// The id of the one refresh token that may be used next.
    pub refresh_jti: String,
    /// Expiry, unix milliseconds.
    pub expires_at: i64,
}

//! The user row and the values that create one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::model::schema::users;

/// A row of `users`. The password hash never leaves the repository layer in a response.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// The verified mobile number, unique (set by signing in with an SMS code).
    pub phone: Option<String>,
    /// argon2id PHC string (the auth feature writes it).
    pub password_hash: String,
    /// 1 male, 2 female, 0 unknown (the original's encoding).
    pub gender: i16,
    /// When the row was written first.
    pub created_at: NaiveDateTime,
    /// When the row was written last.
    pub updated_at: NaiveDateTime,
}

/// Values for a new row.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Unique login name.
    pub username: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// 1 male, 2 female, 0 unknown.
    pub gender: i16,
}

/// Values for a user created by signing in with an SMS code.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewPhoneUser<'a> {
    /// Unique login name.
    pub username: &'a str,
    /// The verified number.
    pub phone: &'a str,
    /// `!`: no password matches it (set one by re-importing, as for imported users).
    pub password_hash: &'a str,
}

/// A user as a listing (the Excel export) reads it: no password hash, not even loaded.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserListing {
    /// Primary key.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// 1 male, 2 female, 0 unknown.
    pub gender: i16,
    /// When the row was written first.
    pub created_at: NaiveDateTime,
}

/// Which users a listing (the Excel export) covers; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only this gender (0, 1, 2).
    pub gender: Option<i16>,
    /// Created at or after this instant.
    pub created_from: Option<NaiveDateTime>,
    /// Created before this instant.
    pub created_before: Option<NaiveDateTime>,
}

/// What the API shows of a user.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UserView {
    /// Primary key.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// 1 male, 2 female, 0 unknown.
    pub gender: i16,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            gender: u.gender,
        }
    }
}

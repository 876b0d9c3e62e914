//! Request forms with their validation rules (the original's gin `binding` tags).

use serde::{Deserialize, Deserializer};
use validator::Validate;

use crate::meta::validator::{
    validate_password, validate_phone, validate_username, validate_verify_code,
};

/// `GET /hello?id=`: the user to greet; absent means 0 (no user), as in the original.
#[derive(Clone, Debug, Default, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct HelloQuery {
    /// User id.
    #[serde(default)]
    pub id: u64,
}

/// A login name in its one canonical spelling: surrounding white space dropped, lower case.
/// `Alice01`, ` alice01 ` and `alice01` are one user and one throttling bucket on every
/// backend (MySQL's case-insensitive, pad-space collation and SQLite's binary one would
/// otherwise disagree).
pub fn canonical_username(name: &str) -> String {
    name.trim().to_lowercase()
}

fn deserialize_username<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|name| canonical_username(&name))
}

/// The original's `LoginForm` (JSON or form body): `binding:"required"` and
/// `binding:"required,validatePassword"`, with the username held to the registration rule
/// (after canonicalisation) so a name that can never exist is refused before any work.
#[derive(Clone, Debug, Deserialize, Validate)]
pub struct LoginForm {
    /// Login name: 6–30 letters or digits, canonical (see [`canonical_username`]).
    #[serde(deserialize_with = "deserialize_username")]
    #[validate(custom(function = "validate_username"))]
    pub username: String,
    /// 6–16 letters and digits, containing both.
    #[validate(custom(function = "validate_password"))]
    pub password: String,
}

/// Registration: the original's username, password and gender rules.
#[derive(Clone, Debug, Deserialize, Validate)]
pub struct RegisterForm {
    /// 6–30 letters or digits, stored canonical (see [`canonical_username`]).
    #[serde(deserialize_with = "deserialize_username")]
    #[validate(custom(function = "validate_username"))]
    pub username: String,
    /// 6–16 letters and digits, containing both.
    #[validate(custom(function = "validate_password"))]
    pub password: String,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default)]
    #[validate(range(min = 0, max = 2))]
    pub gender: i16,
}

/// An SMS verification request: a mainland-China mobile number and, when confirming, the code.
#[derive(Clone, Debug, Deserialize, Validate)]
pub struct PhoneCodeForm {
    /// `^1[3-9][0-9]{9}$`.
    #[validate(custom(function = "validate_phone"))]
    pub phone: String,
    /// Six digits.
    #[serde(default)]
    #[validate(custom(function = "validate_verify_code"))]
    pub code: Option<String>,
}

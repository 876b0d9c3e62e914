//! Request forms with their validation rules (the original's gin `binding` tags).

use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::meta::validator::{
    validate_password, validate_phone, validate_username, validate_verify_code,
};

/// `GET /hello?id=`: the user to greet; absent means 0 (no user), as in the original.
#[derive(Clone, Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HelloQuery {
    /// User id; absent or 0: no user. At most `i64::MAX`, the largest id a row can have.
    #[serde(default)]
    #[validate(range(max = 9_223_372_036_854_775_807_u64))]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub id: u64,
}

/// A login name in its one canonical spelling: surrounding ASCII white space dropped, ASCII
/// lower case. `Alice01`, ` alice01 ` and `alice01` are one user and one throttling bucket on
/// every backend (MySQL's case-insensitive, pad-space collation and SQLite's binary one would
/// otherwise disagree). Only ASCII is folded, so no other character can turn into an accepted
/// one (Unicode lower-cases the Kelvin sign to `k`): the accepted spellings are exactly
/// [`USERNAME_INPUT_PATTERN`].
pub fn canonical_username(name: &str) -> String {
    name.trim_matches(|c: char| c.is_ascii_whitespace())
        .to_ascii_lowercase()
}

/// What a username field accepts before canonicalisation: [`USERNAME_PATTERN`] with surrounding
/// ASCII white space (the document states it; a test holds the two rules together).
///
/// [`USERNAME_PATTERN`]: crate::meta::validator::USERNAME_PATTERN
pub const USERNAME_INPUT_PATTERN: &str = r"^[ \t\n\x0C\r]*[0-9A-Za-z]{6,30}[ \t\n\x0C\r]*$";

fn deserialize_username<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|name| canonical_username(&name))
}

/// A JSON Schema `integer` as an `i16` ([`crate::model::values::integer`]).
fn deserialize_integer<'de, D: Deserializer<'de>>(d: D) -> Result<i16, D::Error> {
    crate::model::values::integer(d)
}

/// The original's `LoginForm` (JSON or form body): `binding:"required"` and
/// `binding:"required,validatePassword"`, with the username held to the registration rule
/// (after canonicalisation) so a name that can never exist is refused before any work.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
pub struct LoginForm {
    /// Login name: 6–30 letters or digits, case-insensitive, surrounding white space ignored.
    #[serde(deserialize_with = "deserialize_username")]
    #[validate(custom(function = "validate_username"))]
    #[schema(
        pattern = r"^[ \t\n\x0C\r]*[0-9A-Za-z]{6,30}[ \t\n\x0C\r]*$",
        example = "alice01"
    )]
    pub username: String,
    /// 6–16 letters and digits, containing both.
    #[validate(custom(function = "validate_password"))]
    #[schema(
        pattern = r"^(?=.*[0-9])(?=.*[a-zA-Z])([0-9a-zA-Z]{6,16})$",
        example = "secret123"
    )]
    pub password: String,
}

/// Registration: the original's username, password and gender rules.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
pub struct RegisterForm {
    /// 6–30 letters or digits, stored lower-case with surrounding white space dropped.
    #[serde(deserialize_with = "deserialize_username")]
    #[validate(custom(function = "validate_username"))]
    #[schema(
        pattern = r"^[ \t\n\x0C\r]*[0-9A-Za-z]{6,30}[ \t\n\x0C\r]*$",
        example = "alice01"
    )]
    pub username: String,
    /// 6–16 letters and digits, containing both.
    #[validate(custom(function = "validate_password"))]
    #[schema(
        pattern = r"^(?=.*[0-9])(?=.*[a-zA-Z])([0-9a-zA-Z]{6,16})$",
        example = "secret123"
    )]
    pub password: String,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default, deserialize_with = "deserialize_integer")]
    #[validate(range(min = 0, max = 2))]
    #[schema(minimum = 0, maximum = 2)]
    pub gender: i16,
}

/// `POST /sms/send-code` (the original's `phone` field, JSON or form body).
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
pub struct SendCodeForm {
    /// A mainland-China mobile number, `^1[3-9][0-9]{9}$` (the original's `validatePhone`).
    #[validate(custom(function = "validate_phone"))]
    #[schema(pattern = r"^1[3-9][0-9]{9}$", example = "13800138000")]
    pub phone: String,
}

/// `POST /auth/login_sms`: the phone and the code sent to it.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
pub struct SmsLoginForm {
    /// The number the code was sent to, `^1[3-9][0-9]{9}$`.
    #[validate(custom(function = "validate_phone"))]
    #[schema(pattern = r"^1[3-9][0-9]{9}$", example = "13800138000")]
    pub phone: String,
    /// Six digits (the original's `validateVerifyCode`, `^[0-9]{6}$`).
    #[validate(custom(function = "validate_verify_code"))]
    #[schema(pattern = r"^[0-9]{6}$", example = "123456")]
    pub code: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::validator::validate_username;
    use proptest::prelude::*;

    fn input_rule() -> fancy_regex::Regex {
        fancy_regex::Regex::new(USERNAME_INPUT_PATTERN).unwrap()
    }

    #[test]
    fn gender_is_a_json_schema_integer() {
        let json = |v: serde_json::Value| {
            serde_json::from_value::<RegisterForm>(serde_json::json!({
                "username": "alice01", "password": "abc123", "gender": v
            }))
            .map(|f| f.gender)
        };
        assert_eq!(json(serde_json::json!(1)).unwrap(), 1);
        assert_eq!(json(serde_json::json!(2.0)).unwrap(), 2);
        assert!(json(serde_json::json!(1.5)).is_err());
        assert!(json(serde_json::json!(70000)).is_err());
        assert!(json(serde_json::json!(true)).is_err());
        let form: RegisterForm =
            serde_urlencoded::from_str("username=alice01&password=abc123&gender=2").unwrap();
        assert_eq!(form.gender, 2);
        let form: RegisterForm =
            serde_urlencoded::from_str("username=alice01&password=abc123").unwrap();
        assert_eq!(form.gender, 0);
    }

    #[test]
    fn documented_username_rule_examples() {
        let rule = input_rule();
        for accepted in ["alice01", " Alice01\t", "\r\nALICE01 "] {
            assert!(rule.is_match(accepted).unwrap(), "{accepted:?}");
            assert!(validate_username(&canonical_username(accepted)).is_ok());
        }
        // The Kelvin sign lower-cases to `k` in Unicode: not folded, so refused by both.
        for refused in ["\u{212A}elvin01", "\u{a0}alice01", "ali ce01", "alice"] {
            assert!(!rule.is_match(refused).unwrap(), "{refused:?}");
            assert!(validate_username(&canonical_username(refused)).is_err());
        }
    }

    proptest! {
        /// What the document says a username field accepts is what canonicalisation followed
        /// by validation accepts.
        #[test]
        fn documented_username_rule_is_the_applied_rule(
            s in "[ \t\n\r\u{c}\u{b}\u{a0}\u{212a}\u{130}a-zA-Z0-9_-]{0,34}"
        ) {
            let documented = input_rule().is_match(&s).unwrap();
            let applied = validate_username(&canonical_username(&s)).is_ok();
            prop_assert_eq!(documented, applied, "{:?}", s);
        }
    }
}

/// `GET /excel/export`: which users; every filter optional.
#[derive(Clone, Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Only this gender: 0 unknown, 1 male, 2 female.
    #[validate(range(min = 0, max = 2))]
    #[param(minimum = 0, maximum = 2)]
    pub gender: Option<i16>,
    /// Created on or after this day (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub created_from: Option<chrono::NaiveDate>,
    /// Created on or before this day (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub created_to: Option<chrono::NaiveDate>,
}

/// `POST /excel/import`: the options; absent ones come from `excel.import_mode` and
/// `excel.on_existing`.
#[derive(Clone, Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `all_or_nothing`: one bad row and nothing is written; `skip_invalid`: bad rows are left
    /// out and reported.
    #[param(value_type = Option<String>, pattern = "^(all_or_nothing|skip_invalid)$")]
    pub mode: Option<crate::model::excel::ImportMode>,
    /// Usernames that exist: `skip` them or `update` their gender (and password when given).
    #[param(value_type = Option<String>, pattern = "^(skip|update)$")]
    pub on_existing: Option<crate::model::excel::OnExisting>,
}

//! Custom validators (the original's `meta/validator.go`), written with fancy-regex because the
//! password rule needs look-ahead, which the `regex` crate does not support.

use std::borrow::Cow;
use std::sync::LazyLock;

use fancy_regex::Regex;
use validator::ValidationError;

/// Patterns compiled once; they are constants, not state.
struct Patterns {
    phone: Regex,
    password: Regex,
    username: Regex,
    verify_code: Regex,
    timestamp: Regex,
    timestamp_millis: Regex,
    decimal: Regex,
}

/// Mobile number (validatePhone). The OpenAPI document states the same pattern; a test in
/// `model::forms` holds the two together.
pub const PHONE_PATTERN: &str = r"^1[3-9][0-9]{9}$";
/// Password (validatePassword).
pub const PASSWORD_PATTERN: &str = r"^(?=.*[0-9])(?=.*[a-zA-Z])([0-9a-zA-Z]{6,16})$";
/// Username (validateUsername), checked after canonicalisation.
pub const USERNAME_PATTERN: &str = r"^[0-9A-Za-z]{6,30}$";
/// Verification code (validateVerifyCode).
pub const VERIFY_CODE_PATTERN: &str = r"^[0-9]{6}$";

// Each pattern above with values it accepts: `go_example generate resource` names a pattern by
// `regex=NAME` (a `NAME_PATTERN`, its `validate_NAME` and its `NAME_EXAMPLES`), and its generated
// tests and Postman requests send these (docs/generator.md).

/// Mobile numbers [`validate_phone`] accepts.
pub const PHONE_EXAMPLES: [&str; 3] = ["13800138000", "13900139000", "15000150000"];
/// Passwords [`validate_password`] accepts.
pub const PASSWORD_EXAMPLES: [&str; 3] = ["secret123", "abc12345", "pass2468"];
/// Usernames [`validate_username`] accepts.
pub const USERNAME_EXAMPLES: [&str; 3] = ["alice01", "bobby02", "carol03"];
/// Codes [`validate_verify_code`] accepts.
pub const VERIFY_CODE_EXAMPLES: [&str; 3] = ["123456", "654321", "102030"];

/// An instant a TIMESTAMP column holds in MySQL and SQLite alike: RFC 3339 with seconds (at most
/// microseconds) and an offset, in the years 1971 to 2037 (MySQL's TIMESTAMP ends in January
/// 2038). Stated in the OpenAPI document as well, so a client knows before it sends.
pub const TIMESTAMP_PATTERN: &str = r"^(197[1-9]|19[89][0-9]|20[0-2][0-9]|203[0-7])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// An instant a BSON date holds exactly (a datetime field of a `--mongo` resource): as
/// [`TIMESTAMP_PATTERN`], with at most milliseconds.
pub const TIMESTAMP_MILLIS_PATTERN: &str = r"^(197[1-9]|19[89][0-9]|20[0-2][0-9]|203[0-7])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// A DECIMAL(15,4) value as text: up to 11 digits before the point and 4 after (15 significant
/// digits, which the embedded SQLite keeps exactly too).
pub const DECIMAL_PATTERN: &str = r"^-?(0|[1-9][0-9]{0,10})(\.[0-9]{1,4})?$";

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    phone: compile(PHONE_PATTERN),
    password: compile(PASSWORD_PATTERN),
    username: compile(USERNAME_PATTERN),
    verify_code: compile(VERIFY_CODE_PATTERN),
    timestamp: compile(TIMESTAMP_PATTERN),
    timestamp_millis: compile(TIMESTAMP_MILLIS_PATTERN),
    decimal: compile(DECIMAL_PATTERN),
});

fn compile(pattern: &str) -> Regex {
    // The patterns are literals above; a typo is caught by the unit tests, not at run time.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("invalid built-in pattern {pattern}: {e}"))
}

fn check(
    re: &Regex,
    value: &str,
    code: &'static str,
    message: &'static str,
) -> Result<(), ValidationError> {
    // Backtracking limits make is_match fail rather than hang; treat that as a mismatch.
    if re.is_match(value).unwrap_or(false) {
        Ok(())
    } else {
        Err(ValidationError::new(code).with_message(Cow::Borrowed(message)))
    }
}

/// Mobile number: `^1[3-9][0-9]{9}$` (validatePhone).
///
/// # Errors
/// The value does not match.
pub fn validate_phone(value: &str) -> Result<(), ValidationError> {
    check(
        &PATTERNS.phone,
        value,
        "phone",
        "must be an 11-digit mobile number starting 13-19",
    )
}

/// Password: 6–16 letters and digits containing both (validatePassword).
///
/// # Errors
/// The value does not match.
pub fn validate_password(value: &str) -> Result<(), ValidationError> {
    check(
        &PATTERNS.password,
        value,
        "password",
        "must be 6-16 letters and digits, with both",
    )
}

/// Username: 6–30 letters or digits (validateUsername).
///
/// # Errors
/// The value does not match.
pub fn validate_username(value: &str) -> Result<(), ValidationError> {
    check(
        &PATTERNS.username,
        value,
        "username",
        "must be 6-30 letters or digits",
    )
}

/// Verification code: six digits (validateVerifyCode).
///
/// # Errors
/// The value does not match.
pub fn validate_verify_code(value: &str) -> Result<(), ValidationError> {
    check(
        &PATTERNS.verify_code,
        value,
        "verify_code",
        "must be 6 digits",
    )
}

/// An instant as [`TIMESTAMP_PATTERN`] states it, that is also a real date (no 31 February).
///
/// # Errors
/// The value does not match, or names no date.
pub fn validate_timestamp(value: &str) -> Result<(), ValidationError> {
    check(
        &PATTERNS.timestamp,
        value,
        "timestamp",
        "must be an RFC 3339 instant in 1971-2037, such as 2026-12-07T10:00:00Z",
    )?;
    match parse_timestamp(value) {
        Some(_) => Ok(()),
        None => Err(ValidationError::new("timestamp")
            .with_message(Cow::Borrowed("must be a date that exists"))),
    }
}

/// An instant as [`TIMESTAMP_MILLIS_PATTERN`] states it, that is also a real date.
///
/// # Errors
/// The value does not match (a fraction finer than milliseconds included), or names no date.
pub fn validate_timestamp_millis(value: &str) -> Result<(), ValidationError> {
    check(
        &PATTERNS.timestamp_millis,
        value,
        "timestamp",
        "must be an RFC 3339 instant in 1971-2037 with at most milliseconds, such as 2026-12-07T10:00:00.250Z",
    )?;
    validate_timestamp(value)
}

/// The UTC instant of a value [`validate_timestamp`] accepts (`None` for any other).
pub fn parse_timestamp(value: &str) -> Option<chrono::NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.naive_utc())
}

/// A DECIMAL(15,4) value as [`DECIMAL_PATTERN`] states it.
///
/// # Errors
/// The value does not match.
pub fn validate_decimal(value: &str) -> Result<(), ValidationError> {
    check(
        &PATTERNS.decimal,
        value,
        "decimal",
        "must be a number with at most 11 digits before the point and 4 after, such as 12.5",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_named_patterns_examples_pass_it() {
        for phone in PHONE_EXAMPLES {
            assert!(validate_phone(phone).is_ok(), "{phone}");
        }
        for password in PASSWORD_EXAMPLES {
            assert!(validate_password(password).is_ok(), "{password}");
        }
        for username in USERNAME_EXAMPLES {
            assert!(validate_username(username).is_ok(), "{username}");
        }
        for code in VERIFY_CODE_EXAMPLES {
            assert!(validate_verify_code(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn millisecond_timestamps_refuse_a_finer_fraction() {
        for ok in ["2026-12-07T10:00:00Z", "2026-12-07T10:00:00.250+02:00"] {
            assert!(validate_timestamp_millis(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2026-12-07T10:00:00.2501Z",
            "2026-02-31T10:00:00Z",
            "2038-01-01T00:00:00Z",
        ] {
            assert!(validate_timestamp_millis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc_3339_instants_a_timestamp_column_holds() {
        for ok in [
            "2026-12-07T10:00:00Z",
            "1971-01-01T00:00:00+14:00",
            "2037-12-31T23:59:59.123456-08:00",
        ] {
            assert!(validate_timestamp(ok).is_ok(), "{ok}");
        }
        for bad in [
            "1970-01-01T00:00:00Z",
            "2038-01-19T03:14:08Z",
            "2026-02-31T00:00:00Z",
            "2026-12-07 10:00:00Z",
            "2026-12-07t10:00:00z",
            "2026-12-07T10:00:00",
            "2026-12-07T10:00:00.1234567Z",
        ] {
            assert!(validate_timestamp(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_timestamp("2026-12-07T12:00:00+02:00")
                .unwrap()
                .to_string(),
            "2026-12-07 10:00:00"
        );
    }

    #[test]
    fn decimals_fit_decimal_15_4() {
        for ok in ["0", "-1.5", "12345678901.1234", "0.0001"] {
            assert!(validate_decimal(ok).is_ok(), "{ok}");
        }
        for bad in ["123456789012", "1.12345", "01", "1.", ".5", "1e3", "+1"] {
            assert!(validate_decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn examples() {
        assert!(validate_phone("13812345678").is_ok());
        assert!(validate_phone("12812345678").is_err());
        assert!(validate_phone("1381234567").is_err());
        assert!(validate_password("abc123").is_ok());
        assert!(validate_password("abcdef").is_err(), "letters only");
        assert!(validate_password("123456").is_err(), "digits only");
        assert!(validate_password("ab12").is_err(), "too short");
        assert!(
            validate_password("abc123abc123abc12").is_err(),
            "17 characters"
        );
        assert!(validate_password("abc_123").is_err(), "symbol");
        assert!(validate_username("user01").is_ok());
        assert!(validate_username("usr01").is_err());
        assert!(validate_username("user 01").is_err());
        assert!(validate_verify_code("012345").is_ok());
        assert!(validate_verify_code("01234a").is_err());
    }

    proptest! {
        #[test]
        fn password_rule_matches_its_definition(s in "[0-9a-zA-Z_ ]{0,20}") {
            let expected = (6..=16).contains(&s.len())
                && s.chars().all(|c| c.is_ascii_alphanumeric())
                && s.chars().any(|c| c.is_ascii_digit())
                && s.chars().any(|c| c.is_ascii_alphabetic());
            prop_assert_eq!(validate_password(&s).is_ok(), expected);
        }

        #[test]
        fn phone_rule_matches_its_definition(s in "[0-9]{9,12}") {
            let b = s.as_bytes();
            let expected = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
            prop_assert_eq!(validate_phone(&s).is_ok(), expected);
        }

        #[test]
        fn username_rule_matches_its_definition(s in "[0-9a-zA-Z-]{0,32}") {
            let expected = (6..=30).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric());
            prop_assert_eq!(validate_username(&s).is_ok(), expected);
        }
    }
}

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

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    phone: compile(PHONE_PATTERN),
    password: compile(PASSWORD_PATTERN),
    username: compile(USERNAME_PATTERN),
    verify_code: compile(VERIFY_CODE_PATTERN),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

//! Column values as the API reads and shows them, shared by the forms and the generated
//! resources (docs/generator.md).

use bigdecimal::{BigDecimal, RoundingMode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer};

/// An instant as the JSON views show it (serde's form of `DateTime<Utc>`:
/// `2026-12-07T10:00:00Z`, a fraction only when there is one), for the gRPC messages.
pub fn rfc3339(instant: &DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A JSON Schema `integer`: `1` or `1.0` (JSON Schema counts a number with a zero fraction as an
/// integer, so the document promises both), never `1.5`; form bodies send text. Out of `T`'s
/// range is an error naming the value.
///
/// # Errors
/// Not an integer, or out of range.
pub fn integer<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
        Text(String),
    }
    // Every f64 strictly inside ±2^63 with no fraction is an integer an i64 holds exactly. The
    // bounds themselves are out: a JSON integer just beyond i64 (-9223372036854775809) reads as
    // the float -2^63, and must not become i64::MIN.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let n = match Number::deserialize(d)? {
        Number::Int(n) => n,
        Number::Float(f) if f.fract() == 0.0 && f > -LIMIT && f < LIMIT => f as i64,
        Number::Float(f) => return Err(D::Error::custom(format!("{f} is not an integer"))),
        Number::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("{t:?} is not an integer")))?,
    };
    T::try_from(n).map_err(|_| D::Error::custom(format!("{n} is out of range")))
}

/// [`integer`] for an optional field: `null` (or absent, with `#[serde(default)]`) is `None`.
///
/// # Errors
/// As [`integer`].
pub fn optional_integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    #[derive(Deserialize)]
    struct Wrapped<T: TryFrom<i64>>(#[serde(deserialize_with = "integer")] T);
    Ok(Option::<Wrapped<T>>::deserialize(d)?.map(|Wrapped(n)| n))
}

/// The scale of a DECIMAL(15,4) column.
pub const DECIMAL_SCALE: i64 = 4;

/// A DECIMAL(15,4) value as text with its four decimals (`12.5000`). The embedded SQLite reads
/// decimals through a double: rounding to the column's scale gives back the stored value, which
/// has at most 15 significant digits.
pub fn decimal_text(value: &BigDecimal) -> String {
    value
        .with_scale_round(DECIMAL_SCALE, RoundingMode::HalfEven)
        .to_plain_string()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Form {
        #[serde(deserialize_with = "integer")]
        small: i32,
        #[serde(default, deserialize_with = "optional_integer")]
        big: Option<i64>,
    }

    #[test]
    fn integers_may_come_with_a_zero_fraction_but_not_another() {
        let form: Form = serde_json::from_str(r#"{"small": 7.0, "big": 4e18}"#).unwrap();
        assert_eq!((form.small, form.big), (7, Some(4_000_000_000_000_000_000)));
        let form: Form = serde_json::from_str(r#"{"small": -3, "big": null}"#).unwrap();
        assert_eq!((form.small, form.big), (-3, None));
        let form: Form = serde_json::from_str(r#"{"small": 1}"#).unwrap();
        assert_eq!(form.big, None);
        for bad in [
            r#"{"small": 1.5}"#,
            r#"{"small": 3000000000}"#,
            r#"{"small": 1, "big": 1e19}"#,
            r#"{"small": 1, "big": -9223372036854775809}"#,
            r#"{"small": true}"#,
        ] {
            assert!(serde_json::from_str::<Form>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_decimal_shows_its_four_decimals_and_no_binary_noise() {
        assert_eq!(
            decimal_text(&BigDecimal::from_str("12.5").unwrap()),
            "12.5000"
        );
        // What SQLite hands back for 0.1 (a double).
        let noisy = BigDecimal::try_from(0.1_f64).unwrap();
        assert_eq!(decimal_text(&noisy), "0.1000");
        let big = BigDecimal::try_from(12_345_678_901.123_4_f64).unwrap();
        assert_eq!(decimal_text(&big), "12345678901.1234");
    }

    #[test]
    fn an_instant_reads_as_serde_writes_it() {
        use chrono::TimeZone;
        for instant in [
            Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
            Utc.timestamp_opt(1_796_637_600, 250_000_000).unwrap(),
        ] {
            let serde = serde_json::to_value(instant).unwrap();
            assert_eq!(serde, rfc3339(&instant), "{instant:?}");
        }
    }
}

//! `--fields 'name:type[:constraint]*,...'`: a resource's fields, parsed and checked before
//! anything is rendered.
//!
//! Types: `string`, `text`, `int`, `bigint`, `bool`, `decimal` (DECIMAL(15,4)), `datetime` (a
//! TIMESTAMP), `enum(a|b)` (a VARCHAR with a CHECK, so one `schema.rs` serves both dialects).
//! Constraints: `unique`, `optional`, `max=N`, `min=N` (characters of a string or text, the
//! value of an int or bigint), `regex=NAME` (a named pattern of `src/meta/validator.rs`).

use serde::Serialize;

use crate::GenerateError;
use crate::names::check_identifier;

/// The longest `text` a field holds by default, in characters: a MySQL TEXT holds 65,535 bytes,
/// and a character takes up to 4 in utf8mb4.
pub const TEXT_MAX_CHARS: u64 = 16_383;
/// The longest `string` by default (VARCHAR(255)).
pub const STRING_DEFAULT_MAX: u64 = 255;
/// The longest unique `string`: InnoDB keys hold 3,072 bytes (768 utf8mb4 characters).
pub const UNIQUE_STRING_MAX: u64 = 768;

/// The most fields a resource has: diesel's `table!` holds 16 columns (without its slower-building
/// `32-column-tables` feature), and id, owner_id, created_at and updated_at take four.
pub const MAX_FIELDS: usize = 12;

/// Columns every generated table has: a field may not take their names.
pub const RESERVED_COLUMNS: &[&str] = &["id", "owner_id", "created_at", "updated_at"];

/// A field's type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "values", rename_all = "snake_case")]
pub enum Kind {
    /// VARCHAR(max).
    String,
    /// TEXT.
    Text,
    /// INT (i32).
    Int,
    /// BIGINT (i64).
    Bigint,
    /// BOOLEAN.
    Bool,
    /// DECIMAL(15,4), sent as text.
    Decimal,
    /// TIMESTAMP, sent as RFC 3339.
    Datetime,
    /// One of the values, stored as VARCHAR with a CHECK.
    Enum(Vec<String>),
}

/// One field as the spec states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The column and JSON name.
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// A unique key on the column.
    pub unique: bool,
    /// NULL allowed; the JSON field may be absent or null.
    pub optional: bool,
    /// `min=N`.
    pub min: Option<i64>,
    /// `max=N`.
    pub max: Option<i64>,
    /// `regex=NAME`.
    pub regex: Option<String>,
}

impl Field {
    /// The most characters a string or text holds.
    pub fn max_chars(&self) -> u64 {
        let default = match self.kind {
            Kind::Text => TEXT_MAX_CHARS,
            _ => STRING_DEFAULT_MAX,
        };
        self.max.map_or(default, |m| m as u64)
    }
}

/// Parses a `--fields` spec: comma-separated `name:type[:constraint]*`.
///
/// # Errors
/// [`GenerateError::Invalid`] naming the field and what is wrong; `patterns` are the named
/// patterns `regex=NAME` may use.
pub fn parse(spec: &str, patterns: &[String]) -> Result<Vec<Field>, GenerateError> {
    let mut fields: Vec<Field> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let field = parse_one(part, patterns)?;
        if fields.iter().any(|f| f.name == field.name) {
            return Err(GenerateError::Invalid(format!(
                "field `{}` is named twice",
                field.name
            )));
        }
        fields.push(field);
    }
    if fields.is_empty() {
        return Err(GenerateError::Invalid(
            "--fields names no field: give at least one `name:type`".into(),
        ));
    }
    if fields.len() > MAX_FIELDS {
        return Err(GenerateError::Invalid(format!(
            "{} fields: at most {MAX_FIELDS} (diesel's tables hold 16 columns, with the id, the \
             owner and the two timestamps; split the resource)",
            fields.len()
        )));
    }
    Ok(fields)
}

fn invalid(part: &str, why: impl std::fmt::Display) -> GenerateError {
    GenerateError::Invalid(format!("field `{part}`: {why}"))
}

fn parse_one(part: &str, patterns: &[String]) -> Result<Field, GenerateError> {
    let mut pieces = part.split(':');
    let name = pieces.next().unwrap_or_default().trim();
    check_identifier("field name", name, 32)?;
    if RESERVED_COLUMNS.contains(&name) {
        return Err(invalid(
            part,
            format!("`{name}` is a column every generated table has already"),
        ));
    }
    let kind_text = pieces
        .next()
        .ok_or_else(|| {
            invalid(
                part,
                "no type (string, text, int, bigint, bool, decimal, datetime, enum(a|b))",
            )
        })?
        .trim();
    let kind = parse_kind(part, kind_text)?;
    let mut field = Field {
        name: name.to_owned(),
        kind,
        unique: false,
        optional: false,
        min: None,
        max: None,
        regex: None,
    };
    for constraint in pieces.map(str::trim) {
        let (key, value) = match constraint.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (constraint, None),
        };
        match (key, value) {
            ("unique", None) if !field.unique => field.unique = true,
            ("optional", None) if !field.optional => field.optional = true,
            ("min", Some(v)) if field.min.is_none() => field.min = Some(number(part, v)?),
            ("max", Some(v)) if field.max.is_none() => field.max = Some(number(part, v)?),
            ("regex", Some(v)) if field.regex.is_none() => {
                if !patterns.iter().any(|p| p == v) {
                    return Err(invalid(
                        part,
                        format!(
                            "regex={v}: no such named pattern in src/meta/validator.rs (have: {})",
                            patterns.join(", ")
                        ),
                    ));
                }
                field.regex = Some(v.to_owned());
            }
            _ => {
                return Err(invalid(
                    part,
                    format!(
                        "`{constraint}`: expected unique, optional, min=N, max=N or regex=NAME, each once"
                    ),
                ));
            }
        }
    }
    check(part, &field)?;
    Ok(field)
}

fn number(part: &str, text: &str) -> Result<i64, GenerateError> {
    text.parse::<i64>()
        .map_err(|_| invalid(part, format!("`{text}` is not an integer")))
}

fn parse_kind(part: &str, text: &str) -> Result<Kind, GenerateError> {
    Ok(match text {
        "string" => Kind::String,
        "text" => Kind::Text,
        "int" => Kind::Int,
        "bigint" => Kind::Bigint,
        "bool" => Kind::Bool,
        "decimal" => Kind::Decimal,
        "datetime" => Kind::Datetime,
        _ => {
            let Some(values) = text
                .strip_prefix("enum(")
                .and_then(|rest| rest.strip_suffix(')'))
            else {
                return Err(invalid(
                    part,
                    format!(
                        "unknown type `{text}` (string, text, int, bigint, bool, decimal, datetime, enum(a|b))"
                    ),
                ));
            };
            let values: Vec<String> = values.split('|').map(|v| v.trim().to_owned()).collect();
            for value in &values {
                let shaped = !value.is_empty()
                    && value.len() <= 32
                    && value.starts_with(|c: char| c.is_ascii_lowercase())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !shaped {
                    return Err(invalid(
                        part,
                        format!(
                            "enum value `{value}`: use a-z, 0-9 and `_`, starting with a letter, at most 32"
                        ),
                    ));
                }
            }
            let mut distinct = values.clone();
            distinct.sort();
            distinct.dedup();
            if distinct.len() != values.len() {
                return Err(invalid(part, "an enum value is listed twice"));
            }
            if values.len() < 2 {
                return Err(invalid(part, "an enum needs two values or more"));
            }
            let variants: Vec<String> = values
                .iter()
                .map(|v| heck::ToUpperCamelCase::to_upper_camel_case(v.as_str()))
                .collect();
            let mut distinct = variants.clone();
            distinct.sort();
            distinct.dedup();
            if distinct.len() != variants.len() {
                return Err(invalid(
                    part,
                    "two enum values differ only by `_` (their Rust variants would be one)",
                ));
            }
            Kind::Enum(values)
        }
    })
}

/// Refuses what the column could not hold or the generated tests could not exercise.
fn check(part: &str, f: &Field) -> Result<(), GenerateError> {
    let lengths = matches!(f.kind, Kind::String | Kind::Text);
    let values = matches!(f.kind, Kind::Int | Kind::Bigint);
    if (f.min.is_some() || f.max.is_some()) && !lengths && !values {
        return Err(invalid(
            part,
            "min= and max= apply to string, text, int and bigint",
        ));
    }
    if f.regex.is_some() && f.kind != Kind::String {
        return Err(invalid(part, "regex= applies to string fields"));
    }
    if f.regex.is_some() && (f.min.is_some() || f.max.is_some()) {
        return Err(invalid(
            part,
            "a named pattern states the length itself: drop min=/max=",
        ));
    }
    if f.unique
        && matches!(
            f.kind,
            Kind::Text | Kind::Bool | Kind::Enum(_) | Kind::Decimal | Kind::Datetime
        )
    {
        return Err(invalid(
            part,
            "unique applies to string, int and bigint fields",
        ));
    }
    if lengths {
        let min = f.min.unwrap_or(0);
        let max = f.max_chars() as i64;
        let ceiling = match (f.kind == Kind::Text, f.unique) {
            (true, _) => TEXT_MAX_CHARS as i64,
            (false, true) => UNIQUE_STRING_MAX as i64,
            (false, false) => 16_383,
        };
        if min < 0 || max < 1 || min > max {
            return Err(invalid(
                part,
                format!("lengths must satisfy 0 <= min <= max and max >= 1 (min={min}, max={max})"),
            ));
        }
        if max > ceiling {
            return Err(invalid(
                part,
                format!("max={max}: at most {ceiling} characters for this column"),
            ));
        }
        if f.unique && max < 2 {
            return Err(invalid(
                part,
                "a unique string needs max=2 or more (the generated tests store several)",
            ));
        }
    }
    if values {
        let (lo, hi) = match f.kind {
            Kind::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
            _ => (i64::MIN, i64::MAX),
        };
        let min = f.min.unwrap_or(lo);
        let max = f.max.unwrap_or(hi);
        if min < lo || max > hi || min > max {
            return Err(invalid(
                part,
                format!("min={min}, max={max}: must lie in {lo}..={hi}, min <= max"),
            ));
        }
        if max.saturating_sub(min) < 4 {
            return Err(invalid(
                part,
                "the range must hold 5 values or more (the generated tests store several)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns() -> Vec<String> {
        vec!["phone".into(), "username".into()]
    }

    #[test]
    fn every_type_and_constraint_parses() {
        let fields = parse(
            "name:string:max=64:min=1, code:string:unique:max=32, body:text:optional, qty:int:min=0:max=1000, \
             big:bigint:unique, done:bool, price:decimal:optional, due:datetime, color:enum(red|green|dark_blue), \
             phone:string:regex=phone:optional",
            &patterns(),
        )
        .unwrap();
        assert_eq!(fields.len(), 10);
        assert_eq!(fields[0].max, Some(64));
        assert!(fields[1].unique);
        assert_eq!(
            fields[8].kind,
            Kind::Enum(vec!["red".into(), "green".into(), "dark_blue".into()])
        );
        assert_eq!(fields[9].regex.as_deref(), Some("phone"));
        assert!(fields[9].optional);
    }

    #[test]
    fn what_cannot_work_is_refused_with_the_field_named() {
        for (spec, words) in [
            ("", "names no field"),
            ("a:string,a:int", "named twice"),
            ("id:int", "every generated table"),
            ("type:string", "keyword"),
            ("x", "no type"),
            ("x:float", "unknown type"),
            ("x:string:max=0", "max >= 1"),
            ("x:string:min=5:max=4", "min <= max"),
            ("x:string:max=9000:unique", "at most 768"),
            ("x:text:max=20000", "at most 16383"),
            ("x:int:max=3000000000", "must lie in"),
            ("x:int:min=1:max=3", "5 values"),
            ("x:bool:unique", "unique applies"),
            ("x:string:regex=nope", "no such named pattern"),
            ("x:int:regex=phone", "applies to string"),
            ("x:enum(a)", "two values"),
            ("x:enum(a|a)", "twice"),
            ("x:enum(A|b)", "enum value"),
            ("x:enum(a_b|a__b)", "differ only"),
            ("x:string:unique:unique", "each once"),
            ("x:string:sorted", "expected unique"),
            ("x:bool:max=3", "apply to string"),
        ] {
            let err = parse(spec, &patterns()).unwrap_err().to_string();
            assert!(err.contains(words), "{spec}: {err}");
        }
    }
}

//! `go_example generate resource`: the context the resource templates render with, and the plan
//! that writes them and registers the resource.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::fields::{Field, Kind};
use crate::names::ResourceNames;
use crate::plan::{Create, Insert, Plan, Rewrite};
use crate::templates::{CONTEXT_VERSION, Templates, rust_str, sql_str};
use crate::{GenerateError, read};

/// Who may call a resource's routes (`--access`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Every route: any signed-in user.
    User,
    /// Reads: any signed-in user; an `owner_id` column; changes by the owner or an admin.
    Owner,
    /// Reads: any signed-in user; changes by admins.
    Admin,
}

impl std::str::FromStr for Access {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Access::User),
            "owner" => Ok(Access::Owner),
            "admin" => Ok(Access::Admin),
            other => Err(format!("{other}: expected user, owner or admin")),
        }
    }
}

/// Who may call a resource, and where it is served and stored.
#[derive(Clone, Copy, Debug)]
pub struct Backend {
    /// `--access`.
    pub access: Access,
    /// `--grpc`.
    pub grpc: bool,
    /// `--mongo`.
    pub mongo: bool,
}

/// What `generate resource` was asked.
#[derive(Clone, Debug)]
pub struct ResourceRequest {
    /// The resource's name (`widget`).
    pub name: String,
    /// `--plural`.
    pub plural: Option<String>,
    /// `--fields`.
    pub fields: String,
    /// `--access`.
    pub access: Access,
    /// `--grpc`: a proto, a gRPC controller and its tests too.
    pub grpc: bool,
    /// `--mongo`: documents in MongoDB instead of rows in the SQL database.
    pub mongo: bool,
    /// The command line, quoted in the generated files' headers.
    pub command: String,
    /// The migrations' version (`YYYY-MM-DD-HHMMSS`); none: now, after every existing one.
    pub version: Option<String>,
}

/// A named pattern of `src/meta/validator.rs`: `NAME_PATTERN`, `validate_NAME`, `NAME_EXAMPLES`.
#[derive(Clone, Debug, Serialize)]
pub struct NamedPattern {
    /// `phone`.
    pub name: String,
    /// The regular expression.
    pub pattern: String,
    /// Values it accepts.
    pub examples: Vec<String>,
}

/// The named patterns `src/meta/validator.rs` declares completely.
pub fn named_patterns(validator: &str) -> Vec<NamedPattern> {
    let mut found = Vec::new();
    for line in validator.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((constant, value)) = rest.split_once(": &str = ") else {
            continue;
        };
        let Some(name) = constant.strip_suffix("_PATTERN") else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        let Some(pattern) = string_literal(value.trim_end_matches(';')) else {
            continue;
        };
        let examples_prefix = format!("pub const {}_EXAMPLES: [&str; ", name.to_ascii_uppercase());
        let examples: Vec<String> = validator
            .lines()
            .find_map(|l| l.trim().strip_prefix(&examples_prefix))
            .and_then(|l| l.split_once("= ["))
            .map(|(_, list)| {
                list.trim_end_matches("];")
                    .split(',')
                    .filter_map(|item| string_literal(item.trim()))
                    .collect()
            })
            .unwrap_or_default();
        let validates = validator.contains(&format!("pub fn validate_{name}("));
        if validates && examples.len() >= 3 {
            found.push(NamedPattern {
                name,
                pattern,
                examples,
            });
        }
    }
    found
}

/// The text of a Rust string literal (plain or raw, on one line).
fn string_literal(text: &str) -> Option<String> {
    let text = text.trim();
    if let Some(raw) = text.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let inner = &raw[hashes..];
        let inner = inner.strip_prefix('"')?;
        let inner = inner.strip_suffix(&format!("\"{}", "#".repeat(hashes)))?;
        return Some(inner.to_owned());
    }
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then(|| inner.to_owned())
}

/// One field as the templates see it.
#[derive(Clone, Debug, Serialize)]
pub struct FieldContext {
    /// The column and JSON name.
    pub name: String,
    /// One line of documentation.
    pub doc: String,
    /// `string`, `text`, `int`, `bigint`, `bool`, `decimal`, `datetime`, `enum`.
    pub kind: String,
    /// NULL allowed.
    pub optional: bool,
    /// A unique key.
    pub unique: bool,
    /// The row's Rust type.
    pub row_type: String,
    /// The form's Rust type.
    pub form_type: String,
    /// The view's Rust type.
    pub view_type: String,
    /// The `#[validate(...)]` rules.
    pub validate: Vec<String>,
    /// The `#[schema(...)]` arguments of the form's field (empty: none).
    pub form_schema: String,
    /// The `#[schema(...)]` arguments of the view's field (empty: none).
    pub view_schema: String,
    /// The stored value of `self.<name>` (a form), an expression that may use `?` with a
    /// `&'static str` error.
    pub to_value: String,
    /// The shown value of `row.<name>`.
    pub to_view: String,
    /// The diesel SQL type in `schema.rs`.
    pub diesel_type: String,
    /// `#[max_length = N]` of a VARCHAR.
    pub max_length: Option<u64>,
    /// The MySQL column definition.
    pub mysql: String,
    /// The SQLite column definition.
    pub sqlite: String,
    /// The enum's type, for an enum field.
    pub enum_type: Option<String>,
    /// The form field's `deserialize_with` function, if any.
    pub deserialize_with: Option<String>,
    /// The field's type in the proto (`optional string`, `int64`, ...).
    pub proto_type: String,
    /// The form's value of `message.<name>` (a proto message), an expression that may use `?`
    /// with a `tonic::Status` error.
    pub from_proto: String,
    /// The proto message's value of `view.<name>` (a view).
    pub to_proto: String,
    /// The proto message's value of the JSON sample `body` (in the generated tests).
    pub sample_to_proto: String,
    /// The field's Rust type in a MongoDB document (`--mongo`).
    pub doc_type: String,
    /// The document's value of `values.<name>` (a `&Values`).
    pub to_doc: String,
    /// The row's value of `document.<name>` (a stored document), an expression that may use `?`
    /// with a `RepoError`.
    pub from_doc: String,
    /// The BSON type of its values (`string`, `int`, `long`, `bool`, `date`): the partial
    /// unique index of an optional field.
    pub bson_type: String,
}

/// An enum field's Rust enum.
#[derive(Clone, Debug, Serialize)]
pub struct EnumContext {
    /// `WidgetColor`.
    pub type_name: String,
    /// The field.
    pub field: String,
    /// `Red` / `red`.
    pub variants: Vec<(String, String)>,
}

/// The sample bodies the generated tests and Postman requests send.
#[derive(Clone, Debug, Serialize)]
pub struct Samples {
    /// Three valid create bodies, distinct in every unique field (pretty JSON).
    pub create: Vec<String>,
    /// A valid replacement body (optional fields null).
    pub update: String,
    /// The same, as JSON values for Postman's assertions.
    pub update_value: Value,
    /// The first create body as a value.
    pub create_value: Value,
    /// A body one field of which breaks its rule.
    pub invalid: String,
    /// That field.
    pub invalid_field: String,
    /// The invalid value fits the field's proto type (a string or an integer in range), so the
    /// gRPC test sends it too.
    pub invalid_in_proto: bool,
}

/// Everything the resource templates render with (docs/generator.md lists it).
#[derive(Clone, Debug, Serialize)]
pub struct ResourceContext {
    /// `context_version` and the `command` line.
    pub generator: Value,
    /// The names.
    #[serde(flatten)]
    pub names: ResourceNames,
    /// Who may call.
    pub access: Access,
    /// Served over gRPC too (`--grpc`).
    pub grpc: bool,
    /// Stored in MongoDB (`--mongo`).
    pub mongo: bool,
    /// The repository's folder: `mysql` (diesel, MySQL and SQLite) or `mongodb`.
    pub repository_module: String,
    /// The repository component: `DieselWidgetRepository` or `MongoWidgetRepository`.
    pub repository_impl: String,
    /// An `owner_id` column.
    pub owned: bool,
    /// The fields.
    pub fields: Vec<FieldContext>,
    /// The unique fields' names.
    pub unique: Vec<String>,
    /// The enums.
    pub enums: Vec<EnumContext>,
    /// A decimal field exists.
    pub has_decimal: bool,
    /// A datetime field exists.
    pub has_datetime: bool,
    /// A conversion can fail (decimal or datetime).
    pub fallible: bool,
    /// A field is required (not `optional`).
    pub has_required: bool,
    /// The validator functions the model imports.
    pub validators: Vec<String>,
    /// The migrations' folder name (`<version>_create_<plural>`).
    pub migration: String,
    /// Sample bodies.
    pub samples: Samples,
    /// Usernames the Postman folder registers (owner, other).
    pub postman_users: (String, String),
}

fn push_opt(optional: bool, ty: &str) -> String {
    if optional {
        format!("Option<{ty}>")
    } else {
        ty.to_owned()
    }
}

fn field_context(
    names: &ResourceNames,
    f: &Field,
    patterns: &[NamedPattern],
    mongo: bool,
    validators: &mut Vec<String>,
) -> FieldContext {
    let n = &f.name;
    let opt = f.optional;
    let mut validate = Vec::new();
    let mut form_schema = Vec::new();
    let mut view_schema = Vec::new();
    let null = if opt { "NULL" } else { "NOT NULL" };
    let (row, form, view, diesel, max_length, sql, doc);
    let mut to_value = format!("self.{n}");
    let mut to_view = format!("row.{n}");
    let mut enum_type = None;
    let mut deserialize = None;
    let title = n.replace('_', " ");
    match &f.kind {
        Kind::String | Kind::Text => {
            let max = f.max_chars();
            let is_text = f.kind == Kind::Text;
            row = "String".to_owned();
            form = "String".to_owned();
            view = "String".to_owned();
            if let Some(name) = &f.regex {
                let p = patterns.iter().find(|p| &p.name == name);
                validate.push(format!("custom(function = \"validate_{name}\")"));
                validators.push(format!("validate_{name}"));
                if let Some(p) = p {
                    form_schema.push(format!("pattern = {}", rust_str(&p.pattern)));
                    form_schema.push(format!("example = {}", rust_str(&p.examples[0])));
                    doc = format!("The {title}: the `{name}` pattern (`{}`).", p.pattern);
                } else {
                    doc = format!("The {title}.");
                }
            } else {
                let min = f.min.unwrap_or(0);
                if min > 0 {
                    validate.push(format!("length(min = {min}, max = {max})"));
                    form_schema.push(format!("min_length = {min}"));
                    doc = format!("The {title}: {min} to {max} characters.");
                } else {
                    validate.push(format!("length(max = {max})"));
                    doc = format!("The {title}: at most {max} characters.");
                }
                form_schema.push(format!("max_length = {max}"));
            }
            if is_text {
                diesel = "Text".to_owned();
                max_length = None;
                sql = format!("TEXT {null}");
            } else {
                diesel = "Varchar".to_owned();
                max_length = Some(if f.regex.is_some() {
                    STRING_PATTERN_MAX
                } else {
                    max
                });
                sql = format!("VARCHAR({}) {null}", max_length.unwrap_or(max));
            }
        }
        Kind::Int | Kind::Bigint => {
            let (ty, lo, hi, sql_ty, d) = if f.kind == Kind::Int {
                (
                    "i32",
                    i64::from(i32::MIN),
                    i64::from(i32::MAX),
                    "INT",
                    "Integer",
                )
            } else {
                ("i64", i64::MIN, i64::MAX, "BIGINT", "Bigint")
            };
            row = ty.to_owned();
            form = ty.to_owned();
            view = ty.to_owned();
            let min = f.min.unwrap_or(lo);
            let max = f.max.unwrap_or(hi);
            let suffix = if ty == "i64" { "_i64" } else { "" };
            let mut range = Vec::new();
            if f.min.is_some() {
                range.push(format!("min = {}", literal(min, suffix)));
            }
            if f.max.is_some() {
                range.push(format!("max = {}", literal(max, suffix)));
            }
            if !range.is_empty() {
                validate.push(format!("range({})", range.join(", ")));
            }
            form_schema.push(format!("minimum = {}", literal(min, suffix)));
            form_schema.push(format!("maximum = {}", literal(max, suffix)));
            doc = format!("The {title}: {min} to {max}.");
            deserialize = Some(if opt {
                "crate::model::values::optional_integer"
            } else {
                "crate::model::values::integer"
            });
            diesel = d.to_owned();
            max_length = None;
            sql = format!("{sql_ty} {null}");
        }
        Kind::Bool => {
            row = "bool".into();
            form = "bool".into();
            view = "bool".into();
            doc = format!("Whether {title}.");
            diesel = "Bool".into();
            max_length = None;
            sql = format!("BOOLEAN {null}");
        }
        Kind::Decimal => {
            row = "BigDecimal".into();
            form = "String".into();
            view = "String".into();
            validate.push("custom(function = \"validate_decimal\")".into());
            validators.push("validate_decimal".into());
            form_schema.push(format!("pattern = {}", rust_str(DECIMAL_PATTERN)));
            form_schema.push("example = \"12.5\"".into());
            view_schema.push("example = \"12.5000\"".into());
            doc = format!(
                "The {title}: a decimal with up to 11 digits before the point and 4 after, as text."
            );
            to_value = if opt {
                format!(
                    "self.{n}.as_deref().map(str::parse::<BigDecimal>).transpose().map_err(|_| \"{n}\")?"
                )
            } else {
                format!("self.{n}.parse::<BigDecimal>().map_err(|_| \"{n}\")?")
            };
            to_view = if opt {
                format!("row.{n}.as_ref().map(decimal_text)")
            } else {
                format!("decimal_text(&row.{n})")
            };
            diesel = "Decimal".into();
            max_length = None;
            sql = format!("DECIMAL(15,4) {null}");
        }
        Kind::Datetime => {
            row = "NaiveDateTime".into();
            form = "String".into();
            view = "DateTime<Utc>".into();
            // A BSON date holds milliseconds: a finer fraction is refused, never cut.
            let (validator, pattern) = if mongo {
                ("validate_timestamp_millis", TIMESTAMP_MILLIS_PATTERN)
            } else {
                ("validate_timestamp", TIMESTAMP_PATTERN)
            };
            validate.push(format!("custom(function = \"{validator}\")"));
            validators.push(validator.into());
            validators.push("parse_timestamp".into());
            form_schema.push(format!("value_type = {}", push_opt(opt, "String")));
            form_schema.push("format = DateTime".into());
            form_schema.push(format!("pattern = {}", rust_str(pattern)));
            form_schema.push("example = \"2026-12-07T10:00:00Z\"".into());
            view_schema.push(format!("value_type = {}", push_opt(opt, "String")));
            view_schema.push("format = DateTime".into());
            doc = format!("The {title}: an RFC 3339 instant in 1971-2037.");
            to_value = if opt {
                format!(
                    "self.{n}.as_deref().map(|v| parse_timestamp(v).ok_or(\"{n}\")).transpose()?"
                )
            } else {
                format!("parse_timestamp(&self.{n}).ok_or(\"{n}\")?")
            };
            to_view = if opt {
                format!("row.{n}.map(|t| t.and_utc())")
            } else {
                format!("row.{n}.and_utc()")
            };
            diesel = "Timestamp".into();
            max_length = None;
            sql = format!("TIMESTAMP{{precision}} {null}");
        }
        Kind::Enum(values) => {
            let ty = format!(
                "{}{}",
                names.type_name,
                heck::ToUpperCamelCase::to_upper_camel_case(n.as_str())
            );
            row = "String".into();
            form = ty.clone();
            view = "String".into();
            doc = format!(
                "The {title}: {}.",
                values
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            to_value = if opt {
                format!("self.{n}.map(|v| v.as_str().to_owned())")
            } else {
                format!("self.{n}.as_str().to_owned()")
            };
            let longest = values.iter().map(String::len).max().unwrap_or(1) as u64;
            diesel = "Varchar".into();
            max_length = Some(longest);
            let list = values
                .iter()
                .map(|v| sql_str(v))
                .collect::<Vec<_>>()
                .join(", ");
            sql = format!("VARCHAR({longest}) {null} CHECK ({n} IN ({list}))");
            view_schema.push(format!("example = {}", rust_str(&values[0])));
            enum_type = Some(ty);
        }
    }
    let mysql = sql.replace("{precision}", "(6)");
    let sqlite = sql.replace("{precision}", "");
    let (proto, sample_of) = match f.kind {
        Kind::Int => ("int32", "as_i64"),
        Kind::Bigint => ("int64", "as_i64"),
        Kind::Bool => ("bool", "as_bool"),
        _ => ("string", "as_str"),
    };
    let from_proto = match &enum_type {
        Some(ty) if opt => format!(
            "message.{n}.as_deref().map(|text| {ty}::parse(text).ok_or_else(|| unknown_value(\"{n}\"))).transpose()?"
        ),
        Some(ty) => format!("{ty}::parse(&message.{n}).ok_or_else(|| unknown_value(\"{n}\"))?"),
        None => format!("message.{n}"),
    };
    let to_proto = match (&f.kind, opt) {
        (Kind::Datetime, true) => format!("view.{n}.as_ref().map(rfc3339)"),
        (Kind::Datetime, false) => format!("rfc3339(&view.{n})"),
        _ => format!("view.{n}"),
    };
    let sample = format!("body[\"{n}\"].{sample_of}()");
    let sample_to_proto = match (&f.kind, opt) {
        (Kind::Int, true) => format!("{sample}.map(|n| i32::try_from(n).unwrap())"),
        (Kind::Int, false) => format!("i32::try_from({sample}.unwrap()).unwrap()"),
        (Kind::Bigint | Kind::Bool, true) => sample,
        (Kind::Bigint | Kind::Bool, false) => format!("{sample}.unwrap()"),
        (_, true) => format!("{sample}.map(str::to_owned)"),
        (_, false) => format!("{sample}.unwrap().to_owned()"),
    };
    let (stored, bson_type) = match f.kind {
        Kind::Int => ("i32", "int"),
        Kind::Bigint => ("i64", "long"),
        Kind::Bool => ("bool", "bool"),
        Kind::Datetime => ("bson::DateTime", "date"),
        _ => ("String", "string"),
    };
    let (to_doc, from_doc) = match (&f.kind, opt) {
        (Kind::Decimal, false) => (
            format!("decimal_text(&values.{n})"),
            format!("decimal(&document.{n})?"),
        ),
        (Kind::Decimal, true) => (
            format!("values.{n}.as_ref().map(decimal_text)"),
            format!("document.{n}.as_deref().map(decimal).transpose()?"),
        ),
        (Kind::Datetime, false) => (
            format!("bson_date(&values.{n})"),
            format!("naive(document.{n})?"),
        ),
        (Kind::Datetime, true) => (
            format!("values.{n}.as_ref().map(bson_date)"),
            format!("document.{n}.map(naive).transpose()?"),
        ),
        (Kind::Int | Kind::Bigint | Kind::Bool, _) => {
            (format!("values.{n}"), format!("document.{n}"))
        }
        _ => (format!("values.{n}.clone()"), format!("document.{n}")),
    };
    FieldContext {
        name: n.clone(),
        doc,
        kind: match f.kind {
            Kind::Enum(_) => "enum".into(),
            ref k => serde_json::to_value(k)
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
        optional: opt,
        unique: f.unique,
        row_type: push_opt(opt, &row),
        form_type: push_opt(opt, &form),
        view_type: push_opt(opt, &view),
        validate,
        form_schema: form_schema.join(", "),
        view_schema: view_schema.join(", "),
        to_value,
        to_view,
        diesel_type: diesel,
        max_length,
        mysql: format!("{n} {mysql}"),
        sqlite: format!("{n} {sqlite}"),
        enum_type,
        deserialize_with: deserialize.map(str::to_owned),
        proto_type: if opt {
            format!("optional {proto}")
        } else {
            proto.to_owned()
        },
        from_proto,
        to_proto,
        sample_to_proto,
        doc_type: push_opt(opt, stored),
        to_doc,
        from_doc,
        bson_type: bson_type.to_owned(),
    }
}

/// A VARCHAR holding a named pattern's values (the pattern bounds the length itself).
const STRING_PATTERN_MAX: u64 = 255;
/// `src/meta/validator.rs`'s DECIMAL_PATTERN (the generated code names the validator; the
/// document states the pattern).
pub const DECIMAL_PATTERN: &str = r"^-?(0|[1-9][0-9]{0,10})(\.[0-9]{1,4})?$";
/// `src/meta/validator.rs`'s TIMESTAMP_MILLIS_PATTERN (`--mongo`).
pub const TIMESTAMP_MILLIS_PATTERN: &str = r"^(197[1-9]|19[89][0-9]|20[0-2][0-9]|203[0-7])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";
/// `src/meta/validator.rs`'s TIMESTAMP_PATTERN.
pub const TIMESTAMP_PATTERN: &str = r"^(197[1-9]|19[89][0-9]|20[0-2][0-9]|203[0-7])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// An integer literal rustfmt keeps as it is (`_` every three digits past four).
fn literal(value: i64, suffix: &str) -> String {
    let digits = value.unsigned_abs().to_string();
    let grouped = if digits.len() > 4 {
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('_');
            }
            out.push(c);
        }
        out
    } else {
        digits
    };
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{grouped}{suffix}")
}

/// The value of `f` in sample `i` (0..3 create, 3 the update), distinct per `i` where unique.
fn sample(f: &Field, i: usize, patterns: &[NamedPattern]) -> Value {
    if f.optional && i == 3 {
        return Value::Null;
    }
    match &f.kind {
        Kind::String | Kind::Text => {
            if let Some(name) = &f.regex {
                let p = patterns.iter().find(|p| &p.name == name);
                return json!(p.map_or("", |p| p.examples[i % p.examples.len()].as_str()));
            }
            let max = f.max_chars() as usize;
            let min = f.min.unwrap_or(0) as usize;
            let digit = char::from(b'0' + i as u8);
            let stem: String = f.name.chars().filter(char::is_ascii_alphanumeric).collect();
            let mut text: String = stem.chars().take(max.saturating_sub(1).min(12)).collect();
            while text.chars().count() + 1 < min {
                text.push('x');
            }
            text.push(digit);
            json!(text)
        }
        Kind::Int | Kind::Bigint => {
            let lo = match (f.min, f.max) {
                (Some(min), _) => min,
                (None, Some(max)) if max < 4 => max - 4,
                _ => 1,
            };
            json!(lo + i as i64)
        }
        Kind::Bool => json!(i.is_multiple_of(2)),
        Kind::Decimal => json!(format!("{}.2500", 10 + i)),
        Kind::Datetime => json!(format!("2026-12-0{}T10:00:00Z", i + 1)),
        Kind::Enum(values) => json!(values[i % values.len()]),
    }
}

/// A value breaking `f`'s rule, when one can be sent as JSON.
fn invalid(f: &Field) -> Value {
    match &f.kind {
        Kind::String | Kind::Text if f.regex.is_some() => json!("!"),
        Kind::String | Kind::Text => json!("x".repeat(f.max_chars() as usize + 1)),
        Kind::Int | Kind::Bigint => match (f.max, f.min) {
            (Some(max), _) if max < i64::MAX => json!(max + 1),
            (_, Some(min)) if min > i64::MIN => json!(min - 1),
            _ => json!("not a number"),
        },
        Kind::Bool => json!("yes"),
        Kind::Decimal => json!("1.23456"),
        Kind::Datetime => json!("2026-02-31T00:00:00Z"),
        Kind::Enum(_) => json!("not_a_value"),
    }
}

fn body(fields: &[Field], i: usize, patterns: &[NamedPattern]) -> Value {
    let mut map = serde_json::Map::new();
    for f in fields {
        map.insert(f.name.clone(), sample(f, i, patterns));
    }
    Value::Object(map)
}

/// The usernames a Postman folder registers: letters and digits of the plural, 6 to 30.
fn postman_user(plural: &str, suffix: &str) -> String {
    let mut name: String = plural
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(20)
        .collect();
    while name.len() + suffix.len() < 6 {
        name.push('x');
    }
    name + suffix
}

/// The context of a resource.
///
/// # Errors
/// A field refers to a pattern the project lacks.
pub fn context(
    names: ResourceNames,
    fields: &[Field],
    backend: Backend,
    patterns: &[NamedPattern],
    command: &str,
    migration: String,
) -> Result<ResourceContext, GenerateError> {
    let Backend {
        access,
        grpc,
        mongo,
    } = backend;
    let mut validators = Vec::new();
    let contexts: Vec<FieldContext> = fields
        .iter()
        .map(|f| field_context(&names, f, patterns, mongo, &mut validators))
        .collect();
    validators.sort();
    validators.dedup();
    let enums = fields
        .iter()
        .filter_map(|f| match &f.kind {
            Kind::Enum(values) => Some(EnumContext {
                type_name: format!(
                    "{}{}",
                    names.type_name,
                    heck::ToUpperCamelCase::to_upper_camel_case(f.name.as_str())
                ),
                field: f.name.clone(),
                variants: values
                    .iter()
                    .map(|v| {
                        (
                            heck::ToUpperCamelCase::to_upper_camel_case(v.as_str()),
                            v.clone(),
                        )
                    })
                    .collect(),
            }),
            _ => None,
        })
        .collect();
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let create: Vec<Value> = (0..3).map(|i| body(fields, i, patterns)).collect();
    let update = body(fields, 3, patterns);
    let bad = &fields[0];
    let mut invalid_body = create[0].clone();
    let invalid_value = invalid(bad);
    let invalid_in_proto = match bad.kind {
        Kind::Bool => false,
        Kind::Int => invalid_value
            .as_i64()
            .is_some_and(|n| i32::try_from(n).is_ok()),
        Kind::Bigint => invalid_value.is_i64(),
        _ => invalid_value.is_string(),
    };
    invalid_body[&bad.name] = invalid_value;
    let has_decimal = fields.iter().any(|f| f.kind == Kind::Decimal);
    let has_datetime = fields.iter().any(|f| f.kind == Kind::Datetime);
    Ok(ResourceContext {
        generator: json!({ "context_version": CONTEXT_VERSION, "command": command }),
        postman_users: (
            postman_user(&names.plural, "own1"),
            postman_user(&names.plural, "oth1"),
        ),
        owned: access == Access::Owner,
        access,
        grpc,
        mongo,
        repository_module: if mongo { "mongodb" } else { "mysql" }.to_owned(),
        repository_impl: format!(
            "{}{}Repository",
            if mongo { "Mongo" } else { "Diesel" },
            names.type_name
        ),
        unique: fields
            .iter()
            .filter(|f| f.unique)
            .map(|f| f.name.clone())
            .collect(),
        enums,
        has_decimal,
        has_datetime,
        fallible: has_decimal || has_datetime,
        has_required: fields.iter().any(|f| !f.optional),
        validators,
        migration,
        samples: Samples {
            create: create.iter().map(pretty).collect(),
            update: pretty(&update),
            update_value: update,
            create_value: create[0].clone(),
            invalid: pretty(&invalid_body),
            invalid_field: bad.name.clone(),
            invalid_in_proto,
        },
        fields: contexts,
        names,
    })
}

/// The first path segments the controllers serve (`path = "/auth/login"` gives `auth`).
fn served_segments(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join("src/controller")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                for part in text.split("path = \"/").skip(1) {
                    let segment: String = part
                        .chars()
                        .take_while(|c| !matches!(c, '/' | '"' | '{' | '?'))
                        .collect();
                    found.push(segment);
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The next migration version: now, or one second after the latest existing one.
pub fn next_version(root: &Path, now: chrono::NaiveDateTime) -> String {
    use chrono::Timelike;
    const FORMAT: &str = "%Y-%m-%d-%H%M%S";
    let latest = ["migrations/mysql", "migrations/sqlite"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir)).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.split('_').next()?.to_owned();
            chrono::NaiveDateTime::parse_from_str(&version, FORMAT).ok()
        })
        .max();
    // Versions have whole seconds: two generations within one second get consecutive ones.
    let now = now.with_nanosecond(0).unwrap_or(now);
    let next = match latest {
        Some(latest) if latest >= now => latest + chrono::Duration::seconds(1),
        _ => now,
    };
    next.format(FORMAT).to_string()
}

/// The plan of `generate resource`.
///
/// # Errors
/// The request is unusable or clashes with the project.
pub fn plan(
    root: &Path,
    request: &ResourceRequest,
    templates: &Templates,
) -> Result<(Plan, ResourceContext), GenerateError> {
    let names = ResourceNames::new(&request.name, request.plural.as_deref())?;
    let validator = read(root, "src/meta/validator.rs")?;
    let patterns = named_patterns(&validator);
    let pattern_names: Vec<String> = patterns.iter().map(|p| p.name.clone()).collect();
    let fields = crate::fields::parse(&request.fields, &pattern_names)?;
    let schema_path = "src/model/schema.rs";
    let schema_text = read(root, schema_path)?;
    let schema = crate::schema::Schema::parse(&schema_text)
        .map_err(|reason| GenerateError::project(schema_path, reason))?;
    if schema.has_table(&names.plural) {
        return Err(GenerateError::Clash(format!(
            "a table `{}` exists already (src/model/schema.rs)",
            names.plural
        )));
    }
    if request.grpc && root.join("proto").join(&names.name).exists() {
        return Err(GenerateError::Clash(format!(
            "a proto package `{0}` exists already (proto/{0})",
            names.name
        )));
    }
    if served_segments(root).contains(&names.plural) {
        return Err(GenerateError::Clash(format!(
            "`/{}` is served by a controller already",
            names.plural
        )));
    }
    let version = request
        .version
        .clone()
        .unwrap_or_else(|| next_version(root, chrono::Utc::now().naive_utc()));
    let migration = format!("{version}_create_{}", names.plural);
    let ctx = context(
        names.clone(),
        &fields,
        Backend {
            access: request.access,
            grpc: request.grpc,
            mongo: request.mongo,
        },
        &patterns,
        &request.command,
        migration.clone(),
    )?;
    let render = |name: &str| templates.render(name, &ctx);
    let n = &names.name;
    let p = &names.plural;
    let t = &names.type_name;
    let mut plan = Plan::default();
    let mut create = |path: String, content: String| {
        plan.creates.push(Create {
            path: PathBuf::from(path),
            content,
        });
    };
    create(
        format!("src/model/{n}.rs"),
        render("resource/model.rs.jinja")?,
    );
    if request.mongo {
        create(
            format!("src/repository/mongodb/{n}.rs"),
            render("resource/mongo_repository.rs.jinja")?,
        );
    } else {
        create(
            format!("src/repository/mysql/{n}.rs"),
            render("resource/repository.rs.jinja")?,
        );
    }
    create(
        format!("src/service/{n}.rs"),
        render("resource/service.rs.jinja")?,
    );
    create(
        format!("src/controller/{n}.rs"),
        render("resource/controller.rs.jinja")?,
    );
    create(
        format!("tests/api/{p}.rs"),
        render("resource/test.rs.jinja")?,
    );
    // A MongoDB collection needs no migration: its unique indexes are made by its repository.
    let dialects: &[&str] = if request.mongo {
        &[]
    } else {
        &["mysql", "sqlite"]
    };
    for dialect in dialects {
        create(
            format!("migrations/{dialect}/{migration}/up.sql"),
            render(&format!("resource/{dialect}_up.sql.jinja"))?,
        );
        create(
            format!("migrations/{dialect}/{migration}/down.sql"),
            render("resource/down.sql.jinja")?,
        );
    }
    if request.grpc {
        create(
            format!("proto/{n}/{n}.proto"),
            render("resource/grpc.proto.jinja")?,
        );
        create(
            format!("src/controller/grpc/{n}.rs"),
            render("resource/grpc_controller.rs.jinja")?,
        );
        create(
            format!("tests/api/{p}_grpc.rs"),
            render("resource/grpc_test.rs.jinja")?,
        );
    }
    let module_line = format!("pub mod {n};");
    let insert = |path: &str, marker: &str, lines: Vec<String>| Insert {
        path: PathBuf::from(path),
        marker: marker.to_owned(),
        lines,
    };
    plan.inserts = vec![
        insert(
            "src/model/mod.rs",
            "generate:mod",
            vec![module_line.clone()],
        ),
        insert(
            &format!("src/repository/{}/mod.rs", ctx.repository_module),
            "generate:mod",
            vec![module_line.clone()],
        ),
        insert(
            "src/service/mod.rs",
            "generate:mod",
            vec![module_line.clone()],
        ),
        insert("src/controller/mod.rs", "generate:mod", vec![module_line]),
        insert(
            "tests/api/main.rs",
            "generate:mod",
            vec![format!("mod {p};")],
        ),
        insert(
            "src/assembly/mod.rs",
            "generate:use",
            vec![
                format!("use crate::controller::{n}::{t}ControllerImpl;"),
                format!(
                    "use crate::repository::{}::{n}::{};",
                    ctx.repository_module, ctx.repository_impl
                ),
                format!("use crate::service::{n}::{t}ServiceImpl;"),
            ],
        ),
        insert(
            "src/assembly/mod.rs",
            "generate:components",
            vec![format!(
                "{}, {t}ServiceImpl, {t}ControllerImpl,",
                ctx.repository_impl
            )],
        ),
        insert(
            "src/server/http.rs",
            "generate:routes",
            vec![format!("controller::{n}::routes::<AppModule>(routes);")],
        ),
        insert(
            "docs/architecture.md",
            "generate:graph",
            vec![
                format!("{r}[\"{r}<br/>: {t}Repository\"]", r = ctx.repository_impl),
                format!(
                    "{} --> {}",
                    if request.mongo {
                        "MongoClientImpl"
                    } else {
                        "DatabaseClientImpl"
                    },
                    ctx.repository_impl
                ),
                format!("{} --> {t}ServiceImpl", ctx.repository_impl),
                format!("{t}ServiceImpl --> {t}ControllerImpl"),
                format!("{t}ControllerImpl --> HTTP"),
            ],
        ),
        insert(
            "tests/README.md",
            "generate:routes",
            vec![format!(
                "| `GET /{p}`, `GET /{p}/{{id}}`, `POST /{p}`, `PUT /{p}/{{id}}`, `DELETE /{p}/{{id}}` (generated) | {} | `api/{p}.rs` |",
                match request.access {
                    Access::User => "user",
                    Access::Owner => "user; changes: the owner or an admin",
                    Access::Admin => "user; changes: admin",
                }
            )],
        ),
    ];
    if request.grpc {
        plan.inserts.extend(grpc_inserts(&names, request.access));
    }
    if !request.mongo {
        let table = crate::schema::table_block(&names.plural, ctx.owned, &ctx.fields);
        let joinable = ctx
            .owned
            .then(|| format!("diesel::joinable!({p} -> users (owner_id));"));
        let after = schema.with_table(&names.plural, &table, joinable.as_deref());
        plan.rewrites.push(Rewrite {
            path: PathBuf::from(schema_path),
            before: schema_text,
            after,
            summary: format!("the `{p}` table added, as `diesel print-schema` prints it"),
        });
    }
    let collection_path = crate::postman::COLLECTION;
    let collection = read(root, collection_path)?;
    let folder = render("resource/postman.json.jinja")?;
    let after = crate::postman::with_folder(&collection, p, &folder)
        .map_err(|reason| GenerateError::project(collection_path, reason))?;
    plan.rewrites.push(Rewrite {
        path: PathBuf::from(collection_path),
        before: collection,
        after,
        summary: format!("the `{p}` folder added"),
    });
    Ok((plan, ctx))
}

/// The lines that compile a resource's proto and serve its gRPC service (`--grpc`).
fn grpc_inserts(names: &ResourceNames, access: Access) -> Vec<Insert> {
    let n = &names.name;
    let p = &names.plural;
    let t = &names.type_name;
    let server = format!("{t}ServiceServer<Arc<dyn {t}RpcController>>");
    let insert = |path: &str, marker: &str, lines: Vec<String>| Insert {
        path: PathBuf::from(path),
        marker: marker.to_owned(),
        lines,
    };
    vec![
        insert(
            "build.rs",
            "generate:protos",
            vec![format!("\"proto/{n}/{n}.proto\",")],
        ),
        insert(
            "src/proto.rs",
            "generate:protos",
            vec![format!("package!({n});")],
        ),
        insert(
            "src/controller/grpc/mod.rs",
            "generate:mod",
            vec![format!("pub mod {n};")],
        ),
        insert(
            "tests/api/main.rs",
            "generate:mod",
            vec![format!("mod {p}_grpc;")],
        ),
        insert(
            "src/assembly/mod.rs",
            "generate:use",
            vec![format!(
                "use crate::controller::grpc::{n}::{t}RpcControllerImpl;"
            )],
        ),
        insert(
            "src/assembly/mod.rs",
            "generate:components",
            vec![format!("{t}RpcControllerImpl,")],
        ),
        insert(
            "src/server/grpc.rs",
            "generate:use",
            vec![
                format!("use crate::controller::grpc::{n}::{t}RpcController;"),
                format!("use crate::proto::{n}::{n}_service_server::{t}ServiceServer;"),
            ],
        ),
        insert(
            "src/server/grpc.rs",
            "generate:grpc-names",
            vec![format!("<{server} as NamedService>::NAME,")],
        ),
        insert(
            "src/server/grpc.rs",
            "generate:grpc-health",
            vec![format!("health.set_serving::<{server}>().await;")],
        ),
        insert(
            "src/server/grpc.rs",
            "generate:grpc-services",
            vec![format!(
                "let router = router.add_service({t}ServiceServer::new(HasComponent::<dyn {t}RpcController>::resolve(module.as_ref())).max_decoding_message_size(config.max_message_size));"
            )],
        ),
        insert(
            "docs/architecture.md",
            "generate:graph",
            vec![
                format!("{t}ServiceImpl --> {t}RpcControllerImpl"),
                format!("{t}RpcControllerImpl --> GRPC"),
            ],
        ),
        insert(
            "tests/README.md",
            "generate:routes",
            vec![format!(
                "| `{n}.{t}Service` (generated) | {} | `api/{p}_grpc.rs` |",
                match access {
                    Access::User => "user or service (reads); user (changes)",
                    Access::Owner => "user or service (reads); changes: the owner or an admin",
                    Access::Admin => "user or service (reads); changes: admin",
                }
            )],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::parse;

    fn patterns() -> Vec<NamedPattern> {
        named_patterns(include_str!("../../../src/meta/validator.rs"))
    }

    /// Renders every resource template for `spec` and checks each output: Rust parses, the
    /// Postman folder is JSON, the SQL creates the table, the schema block names every column.
    fn render_all(name: &str, plural: Option<&str>, spec: &str, access: Access) {
        for (grpc, mongo) in [(false, false), (true, false), (false, true), (true, true)] {
            let backend = Backend {
                access,
                grpc,
                mongo,
            };
            render_each(name, plural, spec, backend);
        }
    }

    /// [`render_all`] for one backend; the proto compiles.
    fn render_each(name: &str, plural: Option<&str>, spec: &str, backend: Backend) {
        let patterns = patterns();
        let names: Vec<String> = patterns.iter().map(|p| p.name.clone()).collect();
        let fields = parse(spec, &names).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let resource = ResourceNames::new(name, plural).unwrap();
        let ctx = context(
            resource.clone(),
            &fields,
            backend,
            &patterns,
            "go_example generate resource test",
            "2026-12-07-000000_create_x".into(),
        )
        .unwrap();
        let templates = Templates::new(None).unwrap();
        for (template, _) in crate::templates::BUILT_IN {
            if !template.starts_with("resource/") {
                continue;
            }
            let out = templates
                .render(template, &ctx)
                .unwrap_or_else(|e| panic!("{template} with {spec} ({backend:?}): {e}"));
            if template.ends_with(".rs.jinja") {
                if let Err(e) = syn::parse_file(&out) {
                    panic!("{template} with {spec} is not Rust: {e}\n{out}");
                }
            } else if template.ends_with(".json.jinja") {
                let folder: Value = serde_json::from_str(&out)
                    .unwrap_or_else(|e| panic!("{template} with {spec} is not JSON: {e}\n{out}"));
                assert_eq!(folder["name"], resource.plural.as_str());
            } else if template.contains("_up.sql") {
                assert!(
                    out.contains(&format!("CREATE TABLE {} (", resource.plural)),
                    "{out}"
                );
                for f in &fields {
                    assert!(
                        out.contains(&format!("\n  {} ", f.name)),
                        "{} in {out}",
                        f.name
                    );
                }
                assert!(!out.contains(",\n)"), "a trailing comma in {out}");
            } else if template.ends_with(".proto.jinja") {
                let dir = tempfile::tempdir().unwrap();
                let file = format!("{name}/{name}.proto");
                std::fs::create_dir_all(dir.path().join(name)).unwrap();
                std::fs::write(dir.path().join(&file), &out).unwrap();
                let set = protox::compile([&file], [dir.path()])
                    .unwrap_or_else(|e| panic!("{template} with {spec}: {e:?}\n{out}"));
                let proto = &set.file[0];
                assert_eq!(proto.package(), name);
                let message = &proto.message_type[0];
                for f in &fields {
                    let field = message.field.iter().find(|x| x.name() == f.name);
                    assert!(field.is_some(), "{} in {out}", f.name);
                }
                assert_eq!(proto.service[0].method.len(), 5, "{out}");
            }
        }
        let block = crate::schema::table_block(&resource.plural, ctx.owned, &ctx.fields);
        for f in &fields {
            assert!(
                block.contains(&format!("        {} -> ", f.name)),
                "{block}"
            );
        }
    }

    #[test]
    fn every_template_renders_for_edge_case_field_sets() {
        let all = patterns()
            .iter()
            .map(|p| format!("p_{0}:string:regex={0}", p.name))
            .collect::<Vec<_>>()
            .join(",");
        for (name, plural, spec, access) in [
            (
                "widget",
                None,
                "name:string:min=1:max=64,code:string:unique:max=32,body:text:optional,\
                 qty:int:min=0:max=1000,big:bigint:unique,done:bool,price:decimal:optional,\
                 due:datetime,color:enum(red|green|dark_blue),phone:string:regex=phone:optional,\
                 rank:bigint:min=-5:max=5000000000,level:enum(low|high):optional",
                Access::Owner,
            ),
            // Every field optional, every type.
            (
                "loose_end",
                None,
                "a:string:optional,b:text:optional,c:int:optional,d:bigint:optional,e:bool:optional,\
                 f:decimal:optional,g:datetime:optional,h:enum(x1|y_2):optional",
                Access::Admin,
            ),
            // One field, the smallest resource.
            ("flag", None, "enabled:bool", Access::User),
            // Names that hold keywords, the longest field name, ranges at the types' ends.
            (
                "order_item",
                Some("order_items"),
                "self_link:string:unique:max=768,async_job:text:max=16383,type_code:int:min=-2147483648:max=2147483647,\
                 abcdefghijklmnopqrstuvwxyz_abcde:bigint:min=-9223372036854775808:max=9223372036854775807",
                Access::Owner,
            ),
            // Every named pattern, an irregular plural.
            ("sheep", Some("sheep"), &all, Access::User),
        ] {
            render_all(name, plural, spec, access);
        }
    }

    #[test]
    fn the_validators_patterns_are_the_ones_stated_here() {
        let validator = include_str!("../../../src/meta/validator.rs");
        for (name, pattern) in [
            ("DECIMAL_PATTERN", DECIMAL_PATTERN),
            ("TIMESTAMP_PATTERN", TIMESTAMP_PATTERN),
            ("TIMESTAMP_MILLIS_PATTERN", TIMESTAMP_MILLIS_PATTERN),
        ] {
            let line = format!("pub const {name}: &str = r\"{pattern}\";");
            assert!(
                validator.contains(&line),
                "{name} differs from src/meta/validator.rs"
            );
        }
    }

    #[test]
    fn a_grpc_plan_fits_the_project_and_names_a_clashing_proto() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let request = ResourceRequest {
            name: "gadget".into(),
            plural: None,
            fields: "label:string:max=20,kind:enum(a|b):optional".into(),
            access: Access::Owner,
            grpc: true,
            mongo: false,
            command: "go_example generate resource gadget --grpc".into(),
            version: Some("2026-12-07-000000".into()),
        };
        let templates = Templates::new(None).unwrap();
        let (plan, _) = plan(&root, &request, &templates).unwrap();
        // Every marker is in the project, no file to create exists.
        plan.check(&root).unwrap();
        let created: Vec<String> = plan
            .creates
            .iter()
            .map(|c| c.path.display().to_string())
            .collect();
        for path in [
            "proto/gadget/gadget.proto",
            "src/controller/grpc/gadget.rs",
            "tests/api/gadgets_grpc.rs",
        ] {
            assert!(created.iter().any(|c| c == path), "{path} in {created:?}");
        }
        for marker in [
            "generate:protos",
            "generate:grpc-names",
            "generate:grpc-health",
            "generate:grpc-services",
        ] {
            assert!(plan.inserts.iter().any(|i| i.marker == marker), "{marker}");
        }
        // `bench` has a proto package of its own (the benchmark's).
        let bench = ResourceRequest {
            name: "bench".into(),
            ..request
        };
        match plan_error(&root, &bench, &templates) {
            GenerateError::Clash(why) => assert!(why.contains("proto package `bench`"), "{why}"),
            other => panic!("{other}"),
        }
    }

    fn plan_error(root: &Path, request: &ResourceRequest, templates: &Templates) -> GenerateError {
        match plan(root, request, templates) {
            Ok(_) => panic!("{} was planned", request.name),
            Err(e) => e,
        }
    }

    #[test]
    fn migration_versions_are_distinct_within_one_second() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
            .unwrap()
            .and_hms_micro_opt(9, 5, 46, 700_000)
            .unwrap();
        assert_eq!(next_version(dir.path(), now), "2026-12-07-090546");
        std::fs::create_dir_all(
            dir.path()
                .join("migrations/mysql/2026-12-07-090546_create_a"),
        )
        .unwrap();
        assert_eq!(next_version(dir.path(), now), "2026-12-07-090547");
    }

    #[test]
    fn the_validators_named_patterns_are_found_with_their_examples() {
        let found = patterns();
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["phone", "password", "username", "verify_code"]);
        assert!(found.iter().all(|p| p.examples.len() == 3));
        assert_eq!(found[0].pattern, r"^1[3-9][0-9]{9}$");
    }
}

//! The names one resource takes through the layers (`widget`, `widgets`, `Widget`), and the
//! names a generated item may not take: Rust and SQL keywords, and what the project holds.

use heck::{ToSnakeCase, ToUpperCamelCase};
use serde::Serialize;

use crate::GenerateError;

/// Rust's keywords, strict and reserved (2024 edition), and names the generated code uses itself.
#[rustfmt::skip]
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield", "union", "macro_rules", "std", "core",
    "alloc",
];

/// MySQL/MariaDB reserved words and SQLite keywords a table or column name would need quoting
/// for (the generated SQL and `diesel print-schema` never quote).
#[rustfmt::skip]
const SQL_KEYWORDS: &[&str] = &[
    "accessible", "add", "all", "alter", "analyze", "and", "as", "asc", "asensitive", "before",
    "between", "bigint", "binary", "blob", "both", "by", "call", "cascade", "case", "change",
    "char", "character", "check", "collate", "column", "condition", "constraint", "continue",
    "convert", "create", "cross", "current_date", "current_role", "current_time",
    "current_timestamp", "current_user", "cursor", "database", "databases", "day_hour",
    "day_microsecond", "day_minute", "day_second", "dec", "decimal", "declare", "default",
    "delayed", "delete", "desc", "describe", "deterministic", "distinct", "distinctrow", "div",
    "double", "drop", "dual", "each", "else", "elseif", "enclosed", "escaped", "except", "exists",
    "exit", "explain", "false", "fetch", "float", "float4", "float8", "for", "force", "foreign",
    "from", "fulltext", "general", "glob", "grant", "group", "having", "high_priority",
    "hour_microsecond", "hour_minute", "hour_second", "if", "ignore", "in", "index", "infile",
    "inner", "inout", "insensitive", "insert", "int", "int1", "int2", "int3", "int4", "int8",
    "integer", "intersect", "interval", "into", "is", "isnull", "iterate", "join", "key", "keys",
    "kill", "leading", "leave", "left", "like", "limit", "linear", "lines", "load", "localtime",
    "localtimestamp", "lock", "long", "longblob", "longtext", "loop", "low_priority",
    "master_ssl_verify_server_cert", "match", "maxvalue", "mediumblob", "mediumint", "mediumtext",
    "middleint", "minute_microsecond", "minute_second", "mod", "modifies", "natural", "not",
    "notnull", "no_write_to_binlog", "null", "numeric", "offset", "on", "optimize", "option",
    "optionally", "or", "order", "out", "outer", "outfile", "over", "partition", "precision",
    "primary", "procedure", "purge", "range", "read", "reads", "read_write", "real", "recursive",
    "references", "regexp", "release", "rename", "repeat", "replace", "require", "resignal",
    "restrict", "return", "returning", "revoke", "right", "rlike", "row", "rows", "schema",
    "schemas", "second_microsecond", "select", "sensitive", "separator", "set", "show", "signal",
    "smallint", "spatial", "specific", "sql", "sqlexception", "sqlstate", "sqlwarning",
    "sql_big_result", "sql_calc_found_rows", "sql_small_result", "ssl", "starting", "stored",
    "straight_join", "table", "terminated", "then", "tinyblob", "tinyint", "tinytext", "to",
    "trailing", "transaction", "trigger", "true", "undo", "union", "unique", "unlock", "unsigned",
    "update", "usage", "use", "using", "utc_date", "utc_time", "utc_timestamp", "values",
    "varbinary", "varchar", "varcharacter", "varying", "virtual", "when", "where", "while",
    "window", "with", "write", "xor", "year_month", "zerofill", "abort", "action", "after",
    "attach", "autoincrement", "begin", "commit", "conflict", "deferrable", "deferred", "detach",
    "end", "exclusive", "fail", "immediate", "indexed", "initially", "instead", "no", "nothing",
    "of", "plan", "pragma", "query", "raise", "reindex", "rollback", "savepoint", "temp",
    "temporary", "vacuum", "view", "without",
];

/// First path segments the app serves (or keeps) itself: a resource may not take them.
#[rustfmt::skip]
pub const RESERVED_ROUTES: &[&str] = &[
    "auth", "debug", "docs", "excel", "grpc", "healthz", "hello", "home", "jenkins", "metrics",
    "openapi.json", "readyz", "sms", "socket", "socket_server", "swagger-ui", "users", "static",
    "assets", "api",
];

/// Whether `name` is a keyword of Rust or SQL.
pub fn is_keyword(name: &str) -> bool {
    RUST_KEYWORDS.contains(&name) || SQL_KEYWORDS.contains(&name)
}

/// Checks an identifier a generated item takes: snake case ASCII, starting with a letter, at most
/// `max` characters, no keyword.
///
/// # Errors
/// [`GenerateError::Invalid`] naming `what` and the rule broken.
pub fn check_identifier(what: &str, name: &str, max: usize) -> Result<(), GenerateError> {
    let shaped = name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__");
    if !shaped {
        return Err(GenerateError::Invalid(format!(
            "{what} `{name}`: use snake_case ASCII (a-z, 0-9, single `_`), starting with a letter, at most {max} characters"
        )));
    }
    if is_keyword(name) {
        return Err(GenerateError::Invalid(format!(
            "{what} `{name}` is a Rust or SQL keyword: choose another name"
        )));
    }
    Ok(())
}

/// The names of one resource.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceNames {
    /// `widget`: the module files (`model/widget.rs`).
    pub name: String,
    /// `widgets`: the table, the route (`/widgets`) and the test file.
    pub plural: String,
    /// `Widget`: the types (`WidgetService`).
    pub type_name: String,
    /// `Widgets`.
    pub type_plural: String,
    /// `widgets`: [`Self::type_plural`] in snake case (the gRPC list method is
    /// `list_<plural_fn>`; `sheep_list` where the plural is the name).
    pub plural_fn: String,
    /// `widget` in prose (`_` as spaces).
    pub title: String,
    /// `widgets` in prose.
    pub title_plural: String,
}

impl ResourceNames {
    /// The names of `name`, with `plural` or English's usual plural.
    ///
    /// # Errors
    /// Either name is not a usable identifier.
    pub fn new(name: &str, plural: Option<&str>) -> Result<Self, GenerateError> {
        // Table names end up in key names (`uk_<table>_<column>`, 64 characters in MySQL).
        check_identifier("resource name", name, 24)?;
        let plural = plural.map_or_else(|| pluralize(name), str::to_owned);
        check_identifier("plural", &plural, 24)?;
        if RESERVED_ROUTES.contains(&plural.as_str()) || RESERVED_ROUTES.contains(&name) {
            return Err(GenerateError::Clash(format!(
                "`/{plural}`: the app serves or reserves this route itself ({})",
                RESERVED_ROUTES.join(", ")
            )));
        }
        let type_name = name.to_upper_camel_case();
        let mut type_plural = plural.to_upper_camel_case();
        if type_plural == type_name {
            // `sheep`: the list's types still need a name of their own.
            type_plural.push_str("List");
        }
        Ok(Self {
            plural_fn: type_plural.to_snake_case(),
            title: name.replace('_', " "),
            title_plural: plural.replace('_', " "),
            name: name.to_owned(),
            plural,
            type_name,
            type_plural,
        })
    }
}

/// English's regular plural of a snake_case name (its last word): `box` → `boxes`, `city` →
/// `cities`, `widget` → `widgets`. Irregular ones take `--plural`.
pub fn pluralize(name: &str) -> String {
    let vowel = |c: char| "aeiou".contains(c);
    if let Some(stem) = name.strip_suffix('y')
        && !stem.ends_with(vowel)
        && !stem.is_empty()
    {
        return format!("{stem}ies");
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| name.ends_with(end))
    {
        return format!("{name}es");
    }
    format!("{name}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_follow_the_usual_rules() {
        for (one, many) in [
            ("widget", "widgets"),
            ("city", "cities"),
            ("day", "days"),
            ("box", "boxes"),
            ("match_batch", "match_batches"),
            ("order_item", "order_items"),
            ("address", "addresses"),
        ] {
            assert_eq!(pluralize(one), many);
        }
    }

    #[test]
    fn keywords_and_odd_shapes_are_refused() {
        for bad in [
            "type", "select", "order", "Widget", "9lives", "a__b", "a-b", "widget_", "",
        ] {
            assert!(ResourceNames::new(bad, None).is_err(), "{bad}");
        }
        assert!(ResourceNames::new("auth", None).is_err());
        assert!(
            ResourceNames::new("user", None).is_err(),
            "/users is reserved"
        );
        let names = ResourceNames::new("sheep", Some("sheep")).unwrap();
        assert_eq!(names.type_plural, "SheepList");
        assert_eq!(names.plural_fn, "sheep_list");
        let names = ResourceNames::new("order_item", None).unwrap();
        assert_eq!(
            (names.type_name.as_str(), names.plural.as_str()),
            ("OrderItem", "order_items")
        );
    }
}

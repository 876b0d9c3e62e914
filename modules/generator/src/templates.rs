//! The templates under `assets/templates/`, built into the binary, each replaceable by a file of
//! the same relative path under an override folder (`--templates DIR`). Rendering is strict: a
//! variable a template names that the context lacks is an error naming both, so a custom
//! template written for another version fails loudly instead of writing broken code.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::GenerateError;

/// The version of the templates' context (docs/generator.md lists its variables). A custom
/// template may check `generator.context_version` to refuse a context it does not know.
pub const CONTEXT_VERSION: u32 = 1;

/// Every built-in template: its path under `assets/templates/` and its text.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "resource/model.rs.jinja",
        include_str!("../../../assets/templates/resource/model.rs.jinja"),
    ),
    (
        "resource/repository.rs.jinja",
        include_str!("../../../assets/templates/resource/repository.rs.jinja"),
    ),
    (
        "resource/service.rs.jinja",
        include_str!("../../../assets/templates/resource/service.rs.jinja"),
    ),
    (
        "resource/controller.rs.jinja",
        include_str!("../../../assets/templates/resource/controller.rs.jinja"),
    ),
    (
        "resource/test.rs.jinja",
        include_str!("../../../assets/templates/resource/test.rs.jinja"),
    ),
    (
        "resource/mysql_up.sql.jinja",
        include_str!("../../../assets/templates/resource/mysql_up.sql.jinja"),
    ),
    (
        "resource/sqlite_up.sql.jinja",
        include_str!("../../../assets/templates/resource/sqlite_up.sql.jinja"),
    ),
    (
        "resource/down.sql.jinja",
        include_str!("../../../assets/templates/resource/down.sql.jinja"),
    ),
    (
        "resource/postman.json.jinja",
        include_str!("../../../assets/templates/resource/postman.json.jinja"),
    ),
    (
        "resource/mongo_repository.rs.jinja",
        include_str!("../../../assets/templates/resource/mongo_repository.rs.jinja"),
    ),
    (
        "resource/grpc.proto.jinja",
        include_str!("../../../assets/templates/resource/grpc.proto.jinja"),
    ),
    (
        "resource/grpc_controller.rs.jinja",
        include_str!("../../../assets/templates/resource/grpc_controller.rs.jinja"),
    ),
    (
        "resource/grpc_test.rs.jinja",
        include_str!("../../../assets/templates/resource/grpc_test.rs.jinja"),
    ),
    (
        "migration/up.sql.jinja",
        include_str!("../../../assets/templates/migration/up.sql.jinja"),
    ),
    (
        "migration/down.sql.jinja",
        include_str!("../../../assets/templates/migration/down.sql.jinja"),
    ),
    (
        "command/command.rs.jinja",
        include_str!("../../../assets/templates/command/command.rs.jinja"),
    ),
];

/// The templates a generation renders with.
pub struct Templates {
    env: Environment<'static>,
    overridden: Vec<String>,
}

impl Templates {
    /// The built-in templates, with those found under `overrides` (same relative paths) in their
    /// place.
    ///
    /// # Errors
    /// An override cannot be read or does not parse.
    pub fn new(overrides: Option<&Path>) -> Result<Self, GenerateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Generated files are source code: no HTML escaping, and a template's last newline kept.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("rust_str", rust_str);
        env.add_filter("sql_str", sql_str);
        let mut overridden = Vec::new();
        for (name, text) in BUILT_IN {
            let source: String = match overrides.map(|dir| dir.join(name)) {
                Some(path) if path.is_file() => {
                    overridden.push((*name).to_owned());
                    std::fs::read_to_string(&path).map_err(|e| GenerateError::io(path, e))?
                }
                _ => (*text).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|e| template_error(name, &e))?;
        }
        Ok(Self { env, overridden })
    }

    /// The templates an override replaced.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    /// Renders `name` with `context`.
    ///
    /// # Errors
    /// The template names something the context lacks, or fails otherwise.
    pub fn render<C: Serialize>(&self, name: &str, context: &C) -> Result<String, GenerateError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| template_error(name, &e))
    }
}

fn template_error(name: &str, e: &minijinja::Error) -> GenerateError {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        reason.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    GenerateError::Template {
        name: name.to_owned(),
        reason,
    }
}

/// A Rust string literal of `value` (raw when it holds a backslash or a quote).
pub fn rust_str(value: &str) -> String {
    if value.contains('\\') || value.contains('"') {
        let mut hashes = String::from("#");
        while value.contains(&format!("\"{hashes}")) {
            hashes.push('#');
        }
        format!("r{hashes}\"{value}\"{hashes}")
    } else {
        format!("\"{value}\"")
    }
}

/// An SQL string literal of `value`.
pub fn sql_str(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Where the built-in templates live in a checkout (for `--templates` examples and tests).
pub fn built_in_dir(root: &Path) -> PathBuf {
    root.join("assets/templates")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_template_naming_an_unknown_variable_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("migration/up.sql.jinja");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "-- {{ no_such_variable }}\n").unwrap();
        let templates = Templates::new(Some(dir.path())).unwrap();
        assert_eq!(templates.overridden(), ["migration/up.sql.jinja"]);
        let err = templates
            .render("migration/up.sql.jinja", &serde_json::json!({"name": "x"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("migration/up.sql.jinja") && err.contains("undefined"),
            "{err}"
        );
    }

    #[test]
    fn string_literals_are_escaped_for_their_language() {
        assert_eq!(rust_str("abc"), "\"abc\"");
        assert_eq!(rust_str(r"^\d$"), r##"r#"^\d$"#"##);
        assert_eq!(rust_str("say \"#hi\""), "r##\"say \"#hi\"\"##");
        assert_eq!(sql_str("it's"), "'it''s'");
    }
}

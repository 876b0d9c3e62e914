//! `go_example generate command <name>`: a CLI subcommand file (`src/cmd/<name>.rs`) and its
//! registration: the module, the `Command` variant and its call (the original's `cobra add`).

use std::path::{Path, PathBuf};

use heck::{ToKebabCase, ToUpperCamelCase};
use serde_json::json;

use crate::GenerateError;
use crate::names::check_identifier;
use crate::plan::{Create, Insert, Plan};
use crate::templates::{CONTEXT_VERSION, Templates};

/// Subcommands the CLI has (or keeps) itself.
#[rustfmt::skip]
const RESERVED: &[&str] = &[
    "http", "grpc", "socket", "socket_client", "migrate", "version", "probe", "keys", "certs",
    "excel", "users", "generate", "help", "mod", "runner",
];

/// The plan of `generate command`.
///
/// # Errors
/// The name is unusable or taken.
pub fn plan(
    root: &Path,
    name: &str,
    command: &str,
    templates: &Templates,
) -> Result<Plan, GenerateError> {
    check_identifier("command name", name, 32)?;
    if RESERVED.contains(&name) {
        return Err(GenerateError::Clash(format!(
            "`{name}`: the CLI has (or keeps) this subcommand itself"
        )));
    }
    let type_name = name.to_upper_camel_case();
    let context = json!({
        "generator": { "context_version": CONTEXT_VERSION, "command": command },
        "name": name,
        "type_name": type_name,
        "cli_name": name.to_kebab_case(),
    });
    let _ = root;
    Ok(Plan {
        creates: vec![Create {
            path: PathBuf::from(format!("src/cmd/{name}.rs")),
            content: templates.render("command/command.rs.jinja", &context)?,
        }],
        inserts: vec![
            Insert {
                path: "src/cmd/mod.rs".into(),
                marker: "generate:mod".into(),
                lines: vec![format!("pub mod {name};")],
            },
            Insert {
                path: "src/cmd/mod.rs".into(),
                marker: "generate:commands".into(),
                lines: vec![format!("/// {}\n{type_name},", summary(name))],
            },
            Insert {
                path: "src/main.rs".into(),
                marker: "generate:dispatch".into(),
                lines: vec![format!(
                    "Command::{type_name} => cmd::{name}::run(&config, &logger).await,"
                )],
            },
        ],
        rewrites: vec![],
    })
}

/// The subcommand's one-line help until its author writes one.
fn summary(name: &str) -> String {
    format!(
        "Run `{}` (generated: describe it here and in src/cmd/{name}.rs).",
        name.to_kebab_case()
    )
}

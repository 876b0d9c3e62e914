//! `go_example generate migration <name>`: an empty migration pair (up and down) for each
//! dialect, at the same version, for changes a resource's generator does not make.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::GenerateError;
use crate::names::check_identifier;
use crate::plan::{Create, Plan};
use crate::templates::{CONTEXT_VERSION, Templates};

/// The plan of `generate migration`.
///
/// # Errors
/// The name is unusable.
pub fn plan(
    root: &Path,
    name: &str,
    command: &str,
    version: Option<String>,
    templates: &Templates,
) -> Result<Plan, GenerateError> {
    check_identifier("migration name", name, 64)?;
    let version = version
        .unwrap_or_else(|| crate::resource::next_version(root, chrono::Utc::now().naive_utc()));
    let folder = format!("{version}_{name}");
    let mut plan = Plan::default();
    for dialect in ["mysql", "sqlite"] {
        for (file, template) in [
            ("up.sql", "migration/up.sql.jinja"),
            ("down.sql", "migration/down.sql.jinja"),
        ] {
            let context = json!({
                "generator": { "context_version": CONTEXT_VERSION, "command": command },
                "name": name,
                "dialect": dialect,
                "folder": folder,
            });
            plan.creates.push(Create {
                path: PathBuf::from(format!("migrations/{dialect}/{folder}/{file}")),
                content: templates.render(template, &context)?,
            });
        }
    }
    Ok(plan)
}

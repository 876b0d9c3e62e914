//! `go_example generate resource|migration|command`: new code from the templates under
//! `assets/templates/`, written into the project at the current directory without replacing a
//! file (docs/generator.md). Rust files it creates or changes are then formatted with rustfmt, so
//! the result passes `cargo fmt --check` as it stands.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use goex_generator::plan::Plan;
use goex_generator::resource::{Access, ResourceRequest};
use goex_generator::templates::Templates;

/// What `go_example generate` makes.
#[derive(Debug, clap::Subcommand)]
pub enum GenerateCommand {
    /// A resource: model, migrations for MySQL and SQLite, repository, service, controller with
    /// `GET/POST /<plural>` and `GET/PUT/DELETE /<plural>/{id}`, OpenAPI, integration tests, a
    /// Postman folder, and the lines that register them.
    Resource {
        /// Its name, singular snake_case (`order_item`).
        name: String,
        /// `name:type[:constraint]*,...`; types string, text, int, bigint, bool, decimal,
        /// datetime, enum(a|b); constraints unique, optional, min=N, max=N, regex=NAME.
        #[arg(long)]
        fields: String,
        /// The plural (routes, table, test file), when English's usual one is wrong.
        #[arg(long)]
        plural: Option<String>,
        /// Who may change its rows: `user` (any signed-in user), `owner` (an owner_id column:
        /// its owner or an admin) or `admin`. Reads are any signed-in user's.
        #[arg(long, default_value = "owner", value_parser = parse_access)]
        access: Access,
        /// Serve it over gRPC too: `proto/<name>/<name>.proto`, a tonic service as a component
        /// of the module, and its tests (a Rust client and a Python one).
        #[arg(long)]
        grpc: bool,
        /// Store it in MongoDB (`mongodb.*`) instead of the SQL database: documents numbered
        /// like rows, unique indexes instead of migrations.
        #[arg(long)]
        mongo: bool,
        #[command(flatten)]
        common: Common,
    },
    /// An empty migration pair (up and down) for MySQL and SQLite.
    Migration {
        /// Its name, snake_case (`add_widgets_color`).
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// A CLI subcommand: `src/cmd/<name>.rs` and its registration.
    Command {
        /// Its name, snake_case (`purge_sessions` runs as `go_example purge-sessions`).
        name: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Options every generator takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Print what would be created, inserted and rewritten; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// A folder of templates replacing the built-in ones of the same relative path
    /// (`resource/controller.rs.jinja`, ...).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// The project's root (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,
}

/// `word` as a shell reads it back: quoted when it holds anything but plain characters.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-=:,./".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn parse_access(s: &str) -> Result<Access, String> {
    s.parse()
}

/// Runs a generator; returns what it printed.
///
/// # Errors
/// The request is refused (nothing is written then), a write fails, or rustfmt does.
pub fn run(command: &GenerateCommand, line: &str) -> anyhow::Result<String> {
    let common = match command {
        GenerateCommand::Resource { common, .. }
        | GenerateCommand::Migration { common, .. }
        | GenerateCommand::Command { common, .. } => common,
    };
    let root = &common.root;
    if !root.join("src/assembly/mod.rs").is_file() {
        bail!(
            "{} is not a go_example project (no src/assembly/mod.rs): run from its root or pass --root",
            root.display()
        );
    }
    let templates = Templates::new(common.templates.as_deref())?;
    let (plan, next) = match command {
        GenerateCommand::Resource {
            name,
            fields,
            plural,
            access,
            grpc,
            mongo,
            ..
        } => {
            let request = ResourceRequest {
                name: name.clone(),
                plural: plural.clone(),
                fields: fields.clone(),
                access: *access,
                grpc: *grpc,
                mongo: *mongo,
                command: line.to_owned(),
                version: None,
            };
            let (plan, ctx) = goex_generator::resource::plan(root, &request, &templates)?;
            let p = &ctx.names.plural;
            let tests = if *grpc {
                format!("{p}:: {p}_grpc::")
            } else {
                format!("{p}::")
            };
            let stores = if *mongo {
                "MongoDB"
            } else {
                "SQLite and MariaDB"
            };
            let next = format!(
                "next: cargo nextest run --test api {tests} ({stores}), make postman, make contract; \
                 the OpenAPI golden file changes with the new routes: \
                 UPDATE_GOLDEN=1 cargo nextest run --test api golden",
            );
            (plan, next)
        }
        GenerateCommand::Migration { name, .. } => (
            goex_generator::migration::plan(root, name, line, None, &templates)?,
            "next: write both up.sql files (and down.sql), then `make migrate` (MySQL) and \
             `diesel print-schema > src/model/schema.rs` if a table changed"
                .to_owned(),
        ),
        GenerateCommand::Command { name, .. } => (
            goex_generator::command::plan(root, name, line, &templates)?,
            format!("next: cargo run -- {}", name.replace('_', "-")),
        ),
    };
    let mut out = String::new();
    for name in templates.overridden() {
        out.push_str(&format!(
            "template {name} from {}\n",
            common
                .templates
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        ));
    }
    if common.dry_run {
        plan.check(root)?;
        out.push_str(&plan.describe(root));
        out.push_str("dry run: nothing was written\n");
        return Ok(out);
    }
    out.push_str(&plan.describe(root));
    apply(root, &plan)?;
    out.push_str(&next);
    out.push('\n');
    Ok(out)
}

/// Writes `plan`, then formats the Rust files it touched.
fn apply(root: &Path, plan: &Plan) -> anyhow::Result<()> {
    let touched = plan.apply(root)?;
    let rust: Vec<&PathBuf> = touched
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    if rust.is_empty() {
        return Ok(());
    }
    let status = Command::new("rustfmt")
        .current_dir(root)
        .args(["--edition", "2024"])
        .args(&rust)
        .status()
        .context("running rustfmt (rustup component add rustfmt)")?;
    if !status.success() {
        bail!(
            "rustfmt failed on the generated files ({status}): they are written; see its message above"
        );
    }
    Ok(())
}

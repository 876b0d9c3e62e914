//! `go_example generate`: a resource (model, migrations for both dialects, repository, service,
//! controller, tests, Postman folder and the lines that register them), an empty migration pair,
//! or a CLI subcommand, rendered from the templates under `assets/templates/` (docs/generator.md).
//!
//! Nothing is ever overwritten: a [`plan::Plan`] lists the files it creates (each must be absent),
//! the lines it inserts above marker comments (`// generate:<slot>`; an insertion already made is
//! skipped) and the two files it rewrites whole from what they hold (`src/model/schema.rs`, as
//! `diesel print-schema` prints it, and the Postman collection, which gains one folder). The whole
//! plan is checked before the first write, so a refusal changes nothing.

pub mod command;
pub mod fields;
pub mod migration;
pub mod names;
pub mod plan;
pub mod postman;
pub mod resource;
pub mod schema;
pub mod templates;

use std::path::PathBuf;

/// Why a generation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The request itself is unusable (a name, a field spec, a flag).
    #[error("{0}")]
    Invalid(String),
    /// The request clashes with what the project holds.
    #[error("{0}")]
    Clash(String),
    /// A file the plan needs is not as expected (a marker missing, a schema unreadable).
    #[error("{path}: {reason}")]
    Project {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A template did not render.
    #[error("template {name}: {reason}")]
    Template {
        /// The template's path under `assets/templates/`.
        name: String,
        /// minijinja's words.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl GenerateError {
    pub(crate) fn project(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        GenerateError::Project {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GenerateError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Reads a project file as text.
pub(crate) fn read(root: &std::path::Path, path: &str) -> Result<String, GenerateError> {
    let full = root.join(path);
    std::fs::read_to_string(&full).map_err(|e| GenerateError::io(path, e))
}

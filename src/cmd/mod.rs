//! The command line (the original's cobra `cmd/`): one file per subcommand.

pub mod http;
pub mod keys;
pub mod migrate;
pub mod version;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// go_example: one codebase for an HTTP API, a WebSocket service and a gRPC service, wired by DI.
#[derive(Debug, Parser)]
#[command(name = "go_example", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Profile to run: debug | dev | test | prod. Default: $APP_ENV, else debug.
    #[arg(long, global = true, value_name = "PROFILE")]
    pub env: Option<String>,

    /// Folder holding one `<profile>/common.yaml` per profile.
    #[arg(long, global = true, value_name = "DIR", default_value = "configs")]
    pub config_dir: PathBuf,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. `grpc`, `socket`, `keys` and `certs` join here with their features.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP application (routes: /hello, /healthz, /readyz, ...).
    ///
    /// Listens on server.http.addr; SIGINT or SIGTERM stop it gracefully, letting in-flight
    /// requests finish within server.http.shutdown_timeout.
    Http,
    /// Apply pending database migrations of the configured backend and exit.
    Migrate,
    /// Print the version and build information.
    Version,
    /// Manage the JWT signing keys under certs.dir.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `go_example keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new key pair <certs.dir>/<NAME>/ and print the certs lines that rotate to it.
    Generate {
        /// The key's name: letters, digits, - or _ (e.g. a date: 2026-11-24).
        #[arg(long)]
        name: String,
        /// RS512 (default from certs.algorithm), RS256 or EdDSA.
        #[arg(long, value_parser = parse_algorithm)]
        algorithm: Option<goex_jwt::Algorithm>,
    },
}

fn parse_algorithm(s: &str) -> Result<goex_jwt::Algorithm, String> {
    match s {
        "RS512" => Ok(goex_jwt::Algorithm::RS512),
        "RS256" => Ok(goex_jwt::Algorithm::RS256),
        "EdDSA" => Ok(goex_jwt::Algorithm::EdDSA),
        other => Err(format!("{other}: expected RS512, RS256 or EdDSA")),
    }
}

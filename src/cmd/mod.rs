//! The command line (the original's cobra `cmd/`): one file per subcommand.

pub mod certs;
pub mod excel;
pub mod generate;
pub mod grpc;
pub mod http;
pub mod keys;
pub mod migrate;
pub mod probe;
pub mod runner;
pub mod socket;
pub mod socket_client;
pub mod users;
pub mod version;
// generate:mod (`go_example generate` adds its modules above this line)

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use clap::{Parser, Subcommand};

/// go_example: one codebase for an HTTP API, a WebSocket service and a gRPC service, wired by DI.
#[derive(Debug, Parser)]
#[command(name = "go_example", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Profile to run: debug | dev | test | prod. Default: $APP_ENV, else debug.
    #[arg(long, global = true, value_name = "PROFILE")]
    pub env: Option<String>,

    /// Folder holding `base.yaml` (every key) and one `<profile>/common.yaml` overlay per profile.
    #[arg(long, global = true, value_name = "DIR", default_value = "configs")]
    pub config_dir: PathBuf,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP application (routes: /hello, /healthz, /readyz, ...).
    ///
    /// Listens on server.http.addr; SIGINT or SIGTERM stop it gracefully, letting in-flight
    /// requests finish within server.http.shutdown_timeout.
    Http,
    /// Run the gRPC application (hello.HelloService, user.UserService, health, reflection).
    ///
    /// Listens on server.grpc.addr with TLS from server.grpc.tls.dir; every call carries the
    /// user/password metadata or an access token. SIGINT or SIGTERM drain in-flight calls
    /// within server.grpc.shutdown_timeout.
    Grpc,
    /// Run the socket app: WebSocket at /socket_server (echo, JSON, rooms; docs/websocket.md).
    ///
    /// Listens on server.socket.addr; SIGINT or SIGTERM send every client close 1001 and exit.
    Socket,
    /// Connect to the socket app, send standard input line by line, print the replies.
    SocketClient {
        /// The server's host:port (Go's ":30000" is this machine).
        #[arg(long, default_value = ":30000")]
        addr: String,
        /// The path of the socket route.
        #[arg(long, default_value = "/socket_server")]
        path: String,
        /// An access token from POST /auth/login (sent as the `token` query parameter).
        #[arg(long)]
        token: Option<String>,
        /// An Origin header to send (the server checks it against server.socket.allowed_origins).
        #[arg(long)]
        origin: Option<String>,
    },
    /// Apply pending database migrations of the configured backend and exit.
    Migrate,
    /// Print the version and build information.
    Version,
    /// Ask a running app on this machine whether it serves (a container's HEALTHCHECK, a
    /// Kubernetes exec probe): exit 0 when it does, 1 with the reason on standard error.
    ///
    /// http: GET /healthz (--ready: /readyz) on server.http.addr; grpc: grpc.health.v1 Check
    /// on server.grpc.addr, TLS as configured; socket: GET /healthz on server.socket.addr.
    /// Listeners on every interface are asked on loopback. Writes no log.
    Probe {
        /// The app: http, grpc or socket.
        #[arg(value_enum)]
        app: probe::ProbedApp,
        /// http only: ask /readyz (every configured dependency answers) instead of /healthz.
        #[arg(long)]
        ready: bool,
        /// grpc with TLS: the name the server's certificate must carry (certificates made by
        /// `certs generate` carry localhost unless --san replaced the defaults).
        #[arg(long, default_value = "localhost", value_name = "NAME")]
        server_name: String,
        /// Give up after this long: 3s, 500ms.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// Manage the JWT signing keys under certs.dir.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Make TLS certificates for the gRPC app.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Export or import users as Excel workbooks, on the configured database.
    #[command(subcommand)]
    Excel(ExcelCommand),
    /// List users and manage their roles, passwords and logins (the first admin is made here:
    /// `go_example users grant-admin NAME`).
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Generate a resource, a migration pair or a subcommand into this project (docs/generator.md).
    #[command(subcommand)]
    Generate(generate::GenerateCommand),
    // generate:commands (`go_example generate command` adds its subcommands above this line)
}

/// `go_example excel ...` (docs/excel.md).
#[derive(Debug, Subcommand)]
pub enum ExcelCommand {
    /// Write the users (columns 用户Id, 用户名, 性别, 创建时间) to an .xlsx file.
    Export {
        /// The file to write.
        #[arg(long, value_name = "FILE", default_value = "users.xlsx")]
        out: PathBuf,
        /// Only this gender: 0 unknown, 1 male, 2 female.
        #[arg(long, value_parser = clap::value_parser!(i16).range(0..=2))]
        gender: Option<i16>,
    },
    /// Import users from an .xlsx file (用户名 and 性别 required; 用户Id, 密码, 创建时间
    /// optional) and print the report as JSON.
    Import {
        /// The workbook.
        file: PathBuf,
        /// all_or_nothing (default: excel.import_mode) or skip_invalid.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<crate::model::excel::ImportMode>,
        /// skip (default: excel.on_existing) or update.
        #[arg(long, value_parser = parse_on_existing)]
        on_existing: Option<crate::model::excel::OnExisting>,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime_serde::re::humantime::parse_duration(s).map_err(|e| format!("{s}: {e}"))
}

fn parse_mode(s: &str) -> Result<crate::model::excel::ImportMode, String> {
    serde_plain_enum(s, "all_or_nothing or skip_invalid")
}

fn parse_on_existing(s: &str) -> Result<crate::model::excel::OnExisting, String> {
    serde_plain_enum(s, "skip or update")
}

fn serde_plain_enum<T: serde::de::DeserializeOwned>(s: &str, expected: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("{s}: expected {expected}"))
}

/// `go_example certs ...`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a CA (ca.crt, ca.key), a server certificate (server.pem, server.key) and a client
    /// certificate (client.pem, client.key) signed by it.
    Generate {
        /// The folder to write (created if missing; an existing set is not overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A DNS name (`*.` wildcards allowed) or IP address the server certificate covers;
        /// repeat it. Default: www.example.com, *.example.com, localhost, 127.0.0.1, ::1.
        #[arg(long, value_name = "NAME")]
        san: Vec<String>,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Keep a set already in the folder (its ca.crt) and exit 0: an init step that runs
        /// at every start (deploy/compose).
        #[arg(long)]
        if_missing: bool,
        /// Drop the CA's key once it has signed (the folder is the apps' runtime folder,
        /// which must not hold it); the next set needs a new CA.
        #[arg(long)]
        discard_ca_key: bool,
    },
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
        /// Keep a key of that name already under certs.dir and exit 0: an init step that runs
        /// at every start (deploy/compose).
        #[arg(long)]
        if_missing: bool,
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

/// What the commands that use the database start from: the clients (with start-up migrations
/// applied when configured) and the module assembled on them.
///
/// # Errors
/// A client cannot be built or a migration fails.
pub async fn assemble(
    config: &crate::meta::config::AppConfig,
    logger: &slog::Logger,
) -> anyhow::Result<(
    crate::assembly::infra::Infra,
    Arc<crate::assembly::AppModule>,
)> {
    assemble_with(config, logger, |_| {}, None, Box::new(|builder, _| builder)).await
}

/// [`assemble`] for the served apps, which log each migration they apply (the one-shot
/// commands keep their standard output for their answer).
///
/// # Errors
/// As [`assemble`].
pub async fn assemble_logged(
    config: &crate::meta::config::AppConfig,
    logger: &slog::Logger,
) -> anyhow::Result<(
    crate::assembly::infra::Infra,
    Arc<crate::assembly::AppModule>,
)> {
    assemble_logged_customized(config, logger, None, Box::new(|builder, _| builder)).await
}

/// [`assemble_logged`], traced as `traced_as` (a served app, when `tracing.enabled`), with
/// `customize` applied to the module before it is built (tests put components in place of the
/// assembled ones).
///
/// # Errors
/// As [`assemble`].
pub async fn assemble_logged_customized(
    config: &crate::meta::config::AppConfig,
    logger: &slog::Logger,
    traced_as: Option<goex_tracing::Service<'_>>,
    customize: crate::assembly::Customize<'_>,
) -> anyhow::Result<(
    crate::assembly::infra::Infra,
    Arc<crate::assembly::AppModule>,
)> {
    assemble_with(
        config,
        logger,
        |version| {
            slog::info!(logger, "migration applied"; "version" => version);
        },
        traced_as,
        customize,
    )
    .await
}

async fn assemble_with(
    config: &crate::meta::config::AppConfig,
    logger: &slog::Logger,
    applied: impl Fn(&str),
    traced_as: Option<goex_tracing::Service<'_>>,
    customize: crate::assembly::Customize<'_>,
) -> anyhow::Result<(
    crate::assembly::infra::Infra,
    Arc<crate::assembly::AppModule>,
)> {
    let infra = crate::assembly::infra::Infra::build_traced(config, logger, traced_as)
        .await
        .context("building clients")?;
    if config.database.migrate_on_start {
        for version in infra
            .migrate()
            .await
            .context("applying start-up migrations")?
        {
            applied(&version);
        }
    }
    let module = crate::assembly::build_customized(config, &infra, customize);
    Ok((infra, module))
}

/// A service error as a command prints it: the code's words, the public detail, the code.
pub fn describe(e: crate::service::error::ServiceError) -> anyhow::Error {
    let code = e.code();
    let message = match e.public_detail() {
        Some(detail) => format!("{}: {detail}", code.en),
        None => code.en.to_owned(),
    };
    anyhow::Error::new(e).context(format!("{message} ({})", code.code))
}

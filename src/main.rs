//! Parse the command line, load config, set up logging, run the command.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use go_example::cmd::{self, Cli, Command};
use go_example::meta::{APP_NAME, config::AppConfig};
use goex_config::Profile;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("{}", cmd::version::text());
        return ExitCode::SUCCESS;
    }
    // The client needs no configuration: it runs from anywhere.
    if let Command::SocketClient {
        addr,
        path,
        token,
        origin,
    } = &cli.command
    {
        let url = cmd::socket_client::url(addr, path, token.as_deref());
        return match cmd::socket_client::run(&url, origin.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Probe { .. } = &cli.command {
        return probe(&cli);
    }
    // Certificates need no configuration: an init job runs it before any is complete.
    if let Command::Certs(cmd::CertsCommand::Generate {
        out,
        san,
        days,
        if_missing,
        discard_ca_key,
    }) = &cli.command
    {
        let existing = cmd::certs::Existing::keep_if(*if_missing);
        return printed(cmd::certs::generate(
            out,
            san,
            *days,
            existing,
            *discard_ca_key,
        ));
    }
    // Generators change source files only: no configuration, no log.
    if let Command::Generate(command) = &cli.command {
        let line = std::env::args()
            .skip(1)
            .map(|arg| cmd::generate::shell_word(&arg))
            .fold(String::from("go_example"), |line, word| line + " " + &word);
        return printed(cmd::generate::run(command, &line));
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `go_example probe`: the configuration only (no logging: a probe runs every few seconds and
/// its answer is its exit code), a one-thread runtime.
fn probe(cli: &Cli) -> ExitCode {
    let Command::Probe {
        app,
        ready,
        server_name,
        timeout,
    } = &cli.command
    else {
        return ExitCode::FAILURE;
    };
    let asked = cmd::probe::Probe {
        app: *app,
        ready: *ready,
        server_name: server_name.clone(),
        timeout: *timeout,
    };
    let answer = profile(cli)
        .and_then(|profile| Ok(AppConfig::load(&cli.config_dir, profile)?.settings))
        .and_then(|config| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(cmd::probe::run(&config, &asked))
        });
    match answer {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit of a command that needs no configuration: its text on stdout, or its error on
/// stderr.
fn printed(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn profile(cli: &Cli) -> anyhow::Result<Profile> {
    Ok(match &cli.env {
        Some(name) => name.parse::<Profile>()?,
        None => Profile::from_process_env()?,
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let profile = profile(&cli)?;
    let loaded = AppConfig::load(&cli.config_dir, profile)?;
    let config = loaded.settings;
    let logging = goex_logging::init(&config.log, APP_NAME, profile.as_str())
        .context("setting up logging")?;
    let logger = logging.logger().clone();
    slog::info!(logger, "configuration loaded"; "base" => loaded.base.display().to_string(),
        "file" => loaded.file.display().to_string(),
        "overrides" => loaded.overrides.iter().map(|(var, _)| var.as_str()).collect::<Vec<_>>().join(","));
    install_panic_hook(&logger);

    // Multi-threaded: diesel's migration harness runs under block_in_place. The HTTP workers
    // run their own single-threaded runtimes (actix), so two threads are plenty here.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Http => cmd::http::run(&config, profile, &logger).await,
            Command::Grpc => cmd::grpc::run(&config, profile, &logger).await,
            Command::Socket => cmd::socket::run(&config, profile, &logger).await,
            Command::SocketClient { .. } => Ok(()),
            Command::Migrate => cmd::migrate::run(&config, &logger).await.map(|_| ()),
            Command::Excel(cmd::ExcelCommand::Export { out, gender }) => {
                let filter = go_example::model::user::UserFilter {
                    gender,
                    ..Default::default()
                };
                cmd::excel::export(&config, &logger, &out, filter)
                    .await
                    .map(|_| ())
            }
            Command::Excel(cmd::ExcelCommand::Import {
                file,
                mode,
                on_existing,
            }) => cmd::excel::import(&config, &logger, &file, mode, on_existing).await,
            Command::Users(command) => cmd::users::run(&config, &logger, command).await,
            // generate:dispatch (`go_example generate command` adds its calls above this line)
            Command::Version | Command::Probe { .. } | Command::Certs(_) | Command::Generate(_) => {
                Ok(())
            }
            Command::Keys(cmd::KeysCommand::Generate {
                name,
                algorithm,
                if_missing,
            }) => cmd::keys::generate(
                &config,
                &name,
                algorithm,
                cmd::certs::Existing::keep_if(if_missing),
            )
            .map(|text| print!("{text}")),
        }
    });
    if let Err(e) = &result {
        slog::crit!(logger, "command failed"; "error" => format!("{e:#}"));
    }
    drop(runtime);
    drop(logging);
    result
}

/// Panics are logged through slog (with their location) instead of raw stderr lines.
fn install_panic_hook(logger: &slog::Logger) {
    let logger = logger.clone();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        slog::error!(logger, "panic"; "message" => message, "location" => location);
    }));
}

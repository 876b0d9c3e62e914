//! `go_example socket`: builds the clients and the module, serves the socket app until SIGINT
//! or SIGTERM, closes every connection with 1001, and exits 0 (the original's process died on
//! the first refused upgrade instead).

use std::sync::Arc;

use anyhow::Context;
use goex_config::Profile;
use shaku::HasComponent;
use slog::Logger;

use crate::assembly::{AppModule, infra::Infra};
use crate::cmd::runner::{self, Bound, MainServer, Served};
use crate::meta::config::AppConfig;
use crate::server;
use crate::service::excel::progress::ImportProgressPush;
use crate::service::socket::SocketHub;

/// A built socket application, bound but not yet running.
pub type SocketApplication = runner::Application<Socket>;

/// The socket app's part of the lifecycle: on shutdown it refuses new connections, sends
/// every client close 1001 and waits up to `server.socket.shutdown_timeout` for them to end.
pub struct Socket;

#[async_trait::async_trait]
impl Served for Socket {
    fn logger(base: &Logger) -> Logger {
        // A record made during an upgrade carries its request id (and trace ids when traced).
        base.new(goex_logging::request::kv())
    }

    fn traced_as(names: &goex_tracing::ServiceNames) -> Option<&str> {
        Some(&names.socket)
    }

    /// Refuses a socket section unusable for this profile (an empty
    /// `server.socket.allowed_origins` in prod).
    fn check(config: &AppConfig, profile: Profile, _logger: &Logger) -> anyhow::Result<()> {
        config.server.socket.check_for_socket_app(profile)?;
        Ok(())
    }

    async fn bind(
        config: &AppConfig,
        _profile: Profile,
        infra: &Infra,
        module: &Arc<AppModule>,
        logger: &Logger,
    ) -> anyhow::Result<Bound<Self>> {
        let (listener, bound) = runner::bind(&config.server.socket.addr, "server.socket.addr")?;
        let server = server::socket::serve(
            listener,
            config,
            module.clone(),
            logger,
            infra.metrics.clone(),
            infra.tracing.clone(),
        )
        .context("starting the socket server")?;
        slog::info!(logger, "socket server listening";
            "addr" => format!("{}:{}", bound.ip(), bound.port()), "path" => crate::controller::socket::SOCKET_PATH);
        let side = match &infra.metrics {
            Some(metrics) => {
                runner::start_metrics(&config.metrics.socket_addr, metrics.clone(), logger)?
            }
            None => None,
        };
        // Import progress to the users' connections (docs/excel.md), until the server stops.
        let progress: Arc<dyn ImportProgressPush> = module.resolve();
        let hub: Arc<dyn SocketHub> = module.resolve();
        let closing = hub.clone();
        Ok(Bound {
            server: MainServer::Actix(server),
            addr: bound,
            registration: crate::repository::registration::App::Socket,
            side: side.into_iter().collect(),
            background: vec![
                Box::pin(async move { progress.run().await }),
                // Room messages to and from the other instances (with Redis).
                Box::pin({
                    let hub = hub.clone();
                    async move { hub.relay().await }
                }),
            ],
            draining: Box::new(move |logger| {
                slog::info!(logger, "shutdown requested; closing connections (1001)";
                    "open" => closing.open_connections());
                closing.shut_down();
            }),
            exited: Box::new(move |logger| {
                slog::info!(logger, "socket server exited"; "open" => hub.open_connections());
            }),
            app: Socket,
        })
    }
}

/// Runs the `socket` command to completion.
///
/// # Errors
/// Start-up or the server failed.
pub async fn run(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
    runner::run::<Socket>(config, profile, logger).await
}

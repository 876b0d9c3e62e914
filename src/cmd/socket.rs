//! `go_example socket`: builds the clients and the module, serves the socket app until SIGINT
//! or SIGTERM, closes every connection with 1001, and exits 0 (the original's process died on
//! the first refused upgrade instead).

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use anyhow::Context;
use goex_config::Profile;
use shaku::HasComponent;
use slog::Logger;

use crate::assembly::{AppModule, infra::Infra};
use crate::cmd::http::shutdown_signal;
use crate::meta::config::{AppConfig, parse_addr};
use crate::repository::registration::{App, ServiceRegistry};
use crate::server;
use crate::service::socket::SocketHub;

/// A built socket application, bound but not yet running.
pub struct SocketApplication {
    server: Server,
    port: u16,
    metrics: Option<(Server, u16)>,
    module: Arc<AppModule>,
    infra: Infra,
    logger: Logger,
    progress_every: std::time::Duration,
    stale_after: std::time::Duration,
    /// The bound address, for the registration made when serving.
    bound: std::net::SocketAddr,
}

impl SocketApplication {
    /// Builds clients and the module and binds `server.socket.addr` (port 0 picks a free
    /// port).
    ///
    /// # Errors
    /// The socket section is unusable for this profile (an empty
    /// `server.socket.allowed_origins` in prod), a client cannot be built or the address
    /// cannot be bound.
    pub async fn build(
        config: &AppConfig,
        profile: Profile,
        logger: &Logger,
    ) -> anyhow::Result<Self> {
        config.server.socket.check_for_socket_app(profile)?;
        let (infra, module) = crate::cmd::assemble(config, logger).await?;
        let addr = parse_addr(&config.server.socket.addr).map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("binding server.socket.addr {addr}"))?;
        let bound = listener.local_addr()?;
        let port = bound.port();
        let server = server::socket::serve(
            listener,
            config,
            module.clone(),
            logger,
            infra.metrics.clone(),
        )
        .context("starting the socket server")?;
        slog::info!(logger, "socket server listening";
            "addr" => format!("{}:{port}", addr.ip()), "path" => crate::controller::socket::SOCKET_PATH);
        let metrics = match &infra.metrics {
            Some(metrics) => crate::cmd::http::start_metrics(
                &config.metrics.socket_addr,
                metrics.clone(),
                logger,
            )?,
            None => None,
        };
        Ok(Self {
            server,
            port,
            metrics,
            module,
            infra,
            logger: logger.clone(),
            progress_every: config.excel.progress_poll_interval,
            stale_after: crate::service::excel::jobs::stale_after(config.excel.import_timeout),
            bound,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound metrics port (`metrics.socket_addr`), when metrics are on.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, p)| *p)
    }

    /// The built module.
    pub fn module(&self) -> Arc<AppModule> {
        self.module.clone()
    }

    /// Serves until `shutdown` completes; then refuses new connections, sends every client
    /// close 1001, waits up to `server.socket.shutdown_timeout` for the connections to end,
    /// and closes the pools.
    ///
    /// # Errors
    /// The server failed while running.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let hub: Arc<dyn SocketHub> = self.module.resolve();
        let metrics_handle = self.metrics.as_ref().map(|(s, _)| s.handle());
        if let Some((metrics, _)) = self.metrics {
            tokio::spawn(metrics);
        }
        // Import progress to the users' connections (docs/excel.md), until the server stops.
        let pusher = tokio::spawn(crate::service::excel::progress::push_progress(
            hub.clone(),
            self.module.resolve(),
            self.progress_every,
            self.stale_after,
            self.logger.clone(),
        ));
        let registry: &dyn ServiceRegistry = self.module.resolve_ref();
        let registered = registry.register(App::Socket, self.bound)?;
        let mut server = tokio::spawn(self.server);
        let result = tokio::select! {
            r = &mut server => r,
            () = shutdown => {
                if let Some(registered) = registered {
                    registered.stop().await;
                }
                slog::info!(self.logger, "shutdown requested; closing connections (1001)";
                    "open" => hub.open_connections());
                hub.shut_down();
                handle.stop(true).await;
                if let Some(h) = &metrics_handle {
                    h.stop(false).await;
                }
                server.await
            }
        };
        pusher.abort();
        self.infra.close().await;
        slog::info!(self.logger, "socket server exited"; "open" => hub.open_connections());
        result.context("server task")?.context("server")?;
        Ok(())
    }
}

/// Runs the `socket` command to completion.
///
/// # Errors
/// Start-up or the server failed.
pub async fn run(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
    let app = SocketApplication::build(config, profile, logger).await?;
    server::memory::after_start(config, logger);
    app.run_until(shutdown_signal()).await
}

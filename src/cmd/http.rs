//! `go_example http`: builds the clients, the module and the HTTP server, serves until SIGINT or
//! SIGTERM, drains in-flight requests, closes the pools.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use goex_config::Profile;
use shaku::HasComponent;
use slog::Logger;

use crate::assembly::{self, AppModule, infra::Infra};
use crate::meta::config::{AppConfig, parse_addr};
use crate::repository::registration::{App, ServiceRegistry};
use crate::server;

/// A built HTTP application, bound but not yet running (zero2prod's `Application`).
pub struct Application {
    server: Server,
    port: u16,
    module: Arc<AppModule>,
    pprof: Option<(Server, u16)>,
    metrics: Option<(Server, u16)>,
    infra: Infra,
    logger: Logger,
    /// The bound address, for the registration made when serving.
    bound: std::net::SocketAddr,
}

impl Application {
    /// Builds clients, runs start-up migrations if configured, assembles the module and binds
    /// the listeners (port 0 picks a free port; see [`Application::port`]).
    ///
    /// # Errors
    /// A client cannot be built, a migration fails, or an address cannot be bound.
    pub async fn build(
        config: &AppConfig,
        profile: Profile,
        logger: &Logger,
    ) -> anyhow::Result<Self> {
        // Every record made while a request is served carries its id (the lifecycle
        // middleware runs each request in `goex_logging::request::scope`).
        let logger = &logger.new(goex_logging::request::kv());
        if config.redis.enabled && !config.redis.has_password() {
            // Not refused: a Redis on a private network without AUTH is a choice some make.
            slog::warn!(logger, "redis.password is empty: Redis accepts anyone who reaches it; set APP__REDIS__PASSWORD";
                "profile" => profile.as_str());
        }
        // The gRPC client's certificates: on the dev profiles, the same development set the
        // grpc app makes (whichever app starts first writes it).
        if config.server.grpc.tls.generate_missing
            && config.grpc_client.tls.enabled
            && !profile.is_releasing()
        {
            goex_certs::ensure(
                std::path::Path::new(&config.grpc_client.tls.dir),
                goex_certs::DEV_DAYS,
            )
            .context("making development certificates (server.grpc.tls.generate_missing)")?;
        }
        if config.grpc_client.tls.enabled {
            crate::cmd::grpc::check_tls_modes(
                std::path::Path::new(&config.grpc_client.tls.dir),
                &[
                    goex_certs::CA_CERT,
                    goex_certs::CLIENT_CERT,
                    goex_certs::CLIENT_KEY,
                ],
                "grpc_client.tls.dir",
                logger,
            )?;
        }
        let infra = Infra::build(config, logger)
            .await
            .context("building clients")?;
        if config.database.migrate_on_start {
            let applied = infra
                .migrate()
                .await
                .context("applying start-up migrations")?;
            for version in applied {
                slog::info!(logger, "migration applied"; "version" => version);
            }
        }
        match infra.database.ping().await {
            Ok(()) => {
                slog::info!(logger, "database reachable"; "nodes" => infra.database.nodes())
            }
            Err(e) => {
                slog::warn!(logger, "database not reachable yet; dependent routes answer 503 until it is";
                "nodes" => infra.database.nodes(), "error" => %e)
            }
        }
        let module = assembly::build(config, &infra);
        ensure_indexes(&module, logger).await;
        let served = module.clone();

        let addr = parse_addr(&config.server.http.addr).map_err(anyhow::Error::msg)?;
        let listener =
            TcpListener::bind(addr).with_context(|| format!("binding server.http.addr {addr}"))?;
        let bound = listener.local_addr()?;
        let port = bound.port();
        let server = server::http::serve(listener, config, served, logger, infra.metrics.clone())
            .context("starting the HTTP server")?;
        slog::info!(logger, "http server listening"; "addr" => format!("{}:{port}", addr.ip()));

        let pprof = if config.pprof.enabled && !profile.is_releasing() {
            start_pprof(config, module.clone(), logger)?
        } else {
            None
        };
        let metrics = match &infra.metrics {
            Some(metrics) => start_metrics(&config.metrics.addr, metrics.clone(), logger)?,
            None => None,
        };
        Ok(Self {
            server,
            port,
            module,
            pprof,
            metrics,
            infra,
            logger: logger.clone(),
            bound,
        })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound profiling port, when the listener is on.
    pub fn pprof_port(&self) -> Option<u16> {
        self.pprof.as_ref().map(|(_, p)| *p)
    }

    /// The bound metrics port, when metrics are on.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, p)| *p)
    }

    /// The built module, to resolve components (tests seed data through the repositories).
    pub fn module(&self) -> Arc<AppModule> {
        self.module.clone()
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// within `server.http.shutdown_timeout`, and closes the pools.
    ///
    /// # Errors
    /// The server failed while running.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let pprof_handle = self.pprof.as_ref().map(|(s, _)| s.handle());
        let metrics_handle = self.metrics.as_ref().map(|(s, _)| s.handle());
        if let Some((metrics, _)) = self.metrics {
            tokio::spawn(metrics);
        }
        if let Some((pprof, _)) = self.pprof {
            tokio::spawn(pprof);
        }
        let registry: &dyn ServiceRegistry = self.module.resolve_ref();
        let registered = registry.register(App::Http, self.bound)?;
        let mut server = tokio::spawn(self.server);
        let result = tokio::select! {
            r = &mut server => r,
            () = shutdown => {
                slog::info!(self.logger, "shutdown requested; draining in-flight requests");
                if let Some(registered) = registered {
                    registered.stop().await;
                }
                if let Some(h) = &pprof_handle {
                    h.stop(false).await;
                }
                handle.stop(true).await;
                // Scraped until the last request drained, then stopped.
                if let Some(h) = &metrics_handle {
                    h.stop(false).await;
                }
                server.await
            }
        };
        self.infra.close().await;
        slog::info!(self.logger, "server exited");
        result.context("server task")?.context("server")?;
        Ok(())
    }
}

/// Creates the MongoDB indexes. A MongoDB that is down is logged, not fatal: the documents
/// answer 503 until it is back, and the next start creates the indexes.
async fn ensure_indexes(module: &AppModule, logger: &Logger) {
    use crate::repository::mongodb::user::UserDocumentRepository;
    let documents: &dyn UserDocumentRepository = module.resolve_ref();
    if documents.enabled() {
        match documents.ensure_indexes().await {
            Ok(()) => slog::info!(logger, "mongodb indexes ensured"),
            Err(e) => slog::warn!(logger, "mongodb indexes not created yet"; "error" => %e),
        }
    }
}

/// Binds a side listener (profiling, metrics) on `addr`. A port that is taken is logged and
/// skipped, as the original did for pprof: a side listener is a convenience and must not keep
/// the application from starting.
fn bind_side_listener(
    addr: &str,
    name: &str,
    logger: &Logger,
) -> anyhow::Result<Option<(TcpListener, u16)>> {
    let addr = parse_addr(addr).map_err(anyhow::Error::msg)?;
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            slog::warn!(logger, "side listener not started";
                "listener" => name, "addr" => addr.to_string(), "error" => %e);
            return Ok(None);
        }
    };
    let port = listener.local_addr()?.port();
    slog::info!(logger, "side listener"; "listener" => name, "addr" => format!("{}:{port}", addr.ip()));
    Ok(Some((listener, port)))
}

/// The profiling listener, when its port can be had.
fn start_pprof(
    config: &AppConfig,
    module: Arc<AppModule>,
    logger: &Logger,
) -> anyhow::Result<Option<(Server, u16)>> {
    let Some((listener, port)) = bind_side_listener(&config.pprof.addr, "profiling", logger)?
    else {
        return Ok(None);
    };
    Ok(Some((server::pprof::serve(listener, module)?, port)))
}

/// The metrics listener, when its port can be had: the application serves without its metrics
/// listener rather than not at all.
pub(crate) fn start_metrics(
    addr: &str,
    metrics: goex_metrics::Metrics,
    logger: &Logger,
) -> anyhow::Result<Option<(Server, u16)>> {
    let Some((listener, port)) = bind_side_listener(addr, "metrics", logger)? else {
        return Ok(None);
    };
    Ok(Some((server::metrics::serve(listener, metrics)?, port)))
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can still be killed; never stop spuriously.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Runs the `http` command to completion.
///
/// # Errors
/// Start-up or the server failed.
pub async fn run(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
    let app = Application::build(config, profile, logger).await?;
    server::memory::after_start(config, logger);
    app.run_until(shutdown_signal()).await
}

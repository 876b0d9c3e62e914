//! `go_example http`: builds the clients, the module and the HTTP server, serves until SIGINT or
//! SIGTERM, drains in-flight requests, closes the pools.

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::Context;
use goex_config::Profile;
use slog::Logger;

use crate::assembly::{AppModule, infra::Infra};
use crate::cmd::runner::{self, Bound, MainServer, Served};
use crate::meta::config::AppConfig;
use crate::server;
use crate::service::hello::HelloService;

/// A built HTTP application, bound but not yet running.
pub type Application = runner::Application<Http>;

/// The HTTP app's part of the lifecycle.
pub struct Http {
    handle: ServerHandle,
}

impl Application {
    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.app().handle.clone()
    }
}

#[async_trait::async_trait]
impl Served for Http {
    fn logger(base: &Logger) -> Logger {
        // Every record made while a request is served carries its id (the lifecycle
        // middleware runs each request in `goex_logging::request::scope`).
        base.new(goex_logging::request::kv())
    }

    fn traced_as(names: &goex_tracing::ServiceNames) -> Option<&str> {
        Some(&names.http)
    }

    fn check(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
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
        Ok(())
    }

    async fn bind(
        config: &AppConfig,
        profile: Profile,
        infra: &Infra,
        module: &Arc<AppModule>,
        logger: &Logger,
    ) -> anyhow::Result<Bound<Self>> {
        match infra.database.ping().await {
            Ok(()) => {
                slog::info!(logger, "database reachable"; "nodes" => infra.database.nodes())
            }
            Err(e) => {
                slog::warn!(logger, "database not reachable yet; dependent routes answer 503 until it is";
                "nodes" => infra.database.nodes(), "error" => %e)
            }
        }
        ensure_indexes(module, logger).await;
        let (listener, bound) = runner::bind(&config.server.http.addr, "server.http.addr")?;
        let server = server::http::serve(
            listener,
            config,
            module.clone(),
            logger,
            infra.metrics.clone(),
            infra.tracing.clone(),
        )
        .context("starting the HTTP server")?;
        slog::info!(logger, "http server listening"; "addr" => format!("{}:{}", bound.ip(), bound.port()));
        let mut side = Vec::new();
        if config.pprof.enabled && !profile.is_releasing() {
            side.extend(runner::start_pprof(config, module.clone(), logger)?);
        }
        if let Some(metrics) = &infra.metrics {
            side.extend(runner::start_metrics(
                &config.metrics.addr,
                metrics.clone(),
                logger,
            )?);
        }
        Ok(Bound {
            app: Http {
                handle: server.handle(),
            },
            server: MainServer::Actix(server),
            addr: bound,
            registration: crate::repository::registration::App::Http,
            side,
            background: Vec::new(),
            draining: Box::new(|logger| {
                slog::info!(logger, "shutdown requested; draining in-flight requests");
            }),
            exited: Box::new(|logger| slog::info!(logger, "server exited")),
        })
    }
}

/// Creates the MongoDB indexes of the documents the hello service reads. A MongoDB that is
/// down is logged, not fatal: the documents answer 503 until it is back, and the next start
/// creates the indexes.
async fn ensure_indexes(module: &AppModule, logger: &Logger) {
    let hello: &dyn HelloService = shaku::HasComponent::resolve_ref(module);
    match hello.ensure_document_indexes().await {
        Ok(false) => {}
        Ok(true) => slog::info!(logger, "mongodb indexes ensured"),
        Err(e) => slog::warn!(logger, "mongodb indexes not created yet";
            "error" => format!("{:#}", anyhow::Error::new(e))),
    }
}

/// Runs the `http` command to completion.
///
/// # Errors
/// Start-up or the server failed.
pub async fn run(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
    runner::run::<Http>(config, profile, logger).await
}

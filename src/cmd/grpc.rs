//! `go_example grpc`: builds the clients and the module, serves the gRPC app until SIGINT or
//! SIGTERM, drains in-flight calls, closes the pools.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use futures_util::future::BoxFuture;
use goex_config::Profile;
use slog::Logger;

use crate::assembly::{AppModule, infra::Infra};
use crate::cmd::runner::{self, Bound, MainServer, Served};
use crate::meta::config::{AppConfig, parse_addr};
use crate::server;

/// A built gRPC application, bound but not yet serving.
pub type GrpcApplication = runner::Application<Grpc>;

/// The gRPC app's part of the lifecycle.
pub struct Grpc {
    served: Arc<AtomicU64>,
}

impl GrpcApplication {
    /// Calls served so far (authenticated calls to the app's services; health checks and
    /// reflection not counted).
    pub fn calls_served(&self) -> Arc<AtomicU64> {
        self.app().served.clone()
    }
}

#[async_trait::async_trait]
impl Served for Grpc {
    fn traced_as(names: &goex_tracing::ServiceNames) -> Option<&str> {
        Some(&names.grpc)
    }

    /// Refuses prod without `server.grpc.auth.password`; makes development certificates when
    /// configured and missing; checks the TLS files' modes.
    fn logger(base: &Logger) -> Logger {
        // A traced call runs as a request (`middleware::grpc_trace`): its records carry its
        // request and trace ids.
        base.new(goex_logging::request::kv())
    }

    fn check(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
        let grpc = &config.server.grpc;
        if profile.is_releasing()
            && secrecy::ExposeSecret::expose_secret(&grpc.auth.password).is_empty()
        {
            anyhow::bail!(
                "config key `server.grpc.auth.password`: must be set in the prod profile \
                 (APP__SERVER__GRPC__AUTH__PASSWORD)"
            );
        }
        if grpc.tls.enabled
            && grpc.tls.generate_missing
            && !profile.is_releasing()
            && let Some(written) =
                goex_certs::ensure(Path::new(&grpc.tls.dir), goex_certs::DEV_DAYS)
                    .context("making development certificates (server.grpc.tls.generate_missing)")?
        {
            slog::warn!(logger, "development certificates written: clients must trust its ca.crt";
                "dir" => written.dir.display().to_string(), "sans" => written.sans.join(","));
        }
        if grpc.tls.enabled {
            check_tls_modes(
                Path::new(&grpc.tls.dir),
                &[
                    goex_certs::SERVER_CERT,
                    goex_certs::SERVER_KEY,
                    goex_certs::CA_CERT,
                ],
                "server.grpc.tls.dir",
                logger,
            )?;
        }
        Ok(())
    }

    async fn bind(
        config: &AppConfig,
        _profile: Profile,
        infra: &Infra,
        module: &Arc<AppModule>,
        logger: &Logger,
    ) -> anyhow::Result<Bound<Self>> {
        let grpc = &config.server.grpc;
        let addr = parse_addr(&grpc.addr).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding server.grpc.addr {addr}"))?;
        let bound = listener.local_addr()?;
        slog::info!(logger, "grpc server listening"; "addr" => format!("{}:{}", addr.ip(), bound.port()),
            "tls" => grpc.tls.enabled, "client_auth" => ?grpc.tls.client_auth);
        let served = Arc::<AtomicU64>::default();
        let options = server::grpc::ServeOptions {
            debug_routes: config.server.debug_routes,
            tracing: infra.tracing.clone(),
            metrics: infra.metrics.clone(),
        };
        let serve = {
            let (grpc, module, logger, served) =
                (grpc.clone(), module.clone(), logger.clone(), served.clone());
            move |shutdown: BoxFuture<'static, ()>| -> BoxFuture<'static, anyhow::Result<()>> {
                Box::pin(async move {
                    server::grpc::serve(listener, &grpc, options, module, &logger, served, shutdown)
                        .await
                })
            }
        };
        // Its own metrics listener (metrics.grpc_addr): the load shedder's decisions and readings.
        let mut side = Vec::new();
        if let Some(metrics) = &infra.metrics {
            side.extend(runner::start_metrics(
                &config.metrics.grpc_addr,
                metrics.clone(),
                logger,
            )?);
        }
        Ok(Bound {
            server: MainServer::UntilStopped(Box::new(serve)),
            addr: bound,
            registration: crate::repository::registration::App::Grpc {
                tls: grpc.tls.enabled,
            },
            side,
            background: Vec::new(),
            // server::grpc::serve logs the drain itself.
            draining: Box::new(|_| {}),
            exited: Box::new(|logger| slog::info!(logger, "grpc server exited")),
            app: Grpc { served },
        })
    }
}

/// Runs the `grpc` command to completion.
///
/// # Errors
/// Start-up or the server failed.
pub async fn run(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
    runner::run::<Grpc>(config, profile, logger).await
}

/// Refuses a private key in `dir` its group or others may read, and a certificate they may
/// write (`goex_certs::check_modes`, at every start); warns when the CA's key sits there.
///
/// # Errors
/// The first file refused, named with `key` (the config key of the folder).
pub fn check_tls_modes(
    dir: &Path,
    files: &[&str],
    key: &str,
    logger: &Logger,
) -> anyhow::Result<()> {
    if let Some(ca_key) =
        goex_certs::check_modes(dir, files).with_context(|| format!("config key `{key}`"))?
    {
        slog::warn!(logger, "the CA's private key is in a TLS folder the app reads: move it offline (whoever reads it can issue certificates both sides trust)";
            "file" => ca_key.display().to_string(), "key" => key);
    }
    Ok(())
}

//! `go_example grpc`: builds the clients and the module, serves the gRPC app until SIGINT or
//! SIGTERM, drains in-flight calls, closes the pools.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use goex_config::Profile;
use shaku::HasComponent;
use slog::Logger;

use crate::assembly::{AppModule, infra::Infra};
use crate::cmd::http::shutdown_signal;
use crate::meta::config::{AppConfig, parse_addr};
use crate::repository::registration::{App, ServiceRegistry};
use crate::server;

/// A built gRPC application, bound but not yet serving.
pub struct GrpcApplication {
    listener: tokio::net::TcpListener,
    port: u16,
    module: Arc<AppModule>,
    infra: Infra,
    config: AppConfig,
    logger: Logger,
    served: Arc<std::sync::atomic::AtomicU64>,
}

impl GrpcApplication {
    /// Builds clients and the module, makes development certificates when configured and
    /// missing, and binds `server.grpc.addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// A client cannot be built, certificates cannot be made, or the address cannot be bound.
    pub async fn build(
        config: &AppConfig,
        profile: Profile,
        logger: &Logger,
    ) -> anyhow::Result<Self> {
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
        let (infra, module) = crate::cmd::assemble(config, logger).await?;
        let addr = parse_addr(&grpc.addr).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding server.grpc.addr {addr}"))?;
        let port = listener.local_addr()?.port();
        slog::info!(logger, "grpc server listening"; "addr" => format!("{}:{port}", addr.ip()),
            "tls" => grpc.tls.enabled, "client_auth" => ?grpc.tls.client_auth);
        Ok(Self {
            listener,
            port,
            module,
            infra,
            config: config.clone(),
            logger: logger.clone(),
            served: Arc::default(),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Calls served so far (authenticated calls to the app's services; health checks and
    /// reflection not counted).
    pub fn calls_served(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.served.clone()
    }

    /// The built module.
    pub fn module(&self) -> Arc<AppModule> {
        self.module.clone()
    }

    /// Serves until `shutdown` completes, drains in-flight calls within
    /// `server.grpc.shutdown_timeout`, and closes the pools.
    ///
    /// # Errors
    /// The TLS files cannot be read, or the server fails.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let bound = self.listener.local_addr()?;
        let registry: &dyn ServiceRegistry = self.module.resolve_ref();
        let registered = registry.register(
            App::Grpc {
                tls: self.config.server.grpc.tls.enabled,
            },
            bound,
        )?;
        // Out of Consul first, then drain: clients stop picking this instance while its
        // in-flight calls finish.
        let shutdown = async move {
            shutdown.await;
            if let Some(registered) = registered {
                registered.stop().await;
            }
        };
        let result = server::grpc::serve(
            self.listener,
            &self.config.server.grpc,
            self.module,
            &self.logger,
            self.served,
            shutdown,
        )
        .await;
        self.infra.close().await;
        slog::info!(self.logger, "grpc server exited");
        result
    }
}

/// Runs the `grpc` command to completion.
///
/// # Errors
/// Start-up or the server failed.
pub async fn run(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()> {
    let app = GrpcApplication::build(config, profile, logger).await?;
    server::memory::after_start(config, logger);
    app.run_until(shutdown_signal()).await
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

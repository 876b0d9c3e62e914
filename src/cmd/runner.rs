//! The one lifecycle of the three served apps (`http`, `grpc`, `socket`), kratos' `app.Run`:
//! check → assemble → bind → register → serve → deregister → drain → close. Each app's command
//! says only what differs ([`Served`]): its start-up checks, its listener and server, its side
//! listeners, the background work it starts through the module, and what it logs.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use anyhow::Context;
use futures_util::future::BoxFuture;
use goex_config::Profile;
use shaku::HasComponent;
use slog::Logger;

use crate::assembly::{AppModule, infra::Infra};
use crate::meta::config::{AppConfig, parse_addr};
use crate::repository::registration::{App, ServiceRegistry};
use crate::server;

/// What an app tells the runner: the parts of its lifecycle that differ from the others'.
#[async_trait::async_trait]
pub trait Served: Sized + Send + 'static {
    /// The logger the app runs with (the HTTP app adds the request id to every record).
    fn logger(base: &Logger) -> Logger {
        base.clone()
    }

    /// The app's `service.name` among `tracing.service_name`, when it makes spans (an app
    /// that makes none stays untraced).
    fn traced_as(_names: &goex_tracing::ServiceNames) -> Option<&str> {
        None
    }

    /// Checks made before anything is built (config for this profile, certificates).
    ///
    /// # Errors
    /// The app cannot start with this config.
    fn check(config: &AppConfig, profile: Profile, logger: &Logger) -> anyhow::Result<()>;

    /// Binds the listener and builds the server over the built module, with its side
    /// listeners and background work.
    ///
    /// # Errors
    /// An address cannot be bound or the server cannot be built.
    async fn bind(
        config: &AppConfig,
        profile: Profile,
        infra: &Infra,
        module: &Arc<AppModule>,
        logger: &Logger,
    ) -> anyhow::Result<Bound<Self>>;
}

/// An app's server, bound: what [`Served::bind`] answers.
pub struct Bound<A> {
    /// The main server.
    pub server: MainServer,
    /// Its bound address (registered with Consul).
    pub addr: SocketAddr,
    /// How it registers.
    pub registration: App,
    /// Profiling and metrics listeners.
    pub side: Vec<SideListener>,
    /// Work that runs while the app serves (started with it, stopped when it closes).
    pub background: Vec<BoxFuture<'static, ()>>,
    /// Run once deregistered, before the server drains (a log line, closing connections).
    pub draining: Box<dyn FnOnce(&Logger) + Send>,
    /// Run once everything is closed (the exit log line).
    pub exited: Box<dyn FnOnce(&Logger) + Send>,
    /// The app's own state (a handle, a counter), for its accessors.
    pub app: A,
}

/// The main server of an app.
pub enum MainServer {
    /// An actix-web server (HTTP, socket): stopped through its handle, in-flight requests let
    /// finish within its shutdown timeout.
    Actix(Server),
    /// A server that serves until the future it is given completes, then drains itself
    /// (tonic: `server::grpc::serve`).
    UntilStopped(ServeUntil),
}

/// A server's run: given the future that says when to stop, it serves, drains and ends.
pub type ServeUntil =
    Box<dyn FnOnce(BoxFuture<'static, ()>) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// Which side listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The profiling listener: stopped before the server drains.
    Profiling,
    /// The metrics listener: scraped until the last request drained, then stopped.
    Metrics,
}

/// A side listener (profiling, metrics), bound.
pub struct SideListener {
    server: Server,
    port: u16,
    side: Side,
}

/// A built application, bound but not yet serving (zero2prod's `Application`).
pub struct Application<A> {
    server: MainServer,
    port: u16,
    addr: SocketAddr,
    registration: App,
    side: Vec<SideListener>,
    background: Vec<BoxFuture<'static, ()>>,
    draining: Box<dyn FnOnce(&Logger) + Send>,
    exited: Box<dyn FnOnce(&Logger) + Send>,
    module: Arc<AppModule>,
    infra: Infra,
    logger: Logger,
    app: A,
}

impl<A: Served> Application<A> {
    /// Runs the app's checks, builds the clients (with start-up migrations when configured),
    /// assembles the module, and binds the listeners (port 0 picks a free port; see
    /// [`Application::port`]).
    ///
    /// # Errors
    /// A check fails, a client cannot be built, a migration fails, or an address cannot be
    /// bound.
    pub async fn build(
        config: &AppConfig,
        profile: Profile,
        logger: &Logger,
    ) -> anyhow::Result<Self> {
        Self::build_customized(config, profile, logger, Box::new(|builder, _| builder)).await
    }

    /// [`Application::build`], with `customize` applied to the module before it is built
    /// (tests put a component in place of the assembled one: `assembly::Customize`).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_customized(
        config: &AppConfig,
        profile: Profile,
        logger: &Logger,
        customize: crate::assembly::Customize<'_>,
    ) -> anyhow::Result<Self> {
        let logger = &A::logger(logger);
        A::check(config, profile, logger)?;
        let traced_as =
            A::traced_as(&config.tracing.service_name).map(|name| goex_tracing::Service {
                name,
                version: env!("CARGO_PKG_VERSION"),
                environment: profile.as_str(),
            });
        let (infra, module) =
            crate::cmd::assemble_logged_customized(config, logger, traced_as, customize).await?;
        let bound = A::bind(config, profile, &infra, &module, logger).await?;
        Ok(Self {
            server: bound.server,
            port: bound.addr.port(),
            addr: bound.addr,
            registration: bound.registration,
            side: bound.side,
            background: bound.background,
            draining: bound.draining,
            exited: bound.exited,
            module,
            infra,
            logger: logger.clone(),
            app: bound.app,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound profiling port, when the listener is on.
    pub fn pprof_port(&self) -> Option<u16> {
        self.side_port(Side::Profiling)
    }

    /// The bound metrics port, when metrics are on.
    pub fn metrics_port(&self) -> Option<u16> {
        self.side_port(Side::Metrics)
    }

    fn side_port(&self, side: Side) -> Option<u16> {
        self.side.iter().find(|s| s.side == side).map(|s| s.port)
    }

    /// The built module, to resolve components (tests seed data through the repositories).
    pub fn module(&self) -> Arc<AppModule> {
        self.module.clone()
    }

    /// The app's own state.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// Serves until `shutdown` completes; then deregisters, drains the server, stops the side
    /// listeners and the background work, and closes the pools.
    ///
    /// # Errors
    /// The Consul client cannot be built, or the server failed.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Profiling stops before the server drains; every side listener (metrics, scraped until
        // the last request drained) stops once the server ended, whichever way it ended: drained
        // after the shutdown, stopped through its own handle, or failed (then the shutdown
        // future never completes).
        let mut before_drain = Vec::new();
        let every_side: Vec<_> = self.side.iter().map(|s| s.server.handle()).collect();
        for side in self.side {
            if side.side == Side::Profiling {
                before_drain.push(side.server.handle());
            }
            tokio::spawn(side.server);
        }
        let background: Vec<_> = self.background.into_iter().map(tokio::spawn).collect();
        let registry: &dyn ServiceRegistry = self.module.resolve_ref();
        let registered = registry.register(self.registration, self.addr)?;
        let logger = self.logger.clone();
        let draining = self.draining;
        // Out of Consul first, then drain: clients stop picking this instance while its
        // in-flight work finishes.
        let deregistered = async move {
            shutdown.await;
            if let Some(registered) = registered {
                registered.stop().await;
            }
            draining(&logger);
            for h in &before_drain {
                h.stop(false).await;
            }
        };
        let result = match self.server {
            MainServer::Actix(server) => {
                let handle = server.handle();
                let mut server = tokio::spawn(server);
                let result = tokio::select! {
                    r = &mut server => r,
                    () = deregistered => {
                        handle.stop(true).await;
                        server.await
                    }
                };
                result
                    .context("server task")
                    .and_then(|r| r.context("server"))
            }
            MainServer::UntilStopped(serve) => serve(Box::pin(deregistered)).await,
        };
        for h in &every_side {
            h.stop(false).await;
        }
        for task in background {
            task.abort();
        }
        self.infra.close().await;
        (self.exited)(&self.logger);
        result
    }
}

/// Runs an app to completion: build, release start-up memory
/// (`server.release_startup_memory`), serve until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up or the server failed.
pub async fn run<A: Served>(
    config: &AppConfig,
    profile: Profile,
    logger: &Logger,
) -> anyhow::Result<()> {
    let app = Application::<A>::build(config, profile, logger).await?;
    server::memory::after_start(config, logger);
    app.run_until(shutdown_signal()).await
}

/// Binds `addr` (`key` names its config key in the error), answering the listener and the
/// address it got.
///
/// # Errors
/// The address is not one, or cannot be bound.
pub fn bind(addr: &str, key: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let addr = parse_addr(addr).map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {key} {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
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
///
/// # Errors
/// `pprof.addr` is not an address, or the server cannot be built.
pub fn start_pprof(
    config: &AppConfig,
    module: Arc<AppModule>,
    logger: &Logger,
) -> anyhow::Result<Option<SideListener>> {
    let Some((listener, port)) = bind_side_listener(&config.pprof.addr, "profiling", logger)?
    else {
        return Ok(None);
    };
    Ok(Some(SideListener {
        server: server::pprof::serve(listener, module)?,
        port,
        side: Side::Profiling,
    }))
}

/// The metrics listener on `addr`, when its port can be had: the application serves without
/// its metrics listener rather than not at all.
///
/// # Errors
/// `addr` is not an address, or the server cannot be built.
pub fn start_metrics(
    addr: &str,
    metrics: goex_metrics::Metrics,
    logger: &Logger,
) -> anyhow::Result<Option<SideListener>> {
    let Some((listener, port)) = bind_side_listener(addr, "metrics", logger)? else {
        return Ok(None);
    };
    Ok(Some(SideListener {
        server: server::metrics::serve(listener, metrics)?,
        port,
        side: Side::Metrics,
    }))
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

//! An app's registration in the service registry, Consul (docs/discovery.md): made in the
//! background when the app starts, retried with backoff while the agent refuses or cannot be
//! reached (the server runs regardless), removed when the app stops gracefully. Behind
//! [`ServiceRegistry`], so the servers and commands name no Consul client.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use goex_consul::{Check, ConsulClient, Registration, duration};
use shaku::{Component, Interface};
use slog::Logger;

use crate::meta::config::ConsulConfig;
use crate::repository::error::RepoError;

/// Which app registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// gRPC health over the app's TLS.
    Grpc {
        /// Whether the app serves TLS.
        tls: bool,
    },
    /// `GET /healthz`.
    Http,
    /// `GET /healthz` of the socket app.
    Socket,
}

/// Registers the running app so that clients find it.
pub trait ServiceRegistry: Interface {
    /// Starts registering `app` (bound at `bind`) in the background; `None` when it does not
    /// register (Consul off, or no service name for the app). Call it inside the runtime.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the registry's client could not be built from config.
    fn register(&self, app: App, bind: SocketAddr) -> Result<Option<Registered>, RepoError>;
}

/// [`ServiceRegistry`] over the Consul agent of `consul.*`.
#[derive(Component)]
#[shaku(interface = ServiceRegistry)]
pub struct ConsulServiceRegistry {
    /// The agent's client (built by the assembly's infra when `consul.enabled`), or why there
    /// is none: reported only by an app that registers.
    client: Arc<Result<ConsulClient, String>>,
    config: ConsulConfig,
    logger: Logger,
}

impl ServiceRegistry for ConsulServiceRegistry {
    fn register(&self, app: App, bind: SocketAddr) -> Result<Option<Registered>, RepoError> {
        let Some(registration) = registration(&self.config, app, bind) else {
            return Ok(None);
        };
        let client = self
            .client
            .as_ref()
            .as_ref()
            .map_err(|reason| RepoError::Unavailable {
                dependency: "consul",
                source: reason.clone().into(),
            })?;
        Ok(Some(Registered::start(
            client.clone(),
            registration,
            &self.config,
            &self.logger,
        )))
    }
}

/// A running registration.
pub struct Registered {
    client: ConsulClient,
    id: String,
    /// Set before the first registration request is sent: from then on the agent may know it.
    sent: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    config: ConsulConfig,
    logger: Logger,
}

/// The registration `app` makes for `bind` (the listener's address) under `config`, or `None`
/// when Consul is off or the app has no service name.
pub fn registration(config: &ConsulConfig, app: App, bind: SocketAddr) -> Option<Registration> {
    let name = match app {
        App::Grpc { .. } => &config.services.grpc,
        App::Http => &config.services.http,
        App::Socket => &config.services.socket,
    };
    if !config.enabled || name.trim().is_empty() {
        return None;
    }
    let address = advertised(config, bind.ip());
    let host = match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => address.clone(),
    };
    let (grpc, grpc_use_tls, http, tcp) = match app {
        App::Grpc { tls } => (
            Some(format!("{host}:{}", bind.port())),
            Some(tls),
            None,
            None,
        ),
        App::Http | App::Socket => (
            None,
            None,
            Some(format!("http://{host}:{}/healthz", bind.port())),
            None,
        ),
    };
    Some(Registration {
        id: format!("{name}-{address}-{}", bind.port()),
        name: name.clone(),
        tags: config.tags.clone(),
        address: address.clone(),
        port: bind.port(),
        meta: config.meta.clone(),
        check: Check {
            grpc,
            grpc_use_tls,
            http,
            tcp,
            tls_skip_verify: config.check.tls_skip_verify,
            tls_server_name: matches!(app, App::Grpc { tls: true })
                .then(|| config.check.tls_server_name.trim().to_owned())
                .filter(|name| !name.is_empty()),
            interval: duration(config.check.interval),
            timeout: duration(config.check.timeout),
            deregister_critical_service_after: duration(config.check.deregister_critical_after),
        },
    })
}

/// `consul.address` (an address or a host name), else the bind address when it names one,
/// else the local address of the route to the agent, else (the agent is on this host, so that
/// route is loopback) the local address of the default route: the address other hosts reach
/// this one at. Loopback only when the host has no other.
fn advertised(config: &ConsulConfig, bound: IpAddr) -> String {
    let fixed = config.address.trim();
    if !fixed.is_empty() {
        return fixed.to_owned();
    }
    if !bound.is_unspecified() {
        return bound.to_string();
    }
    let agent = config
        .addr
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let agent = agent.parse::<SocketAddr>().ok();
    // A documentation address (RFC 5737 / 3849): connecting a UDP socket sends nothing, it only
    // picks the route.
    let default_route: [SocketAddr; 2] = [
        SocketAddr::from(([192, 0, 2, 1], 9)),
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 9)),
    ];
    agent
        .into_iter()
        .chain(default_route)
        .filter_map(local_address_towards)
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
        .to_string()
}

fn local_address_towards(target: SocketAddr) -> Option<IpAddr> {
    let local: SocketAddr = if target.is_ipv6() {
        "[::]:0".parse().ok()?
    } else {
        "0.0.0.0:0".parse().ok()?
    };
    let socket = UdpSocket::bind(local).ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

impl Registered {
    /// Starts the task that registers `registration` with `client` and keeps it registered.
    fn start(
        client: ConsulClient,
        registration: Registration,
        config: &ConsulConfig,
        logger: &Logger,
    ) -> Registered {
        let logger = logger.new(
            slog::o!("consul" => config.addr.clone(), "service_id" => registration.id.clone()),
        );
        let sent = Arc::new(AtomicBool::new(false));
        let id = registration.id.clone();
        let task = tokio::spawn({
            let (client, sent, logger) = (client.clone(), sent.clone(), logger.clone());
            let (timeout, initial, max) = (config.timeout, config.retry_initial, config.retry_max);
            let (mut pause, refresh) = (initial, config.refresh_interval);
            async move {
                let mut attempt = 1u32;
                loop {
                    sent.store(true, Ordering::Release);
                    match client.register(&registration, timeout).await {
                        Ok(()) => {
                            slog::info!(logger, "registered with consul"; "service" => &registration.name,
                                "address" => format!("{}:{}", registration.address, registration.port),
                                "attempt" => attempt);
                            // The agent may lose it (restarted without its data, or reaped it
                            // while it was critical): looked after, registered again.
                            loop {
                                tokio::time::sleep(refresh).await;
                                if let Ok(false) = client.knows(&registration.id, timeout).await {
                                    slog::warn!(
                                        logger,
                                        "consul forgot the registration; registering again"
                                    );
                                    break;
                                }
                            }
                            pause = initial;
                            continue;
                        }
                        Err(e) => {
                            slog::warn!(logger, "consul registration failed; retrying";
                                "error" => %e, "attempt" => attempt, "retry_in" => ?pause);
                        }
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(max);
                    attempt += 1;
                }
            }
        });
        Registered {
            client,
            id,
            sent,
            task,
            config: config.clone(),
            logger,
        }
    }

    /// Stops the registration task (waiting for it, so no request of it lands later) and
    /// removes the registration if one was ever sent (an unknown id is fine).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        if !self.sent.load(Ordering::Acquire) {
            return;
        }
        match self.client.deregister(&self.id, self.config.timeout).await {
            Ok(()) => slog::info!(self.logger, "deregistered from consul"),
            Err(goex_consul::ConsulError::Refused { status: 404, .. }) => {}
            Err(e) => slog::warn!(self.logger, "consul deregistration failed"; "error" => %e),
        }
        if !self.config.deregister_grace.is_zero() {
            // Clients learn of the removal through the agent and their next blocking query.
            tokio::time::sleep(self.config.deregister_grace).await;
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConsulConfig {
        let mut c = crate::meta::config::AppConfig::load(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("configs")
                .as_path(),
            goex_config::Profile::Test,
        )
        .unwrap()
        .settings
        .consul;
        c.enabled = true;
        c
    }

    #[test]
    fn a_registry_without_a_client_fails_only_an_app_that_registers() {
        let registry = ConsulServiceRegistry {
            client: Arc::new(Err("consul.*: unreadable CA".to_owned())),
            config: config(),
            logger: Logger::root(slog::Discard, slog::o!()),
        };
        let bind: SocketAddr = "10.1.2.3:50051".parse().unwrap();
        // The http app has no service name by default: nothing to register, nothing to fail.
        assert!(registry.register(App::Http, bind).unwrap().is_none());
        let Some(err) = registry.register(App::Grpc { tls: true }, bind).err() else {
            panic!("registered without a client");
        };
        let RepoError::Unavailable { dependency, source } = err else {
            panic!("{err}");
        };
        assert_eq!(dependency, "consul");
        assert!(source.to_string().contains("unreadable CA"), "{source}");
    }

    #[test]
    fn the_originals_registration_by_default() {
        let bind: SocketAddr = "10.1.2.3:50051".parse().unwrap();
        let r = registration(&config(), App::Grpc { tls: true }, bind).unwrap();
        assert_eq!(r.id, "hello-10.1.2.3-50051");
        assert_eq!((r.name.as_str(), r.port), ("hello", 50051));
        assert_eq!(r.tags, ["my_grpc"]);
        assert_eq!(r.check.grpc.as_deref(), Some("10.1.2.3:50051"));
        assert_eq!(r.check.grpc_use_tls, Some(true));
        assert!(!r.check.tls_skip_verify, "verified unless configured");
        assert_eq!(r.check.tls_server_name.as_deref(), Some("www.example.com"));
        assert_eq!(
            (
                r.check.interval.as_str(),
                r.check.timeout.as_str(),
                r.check.deregister_critical_service_after.as_str()
            ),
            ("10s", "10s", "30s")
        );
        assert!(
            registration(&config(), App::Http, bind).is_none(),
            "http: no name by default"
        );
        let mut off = config();
        off.enabled = false;
        assert!(registration(&off, App::Grpc { tls: true }, bind).is_none());
        let mut fixed = config();
        fixed.address = "192.0.2.7".into();
        let unspecified: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let r = registration(&fixed, App::Grpc { tls: false }, unspecified).unwrap();
        assert_eq!(
            (r.address.as_str(), r.id.as_str()),
            ("192.0.2.7", "hello-192.0.2.7-9090")
        );
    }
}

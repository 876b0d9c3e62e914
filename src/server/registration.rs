//! An app's registration in Consul (docs/discovery.md): made in the background when the app
//! starts, retried with backoff while the agent refuses or cannot be reached (the server runs
//! regardless), removed when the app stops gracefully.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use goex_consul::{Check, ConsulClient, Registration, duration};
use slog::Logger;

use crate::meta::config::ConsulConfig;

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
    /// A TCP connect (the socket app serves no HTTP route but its upgrade).
    Socket,
}

/// A running registration.
pub struct Registered {
    client: ConsulClient,
    id: String,
    done: Arc<AtomicBool>,
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
    let endpoint = SocketAddr::new(address, bind.port());
    let host = match address {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let (grpc, grpc_use_tls, http, tcp) = match app {
        App::Grpc { tls } => (
            Some(format!("{host}:{}", bind.port())),
            Some(tls),
            None,
            None,
        ),
        App::Http => (None, None, Some(format!("http://{endpoint}/healthz")), None),
        App::Socket => (None, None, None, Some(format!("{host}:{}", bind.port()))),
    };
    Some(Registration {
        id: format!("{name}-{address}-{}", bind.port()),
        name: name.clone(),
        tags: config.tags.clone(),
        address: address.to_string(),
        port: bind.port(),
        meta: config.meta.clone(),
        check: Check {
            grpc,
            grpc_use_tls,
            http,
            tcp,
            tls_skip_verify: config.check.tls_skip_verify,
            interval: duration(config.check.interval),
            timeout: duration(config.check.timeout),
            deregister_critical_service_after: duration(config.check.deregister_critical_after),
        },
    })
}

/// `consul.address`, else the bind address when it names one, else the local address of the
/// route to the agent (what the original's `GetLocalIP` meant), else loopback.
fn advertised(config: &ConsulConfig, bound: IpAddr) -> IpAddr {
    if let Ok(ip) = config.address.trim().parse::<IpAddr>() {
        return ip;
    }
    if !bound.is_unspecified() {
        return bound;
    }
    let agent = config
        .addr
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let route = std::net::ToSocketAddrs::to_socket_addrs(&agent)
        .ok()
        .and_then(|mut a| a.next())
        .and_then(|target| {
            let socket = UdpSocket::bind(("0.0.0.0", 0)).ok()?;
            socket.connect(target).ok()?;
            socket.local_addr().ok().map(|a| a.ip())
        });
    route.unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

impl Registered {
    /// Starts registering `app` (bound at `bind`); `None` when it does not register.
    ///
    /// # Errors
    /// The Consul client cannot be built.
    pub fn start(
        config: &ConsulConfig,
        app: App,
        bind: SocketAddr,
        logger: &Logger,
    ) -> anyhow::Result<Option<Registered>> {
        let Some(registration) = registration(config, app, bind) else {
            return Ok(None);
        };
        let client = ConsulClient::new(&config.addr, &config.token, config.timeout)?;
        let logger = logger.new(
            slog::o!("consul" => config.addr.clone(), "service_id" => registration.id.clone()),
        );
        let done = Arc::new(AtomicBool::new(false));
        let id = registration.id.clone();
        let task = tokio::spawn({
            let (client, done, logger) = (client.clone(), done.clone(), logger.clone());
            let (timeout, mut pause, max) =
                (config.timeout, config.retry_initial, config.retry_max);
            async move {
                let mut attempt = 1u32;
                loop {
                    match client.register(&registration, timeout).await {
                        Ok(()) => {
                            done.store(true, Ordering::Release);
                            slog::info!(logger, "registered with consul"; "service" => &registration.name,
                                "address" => format!("{}:{}", registration.address, registration.port),
                                "attempt" => attempt);
                            return;
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
        Ok(Some(Registered {
            client,
            id,
            done,
            task,
            config: config.clone(),
            logger,
        }))
    }

    /// Stops retrying and removes the registration if it was made.
    pub async fn stop(self) {
        self.task.abort();
        if !self.done.load(Ordering::Acquire) {
            return;
        }
        match self.client.deregister(&self.id, self.config.timeout).await {
            Ok(()) => slog::info!(self.logger, "deregistered from consul"),
            Err(e) => slog::warn!(self.logger, "consul deregistration failed"; "error" => %e),
        }
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
    fn the_originals_registration_by_default() {
        let bind: SocketAddr = "10.1.2.3:50051".parse().unwrap();
        let r = registration(&config(), App::Grpc { tls: true }, bind).unwrap();
        assert_eq!(r.id, "hello-10.1.2.3-50051");
        assert_eq!((r.name.as_str(), r.port), ("hello", 50051));
        assert_eq!(r.tags, ["my_grpc"]);
        assert_eq!(r.check.grpc.as_deref(), Some("10.1.2.3:50051"));
        assert_eq!(r.check.grpc_use_tls, Some(true));
        assert!(!r.check.tls_skip_verify, "verified unless configured");
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

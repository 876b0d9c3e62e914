//! `go_example probe http|grpc|socket`: asks a running app on this machine whether it serves,
//! with nothing but the binary (a container's `HEALTHCHECK`, a Kubernetes exec probe: the image
//! has no shell, no curl, no grpc_health_probe). Exit 0 when it does; 1 with one line on standard
//! error when it does not.
//!
//! - `http`: `GET /healthz` on `server.http.addr` (`--ready`: `GET /readyz`, every dependency).
//! - `grpc`: `grpc.health.v1.Health/Check` for the whole server on `server.grpc.addr`, over TLS
//!   when `server.grpc.tls.enabled` (trusting `ca.crt` of `server.grpc.tls.dir`, the certificate
//!   checked for `--server-name`), with the client certificate of `grpc_client.tls.dir` when
//!   `client_auth` is `require`. Kubernetes' own gRPC probe speaks no TLS, hence this one.
//! - `socket`: `GET /healthz` on `server.socket.addr`.
//!
//! An address on every interface (`:8080`, `0.0.0.0:8080`, `[::]:8080`) is probed on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::meta::config::{AppConfig, ClientAuth, parse_addr};

/// The app a probe asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProbedApp {
    /// The HTTP app (`GET /healthz`, or `/readyz` with `--ready`).
    Http,
    /// The gRPC app (`grpc.health.v1.Health/Check`, TLS as configured).
    Grpc,
    /// The socket app (`GET /healthz`).
    Socket,
}

/// What `go_example probe` was asked.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The app.
    pub app: ProbedApp,
    /// HTTP app only: `/readyz` (every configured dependency answers) instead of `/healthz`.
    pub ready: bool,
    /// The name the gRPC server's certificate is checked for.
    pub server_name: String,
    /// The whole probe's limit, connection included.
    pub timeout: Duration,
}

/// Runs the probe; `Ok` with what answered when the app serves.
///
/// # Errors
/// The app does not answer in time, answers something else than serving, or the probe's own
/// settings (address, TLS files) are unusable.
pub async fn run(config: &AppConfig, probe: &Probe) -> anyhow::Result<String> {
    let asked = async {
        match probe.app {
            ProbedApp::Http => {
                let path = if probe.ready { "/readyz" } else { "/healthz" };
                http_get(&config.server.http.addr, path, "server.http.addr").await
            }
            ProbedApp::Socket => {
                http_get(&config.server.socket.addr, "/healthz", "server.socket.addr").await
            }
            ProbedApp::Grpc => grpc_health(config, &probe.server_name).await,
        }
    };
    tokio::time::timeout(probe.timeout, asked)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {:?}", probe.timeout))?
}

/// Where to reach a listener configured as `addr`: an unspecified host is loopback.
///
/// # Errors
/// `addr` is not host:port or :port (named with `key`).
pub fn local_target(addr: &str, key: &str) -> anyhow::Result<SocketAddr> {
    let mut target = parse_addr(addr).map_err(|e| anyhow::anyhow!("config key `{key}`: {e}"))?;
    match target.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => target.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => target.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    Ok(target)
}

async fn http_get(addr: &str, path: &str, key: &str) -> anyhow::Result<String> {
    let target = local_target(addr, key)?;
    let url = format!("http://{target}{path}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let res = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = res.status();
    // The body names what is down (/readyz's 503); bounded, it is only printed.
    let body = res.text().await.unwrap_or_default();
    let body: String = body.chars().take(512).collect();
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(format!("GET {url}: {status}"))
}

async fn grpc_health(config: &AppConfig, server_name: &str) -> anyhow::Result<String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let grpc = &config.server.grpc;
    let target = local_target(&grpc.addr, "server.grpc.addr")?;
    let scheme = if grpc.tls.enabled { "https" } else { "http" };
    let url = format!("{scheme}://{target}");
    let mut endpoint = Endpoint::from_shared(url.clone()).context("the gRPC address")?;
    if grpc.tls.enabled {
        let read = |dir: &str, name: &str| {
            let path = Path::new(dir).join(name);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(
                &grpc.tls.dir,
                goex_certs::CA_CERT,
            )?))
            .domain_name(server_name);
        if grpc.tls.client_auth == ClientAuth::Require {
            let dir = &config.grpc_client.tls.dir;
            tls = tls.identity(Identity::from_pem(
                read(dir, goex_certs::CLIENT_CERT)?,
                read(dir, goex_certs::CLIENT_KEY)?,
            ));
        }
        endpoint = endpoint
            .tls_config(tls)
            .context("the probe's TLS settings")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .with_context(|| format!("grpc.health.v1.Health/Check at {url}"))?
        .into_inner();
    let status = ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown);
    if status != ServingStatus::Serving {
        bail!(
            "grpc.health.v1.Health/Check at {url}: {}",
            status.as_str_name()
        );
    }
    Ok(format!("grpc.health.v1.Health/Check at {url}: SERVING"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_on_every_interface_is_probed_on_loopback() {
        for (addr, expected) in [
            (":8080", "127.0.0.1:8080"),
            ("0.0.0.0:9090", "127.0.0.1:9090"),
            ("[::]:30000", "[::1]:30000"),
            ("10.1.2.3:8080", "10.1.2.3:8080"),
            ("127.0.0.1:1", "127.0.0.1:1"),
        ] {
            assert_eq!(
                local_target(addr, "k").unwrap().to_string(),
                expected,
                "{addr}"
            );
        }
        let e = local_target("nope", "server.http.addr").unwrap_err();
        assert!(e.to_string().contains("server.http.addr"), "{e}");
    }
}

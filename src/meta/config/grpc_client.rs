//! `grpc_client.*`: how the HTTP app calls the gRPC app (`GET /grpc/hello`).

use std::time::Duration;

use goex_config::{ConfigError, invalid};
use serde::Deserialize;

use super::refuse_zero;

/// The `grpc_client` section: how the HTTP app calls the gRPC app.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcClientConfig {
    /// The gRPC app: `https://host:port` (TLS) or `http://host:port`.
    pub addr: String,
    /// Time to open the (one, shared) connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Transport security.
    pub tls: GrpcClientTlsConfig,
    /// The `user` metadata of every call.
    pub user: String,
    /// The `password` metadata of every call.
    pub password: secrecy::SecretString,
    /// Circuit breaker settings per method (`SayHello`); see `goex_breaker::Settings`.
    pub breaker: std::collections::BTreeMap<String, goex_breaker::Settings>,
    /// With discovery: how long an instance a call could not reach stays out of the rotation
    /// before its first probe (docs/discovery.md).
    #[serde(with = "humantime_serde")]
    pub ejection_initial: Duration,
    /// With `dns:///host:port`: how often the name is resolved again (pods come and go).
    #[serde(with = "humantime_serde")]
    pub resolve_interval: Duration,
    /// The longest time out between two probes (it doubles from `ejection_initial`).
    #[serde(with = "humantime_serde")]
    pub ejection_max: Duration,
}

impl GrpcClientConfig {
    /// `grpc_client.*`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        refuse_zero(&[
            (
                "grpc_client.ejection_initial",
                self.ejection_initial.is_zero(),
            ),
            (
                "grpc_client.resolve_interval",
                self.resolve_interval.is_zero(),
            ),
        ])?;
        if self.ejection_max < self.ejection_initial {
            return Err(invalid(
                "grpc_client.ejection_max",
                "must not be shorter than grpc_client.ejection_initial",
            ));
        }
        Ok(())
    }
}

/// The `grpc_client.tls` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcClientTlsConfig {
    /// Dial with TLS.
    pub enabled: bool,
    /// Folder with `ca.crt` (trusted) and `client.pem` / `client.key` (presented).
    pub dir: String,
    /// The name the server's certificate must carry (the original's `www.example.com`).
    pub domain: String,
}

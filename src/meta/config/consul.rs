//! `consul.*` (docs/discovery.md): service registration and the networks discovered instances
//! may be dialled in.

use std::time::Duration;

use goex_config::{ConfigError, Profile, invalid};
use serde::Deserialize;

/// `consul.*` (docs/discovery.md): the original's `consul` section, extended.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulConfig {
    /// Register the apps with the agent.
    pub enabled: bool,
    /// The agent: `host:port` (the original's `consul.addr`, `127.0.0.1:8500`) or a URL.
    pub addr: String,
    /// The ACL token (`X-Consul-Token`); empty: none.
    pub token: secrecy::SecretString,
    /// The longest one request to the agent may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The address registered for the apps; empty: the bind address when it names one, else
    /// the local address of the route to the agent.
    pub address: String,
    /// Which apps register, and as what.
    pub services: ConsulServices,
    /// Tags of every registration (the original's `my_grpc`).
    pub tags: Vec<String>,
    /// Meta of every registration.
    pub meta: std::collections::BTreeMap<String, String>,
    /// The check the agent runs.
    pub check: ConsulCheckConfig,
    /// Registration retries: the first pause, doubled up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// The longest pause between registration attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often a registered app checks that the agent still knows it (and registers again
    /// when it does not).
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// How long a stopping app waits after deregistering before it drains, so clients watching
    /// Consul drop it first.
    #[serde(with = "humantime_serde")]
    pub deregister_grace: Duration,
    /// https to the agent: its CA, a client certificate and key (mTLS), the name checked.
    pub tls: goex_consul::TlsSettings,
    /// The networks (CIDRs) a discovered instance's address must be in to be dialled; empty:
    /// any address (refused in prod).
    pub allowed_networks: Vec<String>,
}

impl ConsulConfig {
    /// `allowed_networks` parsed (a bare address is a one-address network); the entries
    /// [`ConsulConfig::check`] refuses are skipped.
    pub fn networks(&self) -> Vec<ipnet::IpNet> {
        self.allowed_networks
            .iter()
            .filter_map(|n| parse_network(n).ok())
            .collect()
    }

    /// `consul.*`.
    pub(super) fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        for network in &self.allowed_networks {
            parse_network(network).map_err(|m| invalid("consul.allowed_networks", &m))?;
        }
        if profile.is_releasing() && self.allowed_networks.is_empty() {
            return Err(invalid(
                "consul.allowed_networks",
                "must not be empty in the prod profile: list the networks discovered instances \
                 may be dialled in",
            ));
        }
        Ok(())
    }
}

/// A CIDR (`10.0.0.0/8`) or one address (`10.0.0.5`, as `/32` or `/128`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a network (CIDR) or an address"))
}

/// `consul.services.*`: the service name each app registers as; empty: it does not register.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulServices {
    /// The gRPC app (the original's `hello`), checked with gRPC health over its TLS.
    pub grpc: String,
    /// The HTTP app, checked with `GET /healthz`.
    pub http: String,
    /// The socket app, checked with a TCP connect.
    pub socket: String,
}

/// `consul.check.*` (the original's values as defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulCheckConfig {
    /// How often the agent runs the check.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long one run may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a critical instance stays registered.
    #[serde(with = "humantime_serde")]
    pub deregister_critical_after: Duration,
    /// Whether the agent skips verifying the gRPC app's certificate (the original always did;
    /// here only when set).
    pub tls_skip_verify: bool,
    /// The name the agent checks the gRPC app's certificate for (`TLSServerName`); empty: the
    /// registered address.
    pub tls_server_name: String,
}

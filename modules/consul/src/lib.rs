//! A small client of the Consul agent's HTTP API (docs/discovery.md): what the apps need to
//! register themselves and to watch the healthy instances of a service. No maintained crate
//! covers both agent registration and blocking health queries (docs/decisions.md).
//!
//! - `PUT /v1/agent/service/register`, `PUT /v1/agent/service/deregister/:id`
//! - `GET /v1/health/service/:name?passing&index=&wait=`: a blocking query, answered when the
//!   service's health changes past `index` or after `wait`, with the new `X-Consul-Index`.
//!
//! Every request carries `X-Consul-Token` when a token is configured.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// What can go wrong talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    /// The agent could not be reached or did not answer in time.
    #[error("consul agent unreachable: {0}")]
    Unreachable(String),
    /// The agent refused the request (its status and message).
    #[error("consul agent answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The agent's message.
        message: String,
    },
    /// The answer could not be read.
    #[error("consul agent's answer unreadable: {0}")]
    Unreadable(String),
    /// The ACL token may not read what was asked: the agent answered with results filtered out
    /// (`X-Consul-Results-Filtered-By-ACLs`), not with the truth.
    #[error("consul ACLs filtered the answer: the token may not read the service")]
    Filtered,
}

/// A service registration (`PUT /v1/agent/service/register`), in the agent's field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Registration {
    /// `<name>-<ip>-<port>` (the original's form).
    #[serde(rename = "ID")]
    pub id: String,
    /// The service name (`hello` for the gRPC app).
    pub name: String,
    /// Tags (`my_grpc`).
    pub tags: Vec<String>,
    /// The address other services dial.
    pub address: String,
    /// The port.
    pub port: u16,
    /// Free-form metadata.
    pub meta: BTreeMap<String, String>,
    /// The health check the agent runs.
    pub check: Check,
}

/// A registration's health check: gRPC health (`GRPC`), HTTP (`HTTP`) or TCP (`TCP`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Check {
    /// `host:port` of a gRPC health service.
    #[serde(rename = "GRPC", default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    /// Whether the gRPC check uses TLS.
    #[serde(
        rename = "GRPCUseTLS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc_use_tls: Option<bool>,
    /// A URL answered with 2xx when healthy.
    #[serde(rename = "HTTP", default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `host:port` that accepts TCP connections when healthy.
    #[serde(rename = "TCP", default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Whether the check skips verifying the service's certificate.
    #[serde(rename = "TLSSkipVerify")]
    pub tls_skip_verify: bool,
    /// The name the service's certificate is checked for (its address otherwise).
    #[serde(
        rename = "TLSServerName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    /// How often the agent runs it (`10s`).
    pub interval: String,
    /// How long one run may take (`10s`).
    pub timeout: String,
    /// How long a critical service stays registered (`30s`; Consul's reaper: at least 1 min).
    pub deregister_critical_service_after: String,
}

/// A healthy instance of a service (`GET /v1/health/service/:name?passing`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    /// The registration id.
    pub id: String,
    /// `Service.Address`, or the node's address when that is empty.
    pub address: String,
    /// The port.
    pub port: u16,
}

/// The healthy instances and the index to block on next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthy {
    /// The instances, sorted by id.
    pub instances: Vec<Instance>,
    /// `X-Consul-Index` of the answer.
    pub index: u64,
}

/// The index to send with the next blocking query, from the one sent and the one answered
/// (Consul's rules): an index that went backwards resets to 0 (a plain read); one that is 0
/// becomes 1, so the next query still blocks.
pub fn next_index(sent: u64, answered: u64) -> u64 {
    if answered < sent { 0 } else { answered.max(1) }
}

/// A discovery target in the original's form, `consul://host:port/service?wait=10s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The agent, `host:port`.
    pub agent: String,
    /// The service watched.
    pub service: String,
    /// The blocking queries' wait (`wait=`, default 10 s, at most 10 min).
    pub wait: Duration,
}

impl Target {
    /// Parses `consul://host:port/service[?wait=D]`; `None` for any other scheme.
    ///
    /// # Errors
    /// A `consul://` URL without a service, or with a bad `wait`.
    pub fn parse(url: &str) -> Option<Result<Target, String>> {
        let rest = url.strip_prefix("consul://")?;
        Some((|| {
            let (authority, path) = rest.split_once('/').ok_or("no /service in the target")?;
            let (service, query) = path.split_once('?').unwrap_or((path, ""));
            if authority.is_empty() || service.is_empty() || service.contains('/') {
                return Err(format!(
                    "{url}: expected consul://host:port/service?wait=10s"
                ));
            }
            let mut wait = Duration::from_secs(10);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("wait", value)) => {
                        wait = parse_duration(value)
                            .filter(|w| !w.is_zero() && *w <= Duration::from_secs(600))
                            .ok_or_else(|| format!("{url}: wait={value} (1ms to 10m)"))?;
                    }
                    _ => return Err(format!("{url}: unknown parameter {pair}")),
                }
            }
            Ok(Target {
                agent: authority.to_owned(),
                service: service.to_owned(),
                wait,
            })
        })())
    }
}

/// `10s`, `1500ms`, `2m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// A Duration in Consul's form (`10s`, `1500ms`).
pub fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The agent client.
#[derive(Clone, Debug)]
pub struct ConsulClient {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
}

impl ConsulClient {
    /// A client of the agent at `addr` (`127.0.0.1:8500` or `http://host:port`), with an ACL
    /// token when `token` is not empty, connecting within `timeout`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(addr: &str, token: &SecretString, timeout: Duration) -> Result<Self, ConsulError> {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", addr.trim_end_matches('/'))
        };
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ConsulError::Unreachable(e.to_string()))?;
        let token = (!token.expose_secret().is_empty()).then(|| token.clone());
        Ok(Self { http, base, token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.header("X-Consul-Token", token.expose_secret()),
            None => request,
        }
    }

    async fn send(
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ConsulError> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ConsulError::Unreachable(e.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let message = response.text().await.unwrap_or_default();
        Err(ConsulError::Refused {
            status,
            message: message.chars().take(500).collect(),
        })
    }

    /// Registers `registration` with the agent (replacing one with the same id).
    ///
    /// # Errors
    /// The agent is unreachable or refuses it.
    pub async fn register(
        &self,
        registration: &Registration,
        timeout: Duration,
    ) -> Result<(), ConsulError> {
        let request = self
            .request(reqwest::Method::PUT, "/v1/agent/service/register")
            .json(registration);
        Self::send(request, timeout).await.map(|_| ())
    }

    /// Removes the registration `id`.
    ///
    /// # Errors
    /// The agent is unreachable or refuses it (404 for an unknown id).
    pub async fn deregister(&self, id: &str, timeout: Duration) -> Result<(), ConsulError> {
        let path = format!("/v1/agent/service/deregister/{}", encode(id));
        Self::send(self.request(reqwest::Method::PUT, &path), timeout)
            .await
            .map(|_| ())
    }

    /// Whether the agent knows the registration `id` (`GET /v1/agent/service/:id`).
    ///
    /// # Errors
    /// The agent is unreachable or refuses with anything but 404.
    pub async fn knows(&self, id: &str, timeout: Duration) -> Result<bool, ConsulError> {
        let path = format!("/v1/agent/service/{}", encode(id));
        match Self::send(self.request(reqwest::Method::GET, &path), timeout).await {
            Ok(_) => Ok(true),
            Err(ConsulError::Refused { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The passing instances of `service`: at once when `index` is 0, else when they change
    /// past `index` or after `wait` (the agent adds up to wait/16 of jitter).
    ///
    /// # Errors
    /// The agent is unreachable, refuses, or answers something unreadable.
    pub async fn healthy(
        &self,
        service: &str,
        index: u64,
        wait: Duration,
        timeout: Duration,
    ) -> Result<Healthy, ConsulError> {
        let mut path = format!("/v1/health/service/{}?passing", encode(service));
        if index > 0 {
            path.push_str(&format!("&index={index}&wait={}", duration(wait)));
        }
        let budget = timeout
            + if index > 0 {
                wait + wait / 16
            } else {
                Duration::ZERO
            };
        let response = Self::send(self.request(reqwest::Method::GET, &path), budget).await?;
        let answered = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| ConsulError::Unreadable("no X-Consul-Index header".into()))?;
        if response
            .headers()
            .get("X-Consul-Results-Filtered-By-ACLs")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
        {
            return Err(ConsulError::Filtered);
        }
        let entries: Vec<Entry> = response
            .json()
            .await
            .map_err(|e| ConsulError::Unreadable(e.to_string()))?;
        let mut instances: Vec<Instance> = entries
            .into_iter()
            .map(|e| Instance {
                id: e.service.id,
                address: if e.service.address.is_empty() {
                    e.node.address
                } else {
                    e.service.address
                },
                port: e.service.port,
            })
            .collect();
        instances.sort();
        Ok(Healthy {
            instances,
            index: answered,
        })
    }
}

/// One entry of `GET /v1/health/service/:name`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    node: EntryNode,
    service: EntryService,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EntryNode {
    #[serde(default)]
    address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EntryService {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    address: String,
    port: u16,
}

/// Percent-encodes a path segment (ids and names are ASCII words here, but never trusted).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_consuls_rules() {
        assert_eq!(next_index(0, 7), 7);
        assert_eq!(
            next_index(7, 7),
            7,
            "no change: block again on the same index"
        );
        assert_eq!(next_index(7, 9), 9);
        assert_eq!(next_index(9, 3), 0, "backwards: reset");
        assert_eq!(next_index(0, 0), 1, "never block on 0");
    }

    #[test]
    fn registrations_use_the_agents_field_names() {
        let r = Registration {
            id: "hello-10.0.0.5-50051".into(),
            name: "hello".into(),
            tags: vec!["my_grpc".into()],
            address: "10.0.0.5".into(),
            port: 50051,
            meta: BTreeMap::from([("version".to_owned(), "0.1.0".to_owned())]),
            check: Check {
                grpc: Some("10.0.0.5:50051".into()),
                grpc_use_tls: Some(true),
                http: None,
                tcp: None,
                tls_skip_verify: false,
                tls_server_name: None,
                interval: duration(Duration::from_secs(10)),
                timeout: duration(Duration::from_millis(1500)),
                deregister_critical_service_after: "30s".into(),
            },
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ID": "hello-10.0.0.5-50051", "Name": "hello", "Tags": ["my_grpc"],
                "Address": "10.0.0.5", "Port": 50051, "Meta": {"version": "0.1.0"},
                "Check": {"GRPC": "10.0.0.5:50051", "GRPCUseTLS": true, "TLSSkipVerify": false,
                          "Interval": "10s", "Timeout": "1500ms",
                          "DeregisterCriticalServiceAfter": "30s"}
            })
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn targets_in_the_originals_form() {
        let t = Target::parse("consul://127.0.0.1:8500/hello?wait=10s")
            .unwrap()
            .unwrap();
        assert_eq!(
            t,
            Target {
                agent: "127.0.0.1:8500".into(),
                service: "hello".into(),
                wait: Duration::from_secs(10)
            }
        );
        let t = Target::parse("consul://c:1/hello").unwrap().unwrap();
        assert_eq!(t.wait, Duration::from_secs(10));
        assert!(Target::parse("https://h:1").is_none());
        for bad in [
            "consul://h:1",
            "consul://h:1/",
            "consul://h:1/a?wait=0s",
            "consul://h:1/a?wait=11m",
            "consul://h:1/a?x=1",
        ] {
            assert!(Target::parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}

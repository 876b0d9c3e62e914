//! A small client of the Consul agent's HTTP API (docs/discovery.md): what the apps need to
//! register themselves and to watch the healthy instances of a service. No maintained crate
//! covers both agent registration and blocking health queries (docs/decisions.md).
//!
//! - `PUT /v1/agent/service/register`, `PUT /v1/agent/service/deregister/:id`
//! - `GET /v1/health/service/:name?passing&index=&wait=`: a blocking query, answered when the
//!   service's health changes past `index` or after `wait`, with the new `X-Consul-Index`.
//!
//! Every request carries `X-Consul-Token` when a token is configured. The client speaks https
//! when [`TlsSettings`] name a CA or a client certificate (mTLS to the agent), follows no
//! redirect (a 3xx is an error: the token never goes to a host the agent names), and reads at
//! most [`MAX_ANSWER_BYTES`] of an answer (more is an error, never a partial parse).

use std::collections::BTreeMap;
use std::path::Path;
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
    /// The answer is longer than [`MAX_ANSWER_BYTES`]: not parsed at all.
    #[error("consul agent's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The settings cannot make a client (a TLS file unreadable, `http://` with TLS files).
    #[error("consul settings: {0}")]
    Settings(String),
}

/// The most bytes of one answer read: a health answer for hundreds of instances is far smaller;
/// more is a broken or hostile peer (the Jenkins client's bound too).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The most bytes of a refusal's body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `consul.tls.*`: https to the agent. Empty strings mean "not set"; with none set the client
/// speaks plain http (unless `addr` says `https://`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA that signed the agent's certificate; set: it is the only CA trusted
    /// (else the built-in web roots).
    pub ca_file: String,
    /// PEM file of the client certificate presented to the agent (its `verify_incoming`).
    pub cert_file: String,
    /// PEM file of that certificate's private key.
    pub key_file: String,
    /// The name the agent's certificate is checked for; empty: the host of `addr`. With an IP
    /// address in `addr`, that address is dialled and this name verified.
    pub server_name: String,
}

impl TlsSettings {
    /// Whether any TLS file is configured (the client then speaks https).
    pub fn configured(&self) -> bool {
        !(self.ca_file.is_empty() && self.cert_file.is_empty() && self.key_file.is_empty())
    }
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
    /// token when `token` is not empty, connecting within `timeout`, over plain http.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(addr: &str, token: &SecretString, timeout: Duration) -> Result<Self, ConsulError> {
        Self::with_tls(addr, token, timeout, &TlsSettings::default())
    }

    /// [`ConsulClient::new`] with `tls`: https (a bare `host:port` becomes `https://host:port`)
    /// when it names a file, trusting its CA and presenting its client certificate.
    ///
    /// # Errors
    /// [`ConsulError::Settings`]: a file unreadable or not PEM, a certificate without its key
    /// (or the reverse), `http://` in `addr` with TLS files, a `server_name` with a host name
    /// in `addr`.
    pub fn with_tls(
        addr: &str,
        token: &SecretString,
        timeout: Duration,
        tls: &TlsSettings,
    ) -> Result<Self, ConsulError> {
        let addr = addr.trim_end_matches('/');
        let (scheme, authority) = match addr.split_once("://") {
            Some(("http", _)) if tls.configured() => {
                return Err(ConsulError::Settings(format!(
                    "consul.addr {addr} is plain http but consul.tls names files: use https:// or a bare host:port"
                )));
            }
            Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
            Some((other, _)) => {
                return Err(ConsulError::Settings(format!(
                    "consul.addr: scheme {other} (expected http or https)"
                )));
            }
            None if tls.configured() => ("https", addr),
            None => ("http", addr),
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            // A 3xx is answered as an error: following it would carry X-Consul-Token to
            // whatever host the Location names.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("goex-consul/", env!("CARGO_PKG_VERSION")));
        let mut base = format!("{scheme}://{authority}");
        if scheme == "https" {
            if !tls.ca_file.is_empty() {
                let ca =
                    reqwest::Certificate::from_pem(&read_pem(&tls.ca_file, "consul.tls.ca_file")?)
                        .map_err(|e| {
                            ConsulError::Settings(format!(
                                "consul.tls.ca_file {}: {e}",
                                tls.ca_file
                            ))
                        })?;
                builder = builder
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(ca);
            }
            match (tls.cert_file.is_empty(), tls.key_file.is_empty()) {
                (true, true) => {}
                (false, false) => {
                    let mut pem = read_pem(&tls.cert_file, "consul.tls.cert_file")?;
                    pem.push(b'\n');
                    pem.extend(read_pem(&tls.key_file, "consul.tls.key_file")?);
                    let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                        ConsulError::Settings(format!("consul.tls.cert_file / key_file: {e}"))
                    })?;
                    builder = builder.identity(identity);
                }
                _ => {
                    return Err(ConsulError::Settings(
                        "consul.tls.cert_file and consul.tls.key_file go together".into(),
                    ));
                }
            }
            if !tls.server_name.is_empty() {
                // Dial the address in `addr`, verify the certificate for `server_name`.
                let socket: std::net::SocketAddr = authority.parse().map_err(|_| {
                    ConsulError::Settings(format!(
                        "consul.tls.server_name needs an IP address and port in consul.addr (got {authority})"
                    ))
                })?;
                builder = builder.resolve(&tls.server_name, socket);
                base = format!("https://{}:{}", tls.server_name, socket.port());
            }
        }
        let http = builder
            .build()
            .map_err(|e| ConsulError::Settings(format!("cannot build the HTTP client: {e}")))?;
        let token = (!token.expose_secret().is_empty()).then(|| token.clone());
        Ok(Self { http, base, token })
    }

    /// The base URL requests go under (`https://127.0.0.1:8501`).
    pub fn base_url(&self) -> &str {
        &self.base
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
        if response.status().is_redirection() {
            // Not followed (the token would go along): the agent never redirects its API.
            return Err(ConsulError::Refused {
                status,
                message: "a redirect, not followed".into(),
            });
        }
        let body = read_capped(response, MAX_ERROR_BODY)
            .await
            .map(|(body, _)| body)
            .unwrap_or_default();
        Err(ConsulError::Refused {
            status,
            message: String::from_utf8_lossy(&body).chars().take(500).collect(),
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
        let (body, cut) = read_capped(response, MAX_ANSWER_BYTES).await?;
        if cut {
            return Err(ConsulError::TooLarge(MAX_ANSWER_BYTES));
        }
        let entries: Vec<Entry> =
            serde_json::from_slice(&body).map_err(|e| ConsulError::Unreadable(e.to_string()))?;
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

/// Reads the body chunk by chunk up to `cap` bytes; the flag says whether more was left unread.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), ConsulError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ConsulError::Unreachable(e.to_string()))?
    {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok((bytes, true));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, false))
}

/// A PEM file's bytes, or a settings error naming `key` and the file.
fn read_pem(path: &str, key: &str) -> Result<Vec<u8>, ConsulError> {
    std::fs::read(Path::new(path)).map_err(|e| ConsulError::Settings(format!("{key} {path}: {e}")))
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// One health entry at `address:port`.
    fn health_body(address: &str, port: u16) -> String {
        format!(
            r#"[{{"Node":{{"Address":"{address}"}},"Service":{{"ID":"hello-{address}-{port}","Address":"{address}","Port":{port}}}}}]"#
        )
    }

    /// Reads one request head, answers `head` then `body`, and returns the head read.
    async fn answer(
        mut io: impl AsyncRead + AsyncWrite + Unpin,
        head: &str,
        body: &[u8],
    ) -> String {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = io.write_all(head.as_bytes()).await;
        let _ = io.write_all(body).await;
        let _ = io.shutdown().await;
        String::from_utf8_lossy(&request).into_owned()
    }

    /// A local server answering every connection with `head` + `body`; counts connections and
    /// keeps the request heads.
    async fn server(
        head: String,
        body: Vec<u8>,
    ) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let heads: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let (c, h) = (count.clone(), Arc::clone(&heads));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (head, body, h) = (head.clone(), body.clone(), Arc::clone(&h));
                tokio::spawn(async move {
                    let request = answer(socket, &head, &body).await;
                    h.lock().unwrap().push(request);
                });
            }
        });
        (addr, count, heads)
    }

    fn ok_head(length: usize) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 7\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        )
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_redirect_is_refused_and_the_token_never_reaches_its_target() {
        let body = health_body("127.0.0.1", 50051);
        let (target, target_hits, _) = server(ok_head(body.len()), body.into_bytes()).await;
        let (agent, _, agent_heads) = server(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{target}/v1/health/service/hello?passing\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            Vec::new(),
        )
        .await;
        let token = SecretString::from("s3cr3t-acl-token");
        let client = ConsulClient::new(&agent, &token, SECOND).unwrap();
        let e = client
            .healthy("hello", 0, SECOND, SECOND)
            .await
            .unwrap_err();
        assert!(matches!(e, ConsulError::Refused { status: 302, .. }), "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            target_hits.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
        let heads = agent_heads.lock().unwrap();
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains("x-consul-token: s3cr3t-acl-token")
        );
    }

    #[tokio::test]
    async fn an_answer_over_the_bound_is_an_error_not_a_partial_parse() {
        // Valid JSON (an empty list padded with spaces), one byte over the bound.
        let mut body = vec![b' '; MAX_ANSWER_BYTES - 1];
        body[0] = b'[';
        body.extend_from_slice(b"]]");
        let body_len = body.len();
        let (agent, _, _) = server(ok_head(body_len), body).await;
        let client = ConsulClient::new(&agent, &SecretString::from(""), SECOND).unwrap();
        let e = client
            .healthy("hello", 0, SECOND, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(e, ConsulError::TooLarge(MAX_ANSWER_BYTES)), "{e}");

        // At the bound: read and parsed.
        let mut body = vec![b' '; MAX_ANSWER_BYTES];
        body[0] = b'[';
        body[MAX_ANSWER_BYTES - 1] = b']';
        let (agent, _, _) = server(ok_head(body.len()), body).await;
        let client = ConsulClient::new(&agent, &SecretString::from(""), SECOND).unwrap();
        let healthy = client
            .healthy("hello", 0, SECOND, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(healthy.instances.is_empty());
    }

    /// An https agent double with the certificates `goex_certs` writes to `dir`, requiring a
    /// client certificate signed by its CA.
    async fn tls_server(dir: &Path, body: String) -> (String, Arc<AtomicUsize>) {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(dir.join(goex_certs::CA_CERT)).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join(goex_certs::SERVER_CERT))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join(goex_certs::SERVER_KEY)).unwrap();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = Arc::new(AtomicUsize::new(0));
        let counted = served.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, body, counted) = (acceptor.clone(), body.clone(), counted.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(socket).await {
                        counted.fetch_add(1, Ordering::SeqCst);
                        answer(tls, &ok_head(body.len()), body.as_bytes()).await;
                    }
                });
            }
        });
        (addr, served)
    }

    #[tokio::test]
    async fn https_with_the_test_ca_and_a_client_certificate() {
        let dir = std::env::temp_dir().join(format!("goex-consul-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        goex_certs::generate(&dir, &["localhost".into(), "127.0.0.1".into()], 1).unwrap();
        let (agent, served) = tls_server(&dir, health_body("127.0.0.1", 50051)).await;
        let file = |name: &str| dir.join(name).display().to_string();
        let tls = TlsSettings {
            ca_file: file(goex_certs::CA_CERT),
            cert_file: file(goex_certs::CLIENT_CERT),
            key_file: file(goex_certs::CLIENT_KEY),
            server_name: String::new(),
        };
        let token = SecretString::from("");
        let client = ConsulClient::with_tls(&agent, &token, SECOND, &tls).unwrap();
        assert!(client.base_url().starts_with("https://127.0.0.1:"));
        let healthy = client.healthy("hello", 0, SECOND, SECOND).await.unwrap();
        assert_eq!(healthy.instances[0].address, "127.0.0.1");
        assert_eq!(healthy.index, 7);

        // The address dialled, the certificate checked for another of its names.
        let named = TlsSettings {
            server_name: "localhost".into(),
            ..tls.clone()
        };
        let client = ConsulClient::with_tls(&agent, &token, SECOND, &named).unwrap();
        assert!(client.base_url().starts_with("https://localhost:"));
        client.healthy("hello", 0, SECOND, SECOND).await.unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 2);

        // Without a client certificate the agent refuses the handshake; a name the
        // certificate lacks is refused by the client.
        let anonymous = TlsSettings {
            cert_file: String::new(),
            key_file: String::new(),
            ..tls.clone()
        };
        let client = ConsulClient::with_tls(&agent, &token, SECOND, &anonymous).unwrap();
        assert!(client.healthy("hello", 0, SECOND, SECOND).await.is_err());
        let wrong = TlsSettings {
            server_name: "consul.example.com".into(),
            ..tls.clone()
        };
        let client = ConsulClient::with_tls(&agent, &token, SECOND, &wrong).unwrap();
        assert!(client.healthy("hello", 0, SECOND, SECOND).await.is_err());
        assert_eq!(served.load(Ordering::SeqCst), 2);

        // Plain http with TLS files is a contradiction, refused.
        let e =
            ConsulClient::with_tls(&format!("http://{agent}"), &token, SECOND, &tls).unwrap_err();
        assert!(matches!(e, ConsulError::Settings(_)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

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

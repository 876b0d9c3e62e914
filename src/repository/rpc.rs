//! The HTTP app's gRPC client (the original's `GrpcClient` in `hello_controller.go`): a tonic
//! channel to the gRPC app (with discovery, one per instance) per calling thread, made on its
//! first call and connected lazily (never a connection per request; `thread_channel`), the per-call credentials on every call, and every
//! call through its method's circuit breaker (`goex-breaker`), so a failing gRPC app costs the
//! HTTP app a prompt, honest error. With discovery, a call that cannot reach its instance ejects
//! it and goes to another one (the retry rule: `TransportFailure::may_retry`).

use std::sync::Arc;

use async_trait::async_trait;
use goex_breaker::{Breaker, BreakerError, BreakerService, Outcome, Snapshot};
use goex_tracing::KeyValue;
use secrecy::ExposeSecret;
use shaku::{Component, Interface};
use std::net::IpAddr;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tower::ServiceExt;

use crate::meta::config::GrpcClientConfig;
use crate::proto::hello::HelloRequest;
use crate::proto::hello::hello_service_client::HelloServiceClient;
use crate::repository::discovery::Instances;
use crate::repository::ejection::Backoff;
use crate::repository::thread_channel::ThreadChannel;

/// The full method the breaker of [`HelloRpcClient::say_hello`] guards.
pub const SAY_HELLO: &str = "/hello.HelloService/SayHello";

/// Why a call to the gRPC app failed, in the original's three codes and the breaker's refusal.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The client's TLS files could not be read (10002).
    #[error("gRPC client certificates: {0}")]
    Certificate(String),
    /// The gRPC app cannot be reached or did not answer in time (10004).
    #[error("gRPC app unreachable: {0}")]
    Unreachable(String),
    /// The breaker refused the call without sending it: open, or too many in flight (10004,
    /// degraded).
    #[error("circuit open for {0}")]
    Open(&'static str),
    /// The call reached the gRPC app and failed there (10003).
    #[error("gRPC call failed: {0}")]
    Call(Status),
}

/// Calls the gRPC app's `hello.HelloService`.
#[async_trait]
pub trait HelloRpcClient: Interface {
    /// `SayHello(id)`: the answer's name.
    ///
    /// # Errors
    /// See [`RpcError`].
    async fn say_hello(&self, id: i32) -> Result<String, RpcError> {
        self.say_hello_for(id, None).await
    }

    /// `SayHello(id)` for the end user at `client`, forwarded in
    /// [`FORWARDED_CLIENT_KEY`](crate::proto::FORWARDED_CLIENT_KEY) so that the gRPC app's rate
    /// limits count that user, not this app.
    ///
    /// # Errors
    /// See [`RpcError`].
    async fn say_hello_for(&self, id: i32, client: Option<IpAddr>) -> Result<String, RpcError>;

    /// The breaker's state and window, for `/readyz`.
    fn breaker(&self) -> Option<Snapshot>;
}

/// A connected (lazily) client: the channel, the credentials, the breaker.
#[derive(Clone)]
pub struct GrpcHello {
    backend: Backend,
    user: MetadataValue<tonic::metadata::Ascii>,
    password: MetadataValue<tonic::metadata::Ascii>,
    breaker: Breaker,
}

/// Where the calls go.
#[derive(Clone)]
enum Backend {
    /// One address: a lazily connected channel per calling thread (`thread_channel`); a call
    /// is sent once.
    Single(Arc<ThreadChannel>),
    /// A Consul service's passing instances (docs/discovery.md): a call that cannot reach its
    /// instance ejects it and is sent again to another one.
    Discovered(Instances),
}

/// Tries of one call over discovered instances, inside one breaker call.
const MAX_TRIES: usize = 4;

/// `SayHello` reads and answers, nothing more: sent twice, it does no harm. This is what lets a
/// call whose connection broke after it was sent (it may have reached the app) go again to
/// another instance; a method that is not idempotent would say `false` and see that error.
const SAY_HELLO_IDEMPOTENT: bool = true;

/// How a call failed in the transport (never an answer of the app).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TransportFailure {
    /// No connection could be made (TCP or TLS refused, reset or timed out: tonic's
    /// `ConnectError`): the call never left this process.
    NotSent,
    /// The connection broke with the call on it (reset, stream cut: `UNAVAILABLE`, `UNKNOWN`
    /// or `CANCELLED` without the app's error code): it may have reached the app.
    Broken,
}

impl TransportFailure {
    /// The retry rule: a call that never left may go to another instance; one that may have
    /// reached the app only when its method is idempotent. An answer of the app (it carries
    /// the app's error code, or is another status) is never a transport failure and never
    /// sent again.
    fn may_retry(self, idempotent: bool) -> bool {
        match self {
            Self::NotSent => true,
            Self::Broken => idempotent,
        }
    }
}

/// The transport failure `status` reports, if it is one.
fn transport_failure(status: &Status) -> Option<TransportFailure> {
    if status
        .metadata()
        .get(crate::proto::ERROR_CODE_KEY)
        .is_some()
    {
        return None;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return Some(TransportFailure::NotSent);
        }
        source = error.source();
    }
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
    .then_some(TransportFailure::Broken)
}

/// `SayHello` over `channel` to `uri`, one try: with tracing on and a request being served,
/// as a client span of the request's span whose context goes in the call's metadata (so the
/// gRPC app's server span is its child), ended with the call's status.
async fn say_hello_once(
    tracing: &goex_tracing::Tracing,
    channel: tonic::transport::Channel,
    uri: &http::Uri,
    mut request: Request<HelloRequest>,
) -> Result<tonic::Response<crate::proto::hello::HelloResponse>, Status> {
    // Tracing off: no task-local read, nothing made.
    let span = tracing
        .is_on()
        .then(goex_tracing::current)
        .flatten()
        .and_then(|parent| tracing.client_span(SAY_HELLO_SPAN, &parent))
        .map(|mut span| {
            goex_tracing::inject_metadata(span.context(), request.metadata_mut());
            forward_request_id(goex_logging::request::current(), request.metadata_mut());
            if span.is_recording() {
                span.set_attributes([
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.service", "hello.HelloService"),
                    KeyValue::new("rpc.method", "SayHello"),
                    KeyValue::new("server.address", uri.host().unwrap_or_default().to_owned()),
                    KeyValue::new("server.port", i64::from(port_of(uri))),
                ]);
            }
            span
        });
    let result = HelloServiceClient::new(channel).say_hello(request).await;
    if let Some(mut span) = span {
        if span.is_recording() {
            let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
            span.set_attributes([KeyValue::new("rpc.grpc.status_code", code as i64)]);
            if code != Code::Ok {
                span.set_error(format!("{code:?}"));
            }
        }
        span.end();
    }
    result
}

/// Puts the id of the request being served (`id`) in a traced call's metadata, so the gRPC
/// app's records of the call carry it; an id that is not valid metadata is left out.
fn forward_request_id(id: Option<Arc<str>>, metadata: &mut tonic::metadata::MetadataMap) {
    if let Some(value) = id.and_then(|id| MetadataValue::try_from(&*id).ok()) {
        metadata.insert(crate::proto::REQUEST_ID_KEY, value);
    }
}

/// The port a call to `uri` goes to: its own, else its scheme's.
pub(super) fn port_of(uri: &http::Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        })
}

/// The client span's name: `{rpc.service}/{rpc.method}` (OpenTelemetry's RPC conventions).
const SAY_HELLO_SPAN: &str = "hello.HelloService/SayHello";

/// `SayHello` over the discovered `instances`, each try on an instance in the rotation (or,
/// when all are ejected, one this call has not tried). A transport failure ejects the
/// instance and, when the retry rule allows, the call goes at once to another one; only when
/// every instance is out and tried does a try wait (10 ms times the tries so far: a restarted
/// instance's connection is made again). Each try is a client span of its own (traced).
async fn say_hello_discovered(
    tracing: &goex_tracing::Tracing,
    instances: &Instances,
    request: Request<HelloRequest>,
) -> Result<tonic::Response<crate::proto::hello::HelloResponse>, Status> {
    let (metadata, extensions, message) = request.into_parts();
    instances.ready().await;
    let mut tried = Vec::with_capacity(MAX_TRIES);
    loop {
        let Some(pick) = instances.pick(&tried) else {
            return Err(Status::unavailable("no passing instance"));
        };
        let request = Request::from_parts(metadata.clone(), extensions.clone(), message);
        let result = say_hello_once(tracing, pick.channel(), pick.uri(), request).await;
        let failure = result.as_ref().err().and_then(transport_failure);
        let Some(failure) = failure else {
            instances.answered(&pick);
            return result;
        };
        instances.failed(&pick);
        tried.push(pick.key());
        if tried.len() >= MAX_TRIES || !failure.may_retry(SAY_HELLO_IDEMPOTENT) {
            return result;
        }
        if instances.exhausted(&tried) {
            tokio::time::sleep(std::time::Duration::from_millis(10 * tried.len() as u64)).await;
        }
    }
}

impl GrpcHello {
    /// The client of `grpc_client`, its breaker reporting state changes to `logger`. Nothing
    /// connects until the first call.
    ///
    /// # Errors
    /// A TLS file is unreadable, the address or a credential is malformed, or the breaker's
    /// settings are out of range: a message for the 10002 answer.
    pub fn new(
        config: &GrpcClientConfig,
        consul: &crate::meta::config::ConsulConfig,
        logger: &slog::Logger,
        metrics: Option<&goex_metrics::Metrics>,
    ) -> Result<Self, String> {
        let tls = if config.tls.enabled {
            let dir = std::path::Path::new(&config.tls.dir);
            let read = |name: &str| {
                std::fs::read(dir.join(name))
                    .map_err(|e| format!("{}: {e}", dir.join(name).display()))
            };
            Some(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(goex_certs::CA_CERT)?))
                    .identity(Identity::from_pem(
                        read(goex_certs::CLIENT_CERT)?,
                        read(goex_certs::CLIENT_KEY)?,
                    ))
                    .domain_name(config.tls.domain.clone()),
            )
        } else {
            None
        };
        let connect_timeout = config.connect_timeout;
        let dial = move |url: String| -> Result<Endpoint, String> {
            let endpoint = Endpoint::from_shared(url)
                .map_err(|e| format!("grpc_client.addr: {e}"))?
                .connect_timeout(connect_timeout);
            match &tls {
                Some(tls) => endpoint
                    .tls_config(tls.clone())
                    .map_err(|e| format!("grpc_client.tls: {e}")),
                None => Ok(endpoint),
            }
        };
        let scheme = if config.tls.enabled { "https" } else { "http" };
        let dial_one = dial.clone();
        let dial_instance = move |instance: &goex_consul::Instance| {
            let host = match instance.address.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
                _ => instance.address.clone(),
            };
            dial_one(format!("{scheme}://{host}:{}", instance.port))
        };
        let backoff = Backoff {
            initial: config.ejection_initial,
            max: config.ejection_max,
        };
        // `dns:///host:port`: balanced over every address of the name (a Kubernetes headless
        // Service's ready pods), resolved again every resolve_interval.
        if let Some(target) = crate::repository::discovery::DnsTarget::parse(&config.addr) {
            let target = target.map_err(|e| format!("grpc_client.addr: {e}"))?;
            let instances = crate::repository::discovery::resolve(
                target,
                config.resolve_interval,
                dial_instance,
                backoff,
                config.connect_timeout,
                logger.new(slog::o!("client" => "grpc")),
            );
            return Self::with_backend(config, Backend::Discovered(instances), logger, metrics);
        }
        // `consul://host:port/service?wait=10s` (the original's target): balanced over the
        // service's passing instances; anything else: one address.
        let backend = match goex_consul::Target::parse(&config.addr) {
            Some(target) => {
                let target = target.map_err(|e| format!("grpc_client.addr: {e}"))?;
                let agent = goex_consul::ConsulClient::with_tls(
                    &target.agent,
                    &consul.token,
                    consul.timeout,
                    &consul.tls,
                )
                .map_err(|e| format!("grpc_client.addr: {e}"))?;
                Backend::Discovered(crate::repository::discovery::discover(
                    target,
                    agent,
                    consul.timeout,
                    crate::repository::discovery::within(consul.networks(), dial_instance),
                    backoff,
                    config.connect_timeout,
                    logger.new(slog::o!("client" => "grpc")),
                ))
            }
            None => Backend::Single(Arc::new(ThreadChannel::new(dial(config.addr.clone())?))),
        };
        Self::with_backend(config, backend, logger, metrics)
    }

    fn with_backend(
        config: &GrpcClientConfig,
        backend: Backend,
        logger: &slog::Logger,
        metrics: Option<&goex_metrics::Metrics>,
    ) -> Result<Self, String> {
        let settings = config.breaker.get("SayHello").cloned().unwrap_or_default();
        let log = logger.clone();
        // go_example_breaker_state{method}: 0 closed, 1 half-open, 2 open.
        let gauge = metrics.map(|m| m.breaker_state(SAY_HELLO));
        let breaker = Breaker::builder(SAY_HELLO, &settings)
            .observer(move |name: &str, from, to| {
                slog::warn!(log, "circuit breaker state changed";
                    "method" => name, "from" => %from, "to" => %to);
                if let Some(gauge) = &gauge {
                    gauge.set(match to {
                        goex_breaker::State::Closed => 0,
                        goex_breaker::State::HalfOpen => 1,
                        goex_breaker::State::Open => 2,
                    });
                }
            })
            .build()
            .map_err(|e| format!("grpc_client.breaker.SayHello: {e}"))?;
        Ok(Self {
            backend,
            user: MetadataValue::try_from(config.user.as_str())
                .map_err(|e| format!("grpc_client.user: {e}"))?,
            password: MetadataValue::try_from(config.password.expose_secret())
                .map_err(|e| format!("grpc_client.password: {e}"))?,
            breaker,
        })
    }
}

/// Statuses that prove the gRPC app answered (the caller's mistake, not the app's failure)
/// do not count against it.
fn classify<T>(result: &Result<T, Status>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(status) => match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::OutOfRange => Outcome::Ignored,
            _ => Outcome::Failure,
        },
    }
}

/// [`HelloRpcClient`] over tonic, or the reason it could not be made.
#[derive(Component)]
#[shaku(interface = HelloRpcClient)]
pub struct TonicHelloClient {
    client: Arc<Result<GrpcHello, String>>,
    /// The HTTP app's tracer: each try of a call is a client span when on.
    tracing: goex_tracing::Tracing,
}

#[async_trait]
impl HelloRpcClient for TonicHelloClient {
    async fn say_hello_for(&self, id: i32, client: Option<IpAddr>) -> Result<String, RpcError> {
        let hello = self
            .client
            .as_ref()
            .as_ref()
            .map_err(|e| RpcError::Certificate(e.clone()))?;
        let mut request = Request::new(HelloRequest { id });
        request.metadata_mut().insert("user", hello.user.clone());
        request
            .metadata_mut()
            .insert("password", hello.password.clone());
        if let Some(value) = client.and_then(|ip| MetadataValue::try_from(ip.to_string()).ok()) {
            request
                .metadata_mut()
                .insert(crate::proto::FORWARDED_CLIENT_KEY, value);
        }
        let backend = hello.backend.clone();
        let tracing = self.tracing.clone();
        let call = tower::service_fn(move |request: Request<HelloRequest>| {
            let (backend, tracing) = (backend.clone(), tracing.clone());
            async move {
                match backend {
                    Backend::Single(channel) => {
                        let uri = channel.endpoint().uri();
                        say_hello_once(&tracing, channel.get(), uri, request).await
                    }
                    Backend::Discovered(instances) => {
                        say_hello_discovered(&tracing, &instances, request).await
                    }
                }
            }
        });
        let guarded = BreakerService::new(call, hello.breaker.clone(), classify);
        match guarded.oneshot(request).await {
            Ok(response) => Ok(response.into_inner().name),
            Err(BreakerError::Open | BreakerError::Rejected | BreakerError::Throttled) => {
                Err(RpcError::Open(SAY_HELLO))
            }
            Err(BreakerError::Timeout) => Err(RpcError::Unreachable(format!(
                "no answer within {:?}",
                hello.breaker.settings().timeout
            ))),
            Err(BreakerError::Inner(status)) => match status.code() {
                Code::Unavailable | Code::DeadlineExceeded => {
                    Err(RpcError::Unreachable(status.message().to_owned()))
                }
                _ => Err(RpcError::Call(status)),
            },
        }
    }

    fn breaker(&self) -> Option<Snapshot> {
        self.client
            .as_ref()
            .as_ref()
            .ok()
            .map(|c| c.breaker.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_span_names_the_port_the_call_goes_to() {
        let port = |uri: &str| port_of(&uri.parse().unwrap());
        assert_eq!(port("https://127.0.0.1:9090"), 9090);
        assert_eq!(port("https://grpc.example.com"), 443);
        assert_eq!(port("http://grpc.example.com"), 80);
    }

    #[test]
    fn a_traced_call_carries_the_served_requests_id_when_it_is_valid_metadata() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        forward_request_id(Some("abc-1".into()), &mut metadata);
        assert_eq!(metadata.get(crate::proto::REQUEST_ID_KEY).unwrap(), "abc-1");
        let mut metadata = tonic::metadata::MetadataMap::new();
        forward_request_id(Some("new\nline".into()), &mut metadata);
        forward_request_id(None, &mut metadata);
        assert!(metadata.is_empty());
    }

    #[test]
    fn a_call_is_sent_again_only_after_a_transport_failure() {
        // No connection (tonic's ConnectError in the chain, as a refused or reset connect
        // gives it): never sent, sent again whatever the method.
        let refused = Status::from_error(Box::new(tonic::ConnectError(Box::new(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))));
        assert_eq!(refused.code(), Code::Unavailable);
        assert_eq!(transport_failure(&refused), Some(TransportFailure::NotSent));
        assert!(TransportFailure::NotSent.may_retry(false));
        // A broken connection: it may have reached the app; sent again only when idempotent.
        for status in [
            Status::unavailable("connection reset"),
            Status::unknown("h2 protocol error"),
            Status::cancelled("operation was canceled"),
        ] {
            assert_eq!(
                transport_failure(&status),
                Some(TransportFailure::Broken),
                "{status:?}"
            );
        }
        assert!(TransportFailure::Broken.may_retry(true));
        assert!(!TransportFailure::Broken.may_retry(false));
        // Answers of the app: its error code, or any other status.
        let mut answered = Status::unavailable("database down");
        answered.metadata_mut().insert(
            crate::proto::ERROR_CODE_KEY,
            MetadataValue::from_static("10004"),
        );
        assert_eq!(transport_failure(&answered), None);
        for status in [
            Status::invalid_argument("id"),
            Status::deadline_exceeded("late"),
            Status::internal("bug"),
        ] {
            assert_eq!(transport_failure(&status), None, "{status:?}");
        }
    }
}

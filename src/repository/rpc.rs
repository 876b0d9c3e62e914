//! The HTTP app's gRPC client (the original's `GrpcClient` in `hello_controller.go`): one shared
//! tonic channel to the gRPC app, made once and connected lazily (never a connection per
//! request), the per-call credentials on every call, and every call through its method's circuit
//! breaker (`goex-breaker`), so a failing gRPC app costs the HTTP app a prompt, honest error.

use std::sync::Arc;

use async_trait::async_trait;
use goex_breaker::{Breaker, BreakerError, BreakerService, Outcome, Snapshot};
use secrecy::ExposeSecret;
use shaku::{Component, Interface};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tower::ServiceExt;

use crate::meta::config::GrpcClientConfig;
use crate::proto::hello::HelloRequest;
use crate::proto::hello::hello_service_client::HelloServiceClient;

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
    async fn say_hello(&self, id: i32) -> Result<String, RpcError>;

    /// The breaker's state and window, for `/readyz`.
    fn breaker(&self) -> Option<Snapshot>;
}

/// A connected (lazily) client: the channel, the credentials, the breaker.
#[derive(Clone)]
pub struct GrpcHello {
    client: HelloServiceClient<Channel>,
    user: MetadataValue<tonic::metadata::Ascii>,
    password: MetadataValue<tonic::metadata::Ascii>,
    breaker: Breaker,
    /// Balanced over discovered instances: an idempotent call that finds its instance gone
    /// is sent again (to another one).
    discovered: bool,
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
        // `consul://host:port/service?wait=10s` (the original's target): balanced over the
        // service's passing instances; anything else: one address.
        let (channel, discovered) = match goex_consul::Target::parse(&config.addr) {
            Some(target) => {
                let target = target.map_err(|e| format!("grpc_client.addr: {e}"))?;
                let agent =
                    goex_consul::ConsulClient::new(&target.agent, &consul.token, consul.timeout)
                        .map_err(|e| format!("grpc_client.addr: {e}"))?;
                let scheme = if config.tls.enabled { "https" } else { "http" };
                let channel = crate::repository::discovery::balanced(
                    target,
                    agent,
                    consul.timeout,
                    move |instance| {
                        let host = match instance.address.parse::<std::net::IpAddr>() {
                            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
                            _ => instance.address.clone(),
                        };
                        dial(format!("{scheme}://{host}:{}", instance.port))
                    },
                    logger.new(slog::o!("client" => "grpc")),
                );
                (channel, true)
            }
            None => (dial(config.addr.clone())?.connect_lazy(), false),
        };
        let settings = config.breaker.get("SayHello").cloned().unwrap_or_default();
        let log = logger.clone();
        let breaker = Breaker::builder(SAY_HELLO, &settings)
            .observer(move |name: &str, from, to| {
                slog::warn!(log, "circuit breaker state changed";
                    "method" => name, "from" => %from, "to" => %to);
            })
            .build()
            .map_err(|e| format!("grpc_client.breaker.SayHello: {e}"))?;
        Ok(Self {
            client: HelloServiceClient::new(channel),
            discovered,
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
}

#[async_trait]
impl HelloRpcClient for TonicHelloClient {
    async fn say_hello(&self, id: i32) -> Result<String, RpcError> {
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
        let client = hello.client.clone();
        // SayHello is idempotent: with discovery, a call whose instance just left (refused,
        // reset) goes once more, to another instance, inside the same breaker call.
        let tries = if hello.discovered { 4 } else { 1 };
        let call = tower::service_fn(move |request: Request<HelloRequest>| {
            let client = client.clone();
            async move {
                let (metadata, extensions, message) = request.into_parts();
                let mut attempt = 1;
                loop {
                    let request =
                        Request::from_parts(metadata.clone(), extensions.clone(), message);
                    match client.clone().say_hello(request).await {
                        // Only the transport's own failures (refused, reset, a stream cut:
                        // UNAVAILABLE, UNKNOWN, CANCELLED without the app's error code): an
                        // answer of the app carries its error code and is not sent again.
                        Err(status)
                            if matches!(
                                status.code(),
                                Code::Unavailable | Code::Unknown | Code::Cancelled
                            ) && status
                                .metadata()
                                .get(crate::server::grpc::ERROR_CODE_KEY)
                                .is_none()
                                && attempt < tries =>
                        {
                            // A moment for the balancer to see the broken connection, so the
                            // next try goes elsewhere.
                            tokio::time::sleep(std::time::Duration::from_millis(10 * attempt))
                                .await;
                            attempt += 1;
                        }
                        other => return other,
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

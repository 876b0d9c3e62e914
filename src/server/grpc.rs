//! The gRPC application (the original's `internal/server/grpc.go`): `hello.HelloService` and
//! `user.UserService` over TLS (client certificates none, requested or required), every call
//! but health checks asked of the load shedder first ([`ShedCalls`]; tonic's per-connection
//! limit under it), every call
//! authenticated by one layer ([`CallAuth`]) instead of inside each method, the standard
//! `grpc.health.v1.Health` and reflection (v1 and v1alpha), and with `server.debug_routes` the
//! benchmark's `bench.Burn`. `ServiceError` becomes a
//! `tonic::Status` in the edge kit and nowhere else (`web::envelope::status`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use shaku::HasComponent;
use tonic::Status;
use tonic::server::NamedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::assembly::AppModule;
use crate::controller::grpc::bench::BurnRpcController;
use crate::controller::grpc::hello::HelloRpcController;
use crate::controller::grpc::user::UserRpcController;
use crate::meta::config::{ClientAuth, GrpcConfig};
use crate::middleware::grpc_call_log::GrpcCallLogLayer;
use crate::middleware::grpc_metrics::GrpcMetricsLayer;
use crate::middleware::grpc_rate_limit::GrpcRateLimitLayer;
use crate::middleware::grpc_trace::GrpcTraceLayer;
use crate::proto::bench::burn_server::BurnServer;
use crate::proto::hello::hello_service_server::HelloServiceServer;
use crate::proto::user::user_service_server::UserServiceServer;
use crate::server::batched_io::BatchedWrites;
use crate::service::auth::{AuthService, bearer, header_text};
use crate::service::caller::{Caller, CallerAuthService};
use crate::service::error::ServiceError;
use crate::service::shedding::{Admission, AppShedder, LoadShedding};
use crate::web::client_addr::ClientAddr;
use crate::web::envelope::status;
// generate:use (`go_example generate resource --grpc` adds its imports above this line)

/// The TLS configuration of `server.grpc.tls`, read from its folder.
///
/// # Errors
/// A file is missing or unreadable (the original's 10002: certificate error).
pub fn tls_config(dir: &Path, client_auth: ClientAuth) -> std::io::Result<ServerTlsConfig> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: {e}", dir.join(name).display()))
        })
    };
    let identity = Identity::from_pem(
        read(goex_certs::SERVER_CERT)?,
        read(goex_certs::SERVER_KEY)?,
    );
    let config = ServerTlsConfig::new().identity(identity);
    Ok(match client_auth {
        ClientAuth::None => config,
        ClientAuth::Request | ClientAuth::Require => config
            .client_ca_root(Certificate::from_pem(read(goex_certs::CA_CERT)?))
            .client_auth_optional(client_auth == ClientAuth::Request),
    })
}

/// What the app's settings add around the services.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `server.debug_routes` (never in prod): the benchmark's `bench.Burn` is served.
    pub debug_routes: bool,
    /// The app's tracer: a server span per call when tracing is on.
    pub tracing: goex_tracing::Tracing,
    /// Call metrics (`go_example_grpc_*`), when `metrics.enabled`.
    pub metrics: Option<goex_metrics::Metrics>,
}

/// The full names of the services whose calls are named after their method in server spans
/// and failure records.
const TRACED_SERVICES: &[&str] = &[
    <HelloServiceServer<Arc<dyn HelloRpcController>> as NamedService>::NAME,
    <UserServiceServer<Arc<dyn UserRpcController>> as NamedService>::NAME,
    <BurnServer<Arc<dyn BurnRpcController>> as NamedService>::NAME,
    // generate:grpc-names (`go_example generate resource --grpc` adds its services above this line)
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Serves the gRPC app on `listener` until `shutdown` completes, then lets in-flight calls
/// finish within `server.grpc.shutdown_timeout`.
///
/// # Errors
/// The TLS files cannot be read, or the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: &GrpcConfig,
    options: ServeOptions,
    module: Arc<AppModule>,
    logger: &slog::Logger,
    served: Arc<std::sync::atomic::AtomicU64>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let ServeOptions {
        debug_routes,
        tracing,
        metrics,
    } = options;
    let mut builder = Server::builder()
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        // The static backstop under the adaptive shedder: tonic answers a call over the
        // connection's limit RESOURCE_EXHAUSTED at once (docs/overload.md).
        .concurrency_limit_per_connection(config.concurrency_limit_per_connection)
        .load_shed(config.load_shed);
    if config.tls.enabled {
        builder = builder.tls_config(tls_config(
            Path::new(&config.tls.dir),
            config.tls.client_auth,
        )?)?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<HelloServiceServer<Arc<dyn HelloRpcController>>>()
        .await;
    health
        .set_serving::<UserServiceServer<Arc<dyn UserRpcController>>>()
        .await;
    // generate:grpc-health (`go_example generate resource --grpc` adds its services above this line)
    // bench.Burn is listed (and health-checked) only where it is served.
    let bench = debug_routes.then_some(crate::proto::BENCH_FILE_DESCRIPTOR_SET);
    if debug_routes {
        health
            .set_serving::<BurnServer<Arc<dyn BurnRpcController>>>()
            .await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let reflection_v1 = match bench {
        Some(set) => reflection_v1.register_encoded_file_descriptor_set(set),
        None => reflection_v1,
    }
    .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let reflection_v1alpha = match bench {
        Some(set) => reflection_v1alpha.register_encoded_file_descriptor_set(set),
        None => reflection_v1alpha,
    }
    .build_v1alpha()?;
    // The controllers, resolved from the module (components like every HTTP controller).
    let hello: Arc<dyn HelloRpcController> = module.resolve();
    let users: Arc<dyn UserRpcController> = module.resolve();
    let burn = debug_routes.then(|| {
        let burn: Arc<dyn BurnRpcController> = module.resolve();
        BurnServer::new(burn)
    });
    let auth = CallAuthLayer {
        served,
        credentials: Arc::new(Credentials {
            service: module.resolve(),
            jwt: config.auth.jwt.then(|| module.resolve()),
        }),
    };
    // The process's adaptive load shedder (its CPU sampler starts here when `shedding.enabled`).
    let shedding: &dyn LoadShedding = module.resolve_ref();
    let shed = ShedLayer {
        shedder: shedding.shedder("grpc")?,
    };
    // The served methods are labels; health checks are counted too (reflection's calls are `-`).
    let mut described = vec![
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ];
    described.extend(bench);
    let metered = metrics.map(|m| GrpcMetricsLayer::new(m, &described));
    let router = builder
        // Outermost: every call counted, the shed and refused ones too.
        .layer(tower::util::option_layer(metered))
        // A shed call costs no credential check.
        .layer(shed)
        .layer(auth)
        // Inside the auth layer (tonic stacks later layers inside): the caller is known, for
        // whose trace context to believe and whose rate limits to count. The span covers the
        // rate-limit refusals.
        .layer(GrpcTraceLayer::new(tracing, TRACED_SERVICES))
        // Inside the trace layer: a failed call's record carries its request and trace ids.
        .layer(GrpcCallLogLayer::new(logger.clone(), TRACED_SERVICES))
        .layer(GrpcRateLimitLayer::new(module.resolve()))
        .add_service(health_service)
        // Off in prod by default (server.grpc.reflection): it maps the API for anyone.
        .add_optional_service(config.reflection.then_some(reflection_v1))
        .add_optional_service(config.reflection.then_some(reflection_v1alpha))
        .add_service(
            HelloServiceServer::new(hello).max_decoding_message_size(config.max_message_size),
        )
        .add_service(
            UserServiceServer::new(users).max_decoding_message_size(config.max_message_size),
        )
        // The overload benchmark's CPU-bound call (server.debug_routes; never in prod).
        .add_optional_service(burn);
    // The generated resources' services, each resolved from the module.
    // generate:grpc-services (`go_example generate resource --grpc` adds its services above this line)

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // TCP_NODELAY, as tonic's own `serve` and grpc-go set it: a unary answer leaves at once.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // The answers of the calls in flight leave together, in one TLS record and one write
    // (batched_io.rs).
    let incoming = futures_util::StreamExt::map(incoming, |io| io.map(BatchedWrites::new));
    let mut server = std::pin::pin!(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stop_rx.await;
    }));
    tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        () = shutdown => {}
    }
    slog::info!(logger, "shutdown requested; draining in-flight calls");
    let _ = stop_tx.send(());
    match tokio::time::timeout(config.shutdown_timeout, server).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => {
            slog::warn!(logger, "in-flight calls outlived server.grpc.shutdown_timeout; stopping";
                "timeout" => ?config.shutdown_timeout);
            Ok(())
        }
    }
}

/// Services that answer without credentials: health checkers and reflection clients carry none
/// (the original requested client certificates but never required them, for the same reason).
fn open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// What a call may authenticate with.
struct Credentials {
    /// The shared `user` / `password` metadata check (throttled per client).
    service: Arc<dyn CallerAuthService>,
    /// The auth service, when access tokens are accepted (`server.grpc.auth.jwt`).
    jwt: Option<Arc<dyn AuthService>>,
}

/// The client's address bucket of a call (an IPv4 address or an IPv6 /64), from the
/// connection tonic recorded.
fn client_bucket<B>(request: &http::Request<B>) -> String {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let extensions = request.extensions();
    let peer = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
        .or_else(|| {
            extensions
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
        });
    match peer {
        Some(addr) => ClientAddr::new(addr.ip()).bucket(),
        None => "unknown".to_owned(),
    }
}

/// The metadata keys of the shared credentials, made once (a `&str` key is parsed per lookup).
const USER: http::HeaderName = http::HeaderName::from_static("user");
const PASSWORD: http::HeaderName = http::HeaderName::from_static("password");

impl Credentials {
    /// Checks the call's metadata: `user` + `password` (constant time, throttled per client),
    /// else `authorization: Bearer <access token>` with the single sign-on check; answers who
    /// the caller is.
    /// `service` is the call's `user` and `password` with its client's address bucket, made by
    /// the caller only when the call carries both (the token path needs no bucket).
    async fn check(
        &self,
        headers: &http::HeaderMap,
        service: Option<(&[u8], &[u8], String)>,
    ) -> Result<Caller, Status> {
        if let Some((user, password, client)) = service {
            return self
                .service
                .check_service(user, password, &client)
                .await
                .map_err(|e| status(&e));
        }
        if let (Some(auth), Some(value)) = (&self.jwt, headers.get(http::header::AUTHORIZATION)) {
            let token = header_text(value.as_bytes())
                .and_then(bearer)
                .ok_or_else(|| status(&ServiceError::Unauthorized("not a bearer token".into())))?;
            return auth
                .authenticate(token)
                .await
                .map(Caller::User)
                .map_err(|e| status(&e));
        }
        Err(status(&ServiceError::Unauthorized(
            "missing credentials".into(),
        )))
    }
}

/// The layer that authenticates every call but health checks and reflection.
#[derive(Clone)]
struct CallAuthLayer {
    credentials: Arc<Credentials>,
    /// Calls that passed authentication (`GrpcApplication::calls_served`).
    served: Arc<std::sync::atomic::AtomicU64>,
}

impl<S> tower::Layer<S> for CallAuthLayer {
    type Service = CallAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallAuth {
            inner,
            credentials: self.credentials.clone(),
            served: self.served.clone(),
        }
    }
}

/// [`CallAuthLayer`]'s service: a call without valid credentials is answered
/// `UNAUTHENTICATED` before it reaches a controller.
#[derive(Clone)]
pub struct CallAuth<S> {
    inner: S,
    credentials: Arc<Credentials>,
    served: Arc<std::sync::atomic::AtomicU64>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for CallAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if open_path(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        // The ready service goes with this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let credentials = self.credentials.clone();
        let served = self.served.clone();
        Box::pin(async move {
            let headers = request.headers();
            let service = headers
                .get(&USER)
                .zip(headers.get(&PASSWORD))
                .map(|(user, password)| {
                    (
                        user.as_bytes(),
                        password.as_bytes(),
                        client_bucket(&request),
                    )
                });
            match credentials.check(headers, service).await {
                Ok(caller) => {
                    served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // For the controllers: who calls (tonic hands http extensions on).
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// Health checks are never shed: an overloaded instance still answers its orchestrator.
fn never_shed(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// The layer that asks the app's load shedder about every call but health checks
/// (docs/overload.md): a dropped call is answered `RESOURCE_EXHAUSTED` with `x-error-code:
/// 10015` at once, before its message is read or its credentials checked.
#[derive(Clone)]
struct ShedLayer {
    shedder: AppShedder,
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = ShedCalls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedCalls {
            inner,
            shedder: self.shedder.clone(),
        }
    }
}

/// [`ShedLayer`]'s service.
#[derive(Clone)]
pub struct ShedCalls<S> {
    inner: S,
    shedder: AppShedder,
}

impl<S, B> tower::Service<http::Request<B>> for ShedCalls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ShedCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.shedder.is_enabled() || never_shed(request.uri().path()) {
            return ShedCall::Through {
                fut: self.inner.call(request),
            };
        }
        match self.shedder.admit() {
            Ok(admission) => ShedCall::Tracked {
                fut: self.inner.call(request),
                admission: Some(admission),
            },
            Err(busy) => ShedCall::Dropped {
                status: Some(status(&busy)),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`ShedCalls`]: the inner service's, reported to the shedder when
    /// admitted, or the refusal.
    #[project = ShedCallProj]
    pub enum ShedCall<F> {
        /// Shedding off, or a health check.
        Through { #[pin] fut: F },
        /// Admitted: reported when the answer's head is ready.
        Tracked { #[pin] fut: F, admission: Option<Admission> },
        /// Refused.
        Dropped { status: Option<Status> },
    }
}

impl<F, E> Future for ShedCall<F>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ShedCallProj::Through { fut } => fut.poll(cx),
            ShedCallProj::Tracked { fut, admission } => {
                let result = std::task::ready!(match admission {
                    Some(admission) => admission.poll(fut, cx),
                    None => fut.poll(cx),
                });
                if let Some(admission) = admission.take() {
                    admission.finish(match &result {
                        Ok(response) => server_failure(response),
                        Err(_) => true,
                    });
                }
                Poll::Ready(result)
            }
            ShedCallProj::Dropped { status } => Poll::Ready(Ok(status
                .take()
                .unwrap_or_else(|| self::status(&ServiceError::ServerBusy))
                .into_http())),
        }
    }
}

/// Whether a call's answer is a server-side failure, the gRPC codes of an HTTP 5xx: an error
/// answered at once carries its `grpc-status` in the head (a trailers-only answer); a call
/// that answers a message has its status in the trailers, and counts as served.
fn server_failure(response: &http::Response<tonic::body::Body>) -> bool {
    use tonic::Code;
    let Some(code) = response.headers().get("grpc-status") else {
        return false;
    };
    let code = Code::from_bytes(code.as_bytes());
    matches!(
        code,
        Code::Unknown
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
            | Code::DeadlineExceeded
    )
}

//! The gRPC app's call metrics (`go_example_grpc_requests_total`, `..._request_duration_seconds`,
//! and `go_example_errors_total` for an answer carrying an envelope code): the outermost layer,
//! so calls the load shedder or the credential check refuse are counted too. A call is
//! counted when its answer's head leaves: an answered unary call is `OK` then (its status is in
//! the trailers); a failure answered at once carries its status in the head.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prost::Message;
use tonic::Code;

use crate::middleware::grpc_call_log::{Head, envelope_code};

/// The layer. Only the methods of the served descriptors are labels: a call to any other path
/// (a made-up method of a served service included, which the credential check or the router
/// refuses) is counted as service and method `-`, so a client cannot make series.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: goex_metrics::Metrics,
    calls: goex_metrics::GrpcCallMetrics,
    /// `/package.Service/Method` of every served method.
    methods: Arc<HashSet<String>>,
}

impl GrpcMetricsLayer {
    /// Counts calls on `metrics`, labelling the methods `descriptor_sets` (encoded
    /// `FileDescriptorSet`s of the served services) declare.
    pub fn new(metrics: goex_metrics::Metrics, descriptor_sets: &[&[u8]]) -> Self {
        let mut methods = HashSet::new();
        for set in descriptor_sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let full = match file.package() {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    for method in &service.method {
                        methods.insert(format!("/{full}/{}", method.name()));
                    }
                }
            }
        }
        Self {
            calls: metrics.grpc_calls(),
            metrics,
            methods: Arc::new(methods),
        }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// [`GrpcMetricsLayer`]'s service.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    layer: GrpcMetricsLayer,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Metered<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().clone();
        Metered {
            call: self.inner.call(request),
            started: Instant::now(),
            path: Some(path),
            layer: self.layer.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's answer, counted when its head is ready.
    pub struct Metered<F> {
        #[pin]
        call: F,
        started: Instant,
        path: Option<http::Uri>,
        layer: GrpcMetricsLayer,
    }
}

impl<F, E> Future for Metered<F>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.call.poll(cx));
        if let Some(path) = this.path.take() {
            let seconds = this.started.elapsed().as_secs_f64();
            count(this.layer, path.path(), &result, seconds);
        }
        Poll::Ready(result)
    }
}

fn count<E>(
    layer: &GrpcMetricsLayer,
    path: &str,
    result: &Result<http::Response<tonic::body::Body>, E>,
    seconds: f64,
) {
    let (code, envelope) = match Head::of(result) {
        Head::Answered => (Code::Ok, None),
        Head::ServiceFailed => (Code::Internal, None),
        Head::Failed(status) => (
            status.code(),
            envelope_code(&status).and_then(|c| c.parse::<u32>().ok()),
        ),
    };
    let (service, method) = if layer.methods.contains(path) {
        path[1..].split_once('/').unwrap_or(("-", "-"))
    } else {
        ("-", "-")
    };
    layer
        .calls
        .observe(service, method, code_name(code), seconds);
    if let Some(envelope) = envelope {
        layer.metrics.error_code(envelope);
    }
}

/// The canonical name of a gRPC code (`OK`, `UNAVAILABLE`, ...), as other gRPC servers label
/// their metrics.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    const SERVED: &[&[u8]] = &[crate::proto::FILE_DESCRIPTOR_SET];

    async fn answer(metrics: &goex_metrics::Metrics, path: &str, status: Option<tonic::Status>) {
        let inner = tower::service_fn(move |_: http::Request<()>| {
            let status = status.clone();
            async move {
                Ok::<_, std::convert::Infallible>(match status {
                    Some(status) => status.into_http(),
                    None => http::Response::new(tonic::body::Body::empty()),
                })
            }
        });
        let mut service = GrpcMetricsLayer::new(metrics.clone(), SERVED).layer(inner);
        let request = http::Request::builder().uri(path).body(()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap();
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn calls_are_counted_by_method_and_code_and_envelopes_by_their_code() {
        let metrics = goex_metrics::Metrics::new().unwrap();
        answer(&metrics, "/user.UserService/GetUser", None).await;
        answer(&metrics, "/user.UserService/GetUser", None).await;
        let mut refused = tonic::Status::unauthenticated("no credentials");
        refused
            .metadata_mut()
            .insert(crate::proto::ERROR_CODE_KEY, "10010".parse().unwrap());
        answer(&metrics, "/user.UserService/GetUser", Some(refused)).await;
        answer(
            &metrics,
            "/made.Up/Anything",
            Some(tonic::Status::unimplemented("")),
        )
        .await;
        // A made-up method of a served service is no label either.
        answer(
            &metrics,
            "/user.UserService/Made_Up_42",
            Some(tonic::Status::unauthenticated("")),
        )
        .await;
        answer(&metrics, "/hello.HelloService/SayHello", None).await;
        let text = metrics.render();
        let series = |labels: &str| {
            value(
                &text,
                &format!("go_example_grpc_requests_total{{{labels}}}"),
            )
        };
        assert_eq!(
            series(r#"code="OK",method="GetUser",service="user.UserService""#),
            Some(2.0)
        );
        assert_eq!(
            series(r#"code="UNAUTHENTICATED",method="GetUser",service="user.UserService""#),
            Some(1.0)
        );
        assert_eq!(
            series(r#"code="UNIMPLEMENTED",method="-",service="-""#),
            Some(1.0)
        );
        assert_eq!(
            series(r#"code="UNAUTHENTICATED",method="-",service="-""#),
            Some(1.0)
        );
        assert_eq!(
            series(r#"code="OK",method="SayHello",service="hello.HelloService""#),
            Some(1.0)
        );
        assert!(!text.contains("Made_Up_42"), "{text}");
        assert_eq!(
            value(&text, r#"go_example_errors_total{code="10010"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"go_example_grpc_request_duration_seconds_count{method="GetUser",service="user.UserService"}"#
            ),
            Some(3.0)
        );
    }
}

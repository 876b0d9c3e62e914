//! The gRPC app's one record of a failed call, as the HTTP app's lifecycle writes one for a
//! failed request (`web::envelope::OutgoingError::log`): `call failed` at error for the codes
//! that mean the server failed, `call rejected` at debug for the rest (the caller's mistake or
//! a refusal). An answered call writes nothing.
//!
//! The layer runs inside the trace layer (`middleware::grpc_trace`), so with tracing on its
//! records carry the call's `request_id`, `trace_id` and `span_id`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Code;

use crate::middleware::grpc_trace::{method_of, server_failure};

/// The layer; `services` are the served services' full names (a call to another path is
/// recorded as method `-`, so made-up paths never reach the logs).
#[derive(Clone)]
pub struct GrpcCallLogLayer {
    logger: slog::Logger,
    services: &'static [&'static str],
}

impl GrpcCallLogLayer {
    /// Records failed calls on `logger`.
    pub fn new(logger: slog::Logger, services: &'static [&'static str]) -> Self {
        Self { logger, services }
    }
}

impl<S> tower::Layer<S> for GrpcCallLogLayer {
    type Service = GrpcCallLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcCallLog {
            inner,
            layer: self.clone(),
        }
    }
}

/// [`GrpcCallLogLayer`]'s service.
#[derive(Clone)]
pub struct GrpcCallLog<S> {
    inner: S,
    layer: GrpcCallLogLayer,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcCallLog<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The path is reference-counted: keeping it costs no copy.
        let path = request.uri().clone();
        Logged {
            call: self.inner.call(request),
            path: Some(path),
            layer: self.layer.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's answer, recorded when it is a failure.
    pub struct Logged<F> {
        #[pin]
        call: F,
        path: Option<http::Uri>,
        layer: GrpcCallLogLayer,
    }
}

impl<F, E> Future for Logged<F>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.call.poll(cx));
        if let Some(path) = this.path.take() {
            record(this.layer, path.path(), &result);
        }
        Poll::Ready(result)
    }
}

/// The head's status key (trailers-only answers carry it there).
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// What a call's answer head tells (this layer's record and the metrics layer's count).
pub(crate) enum Head {
    /// No status in the head: answered (its status is in the trailers, OK unless its body
    /// fails later). One lookup by a name known at compile time.
    Answered,
    /// A failure answered at once (trailers-only), its status decoded.
    Failed(tonic::Status),
    /// The service itself failed (no answer).
    ServiceFailed,
}

impl Head {
    /// Reads `result`'s head.
    pub(crate) fn of<E>(result: &Result<http::Response<tonic::body::Body>, E>) -> Self {
        match result {
            Err(_) => Self::ServiceFailed,
            Ok(response) if !response.headers().contains_key(GRPC_STATUS) => Self::Answered,
            Ok(response) => match tonic::Status::from_header_map(response.headers()) {
                Some(status) if status.code() != Code::Ok => Self::Failed(status),
                _ => Self::Answered,
            },
        }
    }
}

/// The envelope code (`x-error-code`) a failure carries: what the caller was told.
pub(crate) fn envelope_code(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(crate::proto::ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
}

/// Writes the record of a failed call; nothing for an answered one.
fn record<E>(
    layer: &GrpcCallLogLayer,
    path: &str,
    result: &Result<http::Response<tonic::body::Body>, E>,
) {
    let status = match Head::of(result) {
        Head::Answered => return,
        Head::ServiceFailed => {
            slog::error!(layer.logger, "call failed"; "method" => method(path, layer.services),
                "code" => Code::Internal as i32, "error" => "the service failed");
            return;
        }
        Head::Failed(status) => status,
    };
    let code = status.code();
    let method = method(path, layer.services);
    let error_code = envelope_code(&status).unwrap_or("");
    if server_failure(code) {
        slog::error!(layer.logger, "call failed"; "method" => method, "code" => code as i32,
            "error_code" => error_code, "error" => status.message());
    } else {
        slog::debug!(layer.logger, "call rejected"; "method" => method, "code" => code as i32,
            "error_code" => error_code, "error" => status.message());
    }
}

/// `service/method` of a served method, else `-`.
fn method(path: &str, services: &[&'static str]) -> String {
    method_of(path, services).map_or_else(|| "-".to_owned(), |(s, m)| format!("{s}/{m}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tower::{Layer, Service, ServiceExt};

    /// A record's message, level and key-values, as strings.
    type Seen = (String, slog::Level, Vec<(String, String)>);

    /// The records written.
    #[derive(Clone, Default)]
    struct Records(Arc<Mutex<Vec<Seen>>>);

    impl slog::Drain for Records {
        type Ok = ();
        type Err = slog::Never;
        fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
            struct Kv(Vec<(String, String)>);
            impl slog::Serializer for Kv {
                fn emit_arguments(
                    &mut self,
                    key: slog::Key,
                    val: &std::fmt::Arguments<'_>,
                ) -> slog::Result {
                    self.0.push((key.to_string(), val.to_string()));
                    Ok(())
                }
            }
            let mut kv = Kv(Vec::new());
            let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
            self.0
                .lock()
                .unwrap()
                .push((record.msg().to_string(), record.level(), kv.0));
            Ok(())
        }
    }

    const SERVED: &[&str] = &["user.UserService"];

    async fn answer(records: &Records, path: &str, status: Option<tonic::Status>) {
        let logger = slog::Logger::root(records.clone(), slog::o!());
        let inner = tower::service_fn(move |_: http::Request<()>| {
            let status = status.clone();
            async move {
                Ok::<_, std::convert::Infallible>(match status {
                    Some(status) => status.into_http(),
                    None => http::Response::new(tonic::body::Body::empty()),
                })
            }
        });
        let mut service = GrpcCallLogLayer::new(logger, SERVED).layer(inner);
        let request = http::Request::builder().uri(path).body(()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap();
    }

    #[tokio::test]
    async fn a_failure_is_recorded_once_by_who_failed_and_an_answer_not_at_all() {
        let records = Records::default();
        answer(&records, "/user.UserService/GetUser", None).await;
        assert!(records.0.lock().unwrap().is_empty());

        let mut internal = tonic::Status::internal("internal error");
        internal
            .metadata_mut()
            .insert(crate::proto::ERROR_CODE_KEY, "10001".parse().unwrap());
        answer(&records, "/user.UserService/GetUser", Some(internal)).await;
        answer(
            &records,
            "/made.Up/GetUser",
            Some(tonic::Status::not_found("not found")),
        )
        .await;
        let seen = records.0.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            2,
            "{:?}",
            seen.iter().map(|r| &r.0).collect::<Vec<_>>()
        );
        let field = |i: usize, key: &str| {
            seen[i]
                .2
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            (seen[0].0.as_str(), seen[0].1),
            ("call failed", slog::Level::Error)
        );
        assert_eq!(
            field(0, "method").as_deref(),
            Some("user.UserService/GetUser")
        );
        assert_eq!(field(0, "code").as_deref(), Some("13"));
        assert_eq!(field(0, "error_code").as_deref(), Some("10001"));
        assert_eq!(field(0, "error").as_deref(), Some("internal error"));
        assert_eq!(
            (seen[1].0.as_str(), seen[1].1),
            ("call rejected", slog::Level::Debug)
        );
        assert_eq!(
            field(1, "method").as_deref(),
            Some("-"),
            "a path not served"
        );
        assert_eq!(field(1, "code").as_deref(), Some("5"));
    }
}

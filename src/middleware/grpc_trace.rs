//! The gRPC app's server spans (docs/tracing.md): a tower layer inside the auth layer, so the
//! caller is known when its trace context is weighed. A call made with the shared service
//! credentials (the HTTP app's `GET /grpc/hello`, `repository::rpc`) continues the caller's
//! trace from its `traceparent` metadata; anyone else's is ignored unless
//! `tracing.trust_incoming` (a client could otherwise choose trace ids or force sampling).
//!
//! A traced call is served as a request of `goex_logging::request` (`scope_traced`): every
//! record made while it runs carries `request_id`, `trace_id` and `span_id`. Its request id is
//! the caller's `x-request-id` when the caller's trace is believed (the HTTP app forwards the
//! id of the request it serves), else a new one; it goes back in the answer's metadata.
//!
//! A shed call and one refused at authentication never reach this layer: they have no server
//! span (the caller's client span records the refusal).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use goex_tracing::{IncomingHeaders, KeyValue, Span, TRACEPARENT, Tracing};
use tonic::Code;

use crate::middleware::grpc_rate_limit::peer;
use crate::middleware::request_id::{RequestIdGenerator, acceptable_id};
use crate::proto::REQUEST_ID_KEY;
use crate::service::caller::Caller;

/// The span name of a call to a method that is not served (`UNIMPLEMENTED`): the system alone,
/// so made-up method names cannot multiply span names.
const UNKNOWN_METHOD: &str = "grpc";

/// The layer; `services` are the full names of the served services (`hello.HelloService`),
/// whose calls are named after their method.
#[derive(Clone)]
pub struct GrpcTraceLayer {
    tracing: Tracing,
    services: &'static [&'static str],
    ids: Arc<RequestIdGenerator>,
}

impl GrpcTraceLayer {
    /// Server spans of `tracing` (a pass-through when it is off).
    pub fn new(tracing: Tracing, services: &'static [&'static str]) -> Self {
        Self {
            tracing,
            services,
            ids: Arc::new(RequestIdGenerator::new()),
        }
    }
}

impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace {
            inner,
            tracing: self.tracing.clone(),
            services: self.services,
            ids: self.ids.clone(),
        }
    }
}

/// [`GrpcTraceLayer`]'s service.
#[derive(Clone)]
pub struct GrpcTrace<S> {
    inner: S,
    tracing: Tracing,
    services: &'static [&'static str],
    ids: Arc<RequestIdGenerator>,
}

type Traced<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for GrpcTrace<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Traced<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.tracing.is_on() {
            return Either::Left(self.inner.call(request));
        }
        let believed = self.tracing.trusts_incoming()
            || matches!(request.extensions().get::<Caller>(), Some(Caller::Service));
        let Some(mut span) = self.start(&request, believed) else {
            return Either::Left(self.inner.call(request));
        };
        let (scope, echo) = self.request_scope(&request, believed, span.context());
        let method = span
            .is_recording()
            .then(|| method_of(request.uri().path(), self.services))
            .flatten();
        if let Some((service, name)) = &method {
            span.rename(format!("{service}/{name}"));
        }
        let call = goex_tracing::serve(scope, span.context(), self.inner.call(request));
        Either::Right(Box::pin(async move {
            let mut result = call.await;
            if span.is_recording() {
                describe_answer(&mut span, method, &result);
            }
            span.end();
            if let (Ok(response), Some(echo)) = (&mut result, echo) {
                response.headers_mut().insert(REQUEST_ID_KEY, echo);
            }
            result
        }))
    }
}

impl<S> GrpcTrace<S> {
    /// The call's server span, continuing the caller's trace when the caller is `believed`.
    fn start<B>(&self, request: &http::Request<B>, believed: bool) -> Option<Span> {
        let believed = believed && request.headers().contains_key(TRACEPARENT);
        let headers = believed.then(|| IncomingHeaders::new(request.headers()));
        let incoming = headers.as_ref().map(|h| h as &dyn goex_tracing::Extractor);
        let mut span = self.tracing.server_span(UNKNOWN_METHOD, incoming)?;
        if span.is_recording() {
            span.set_attributes([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("client.address", peer(request).to_string()),
            ]);
        }
        Some(span)
    }

    /// The scope of the call served by `span`, and its request id for the answer's metadata:
    /// the caller's id when the caller is `believed` and the id is sane, else a new one.
    fn request_scope<B>(
        &self,
        request: &http::Request<B>,
        believed: bool,
        span: &goex_tracing::SpanContext,
    ) -> (
        goex_logging::request::RequestScope,
        Option<http::HeaderValue>,
    ) {
        let given = request
            .headers()
            .get(REQUEST_ID_KEY)
            .filter(|_| believed)
            .filter(|v| acceptable_id(v.as_bytes()))
            .and_then(|v| Some((v.to_str().ok()?, v)));
        match given {
            Some((id, value)) => (goex_tracing::request_scope(id, span), Some(value.clone())),
            None => {
                let id = self.ids.next_id();
                let scope = goex_tracing::request_scope(id.to_str().unwrap_or("-"), span);
                (scope, http::HeaderValue::from_bytes(id.as_bytes()).ok())
            }
        }
    }
}

/// `(service, method)` of a call's path `/{service}/{method}` when the service is served and
/// the method is a protobuf identifier (at most 64 bytes); else `None`, and the span keeps
/// the name [`UNKNOWN_METHOD`].
pub(crate) fn method_of(path: &str, services: &[&'static str]) -> Option<(&'static str, String)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let service = services.iter().copied().find(|s| *s == service)?;
    let identifier = !method.is_empty()
        && method.len() <= 64
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    identifier.then(|| (service, method.to_owned()))
}

/// The call's status on its span: `rpc.grpc.status_code`, the method's attributes (for a
/// method served), and an error status for the codes that mean the server failed.
fn describe_answer<E>(
    span: &mut Span,
    method: Option<(&'static str, String)>,
    result: &Result<http::Response<tonic::body::Body>, E>,
) {
    let code = match result {
        // A call answered at once (an error) carries its status in the head (trailers-only);
        // one that answered a message has it in the trailers, after this: OK unless its body
        // failed later.
        Ok(response) => response
            .headers()
            .get("grpc-status")
            .map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes())),
        Err(_) => Code::Internal,
    };
    span.set_attributes([KeyValue::new("rpc.grpc.status_code", code as i64)]);
    match (method, code) {
        (_, Code::Unimplemented) => span.rename(UNKNOWN_METHOD.to_owned()),
        (Some((service, name)), _) => span.set_attributes([
            KeyValue::new("rpc.service", service),
            KeyValue::new("rpc.method", name),
        ]),
        (None, _) => {}
    }
    if server_failure(code) {
        span.set_error(Cow::Owned(format!("{code:?}")));
    }
}

/// The codes a server span marks as errors (OpenTelemetry's RPC conventions for gRPC).
pub(crate) fn server_failure(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVED: &[&str] = &["hello.HelloService", "grpc.health.v1.Health"];

    #[test]
    fn a_call_is_named_after_its_method_only_on_a_served_service() {
        assert_eq!(
            method_of("/hello.HelloService/SayHello", SERVED),
            Some(("hello.HelloService", "SayHello".to_owned()))
        );
        assert_eq!(
            method_of("/grpc.health.v1.Health/Check", SERVED),
            Some(("grpc.health.v1.Health", "Check".to_owned()))
        );
        // Not served, not a method name, too long, or not a call's path: no name from it.
        for path in [
            "/made.Up/SayHello",
            "/hello.HelloService/",
            "/hello.HelloService/Say-Hello",
            "/hello.HelloService/Say/Hello",
            &format!("/hello.HelloService/{}", "a".repeat(65)),
            "hello.HelloService/SayHello",
            "/",
            "",
        ] {
            assert_eq!(method_of(path, SERVED), None, "{path}");
        }
        assert!(method_of(&format!("/hello.HelloService/{}", "a".repeat(64)), SERVED).is_some());
    }

    #[test]
    fn the_server_failure_codes_are_the_conventions() {
        let failures: Vec<Code> = (0..=16)
            .map(Code::from_i32)
            .filter(|c| server_failure(*c))
            .collect();
        assert_eq!(
            failures,
            [
                Code::Unknown,
                Code::DeadlineExceeded,
                Code::Unimplemented,
                Code::Internal,
                Code::Unavailable,
                Code::DataLoss
            ]
        );
    }
}

//! The one middleware every request passes: it gives the request its id (`request_id`), catches
//! a panicking handler (`catch_panic`), turns every error into the unified envelope in the
//! client's language and logs it once (`web::envelope::OutgoingError`), echoes the id on the
//! response, and writes the access record (`access_log`). It resolves the client's address once
//! (`web::client_addr`), tells the connection that a request head is complete (`head_deadline`), and
//! when read-your-writes is on, runs the request as a database session (`X-Session-Id`, else the
//! request id), so its reads follow its writes to the primary. When tracing is on, it runs the
//! request as an OpenTelemetry server span (docs/tracing.md): named after its route, continuing
//! the caller's W3C trace only when the caller is believed, its ids on every log record and
//! error envelope of the request.
//!
//! One layer instead of four: each layer costs a boxed future per request, and the whole stack
//! is held to 90 % of a bare actix-web server's throughput (docs/benchmarks.md).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Ready, ready};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::InternalError;
use actix_web::http::{Method, StatusCode, Version, header};
use actix_web::{Error, HttpMessage, HttpRequest};
use futures_util::FutureExt;
use futures_util::future::Either;
use futures_util::future::LocalBoxFuture;
use goex_metrics::RouteMetrics;
use goex_tracing::{Extractor, HeaderLines, IncomingHeaders, KeyValue, Span, TRACEPARENT};
use slog::Logger;

use crate::meta::trusted_proxies::TrustedProxies;
use crate::middleware::access_log::{self, PeerText};
use crate::middleware::catch_panic::panic_error;
use crate::middleware::head_deadline::HeadClock;
use crate::middleware::request_id::{
    REQUEST_ID_HEADER, RequestIdGenerator, SESSION_ID_HEADER, acceptable,
};
use crate::service::{audit, session};
use crate::web::auth::{AdminRequest, AuthenticatedUserId};
use crate::web::client_addr;
use crate::web::envelope::OutgoingError;
use crate::web::rate_limit;

/// The `route` label of requests no route matched (404s: their paths are not labels).
const UNMATCHED_ROUTE: &str = "unmatched";

/// The middleware factory.
#[derive(Clone)]
pub struct RequestLifecycle {
    logger: Logger,
    access_log: bool,
    sessions: bool,
    ids: Arc<RequestIdGenerator>,
    trusted: Arc<TrustedProxies>,
    metrics: Option<goex_metrics::Metrics>,
    tracing: goex_tracing::Tracing,
}

impl RequestLifecycle {
    /// Errors (and, when `access_log`, access records) go to `logger`; ids come from `ids`;
    /// `sessions` runs each request as a read-your-writes session; `trusted` proxies'
    /// forwarding headers name the client.
    pub fn new(
        logger: &Logger,
        access_log: bool,
        sessions: bool,
        ids: Arc<RequestIdGenerator>,
        trusted: Arc<TrustedProxies>,
        metrics: Option<goex_metrics::Metrics>,
    ) -> Self {
        Self {
            logger: logger.clone(),
            access_log,
            sessions,
            ids,
            trusted,
            metrics,
            tracing: goex_tracing::Tracing::off(),
        }
    }

    /// Runs each request as a server span of `tracing` (off: no span, nothing allocated).
    pub fn traced(mut self, tracing: goex_tracing::Tracing) -> Self {
        self.tracing = tracing;
        self
    }
}

/// The W3C headers the caller sent, read through actix's own header map (http 0.2 names, not
/// the `http` 1 map the OpenTelemetry crates know).
struct ActixHeaders<'a>(&'a header::HeaderMap);

impl HeaderLines for ActixHeaders<'_> {
    fn lines<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a str> {
        self.0.get_all(name).filter_map(|v| v.to_str().ok())
    }

    fn names(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span name before routing: the method, static (semantic conventions: `HTTP` for a method
/// they do not know), so a span that is not recorded costs no allocation for its name.
fn span_method(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("HTTP")
}

/// Longest `url.path` and `user_agent.original` a span keeps, in bytes: both come from the
/// client, and with the collector down a whole queue of spans holds them.
const CLIENT_TEXT_MAX: usize = 512;

/// `text`, cut to at most [`CLIENT_TEXT_MAX`] bytes on a character boundary.
fn clipped(text: &str) -> String {
    let mut end = text.len().min(CLIENT_TEXT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What a recorded span says of the request as it arrives (HTTP semantic conventions): its name
/// and `http.route` from the route's template (never the raw path; actix matches it by path, so
/// it is known before the handler runs), and the request's attributes. Set now rather than
/// when answered, so a request cancelled before its answer still has them.
fn describe_request(span: &mut Span, req: &ServiceRequest, client: &client_addr::ClientAddr) {
    let method = span_method(req.method());
    let mut attributes = Vec::with_capacity(7);
    attributes.extend([
        KeyValue::new(
            "http.request.method",
            if method == "HTTP" { "_OTHER" } else { method },
        ),
        KeyValue::new("url.path", clipped(req.path())),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("client.address", client.text()),
        KeyValue::new(
            "network.protocol.version",
            match req.version() {
                Version::HTTP_10 => "1.0",
                Version::HTTP_2 => "2",
                _ => "1.1",
            },
        ),
    ]);
    if let Some(agent) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("user_agent.original", clipped(agent)));
    }
    // No route matched: the span keeps its name, the method.
    if let Some(route) = req.match_pattern() {
        let mut name = String::with_capacity(method.len() + 1 + route.len());
        name.push_str(method);
        name.push(' ');
        name.push_str(&route);
        span.rename(name);
        attributes.push(KeyValue::new("http.route", route));
    }
    span.set_attributes(attributes);
}

/// What a recorded span says once the request is answered: the status code, and an error
/// status on 5xx (a 4xx is the client's failure, not the server's, for a server span).
fn describe_answer(span: &mut Span, status: StatusCode) {
    span.set_attributes([KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    )]);
    if status.is_server_error() {
        span.fail(status.as_u16().to_string());
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestLifecycle
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Transform = RequestLifecycleService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLifecycleService {
            service: Rc::new(service),
            factory: self.clone(),
            routes: Rc::default(),
        }))
    }
}

/// The middleware service (one per worker).
pub struct RequestLifecycleService<S> {
    service: Rc<S>,
    factory: RequestLifecycle,
    routes: Rc<RouteCache>,
}

/// Most paths whose route metrics a worker keeps; past it (paths with parameters), a request
/// looks its route up again.
const ROUTE_CACHE_MAX: usize = 1024;

/// The metric handles of the routes a worker has served, by method and path, so a request
/// neither re-matches its path to a template nor looks labels up. Per worker, not shared.
#[derive(Default)]
pub struct RouteCache(RefCell<HashMap<Method, RouteMap, RouteHasher>>);

/// Paths are short and come from the process's own routes here; foldhash (seeded per process)
/// is several times cheaper than SipHash for them.
type RouteHasher = foldhash::fast::RandomState;
type RouteMap = HashMap<String, RouteMetrics, RouteHasher>;

impl RouteCache {
    fn record(
        &self,
        metrics: &goex_metrics::Metrics,
        req: &HttpRequest,
        method: &Method,
        status: StatusCode,
        seconds: f64,
        exemplar: Option<goex_metrics::Exemplar>,
    ) {
        let mut cache = self.0.borrow_mut();
        if let Some(route) = cache.get_mut(method).and_then(|m| m.get_mut(req.path())) {
            route.finished(status.as_u16(), status.as_str(), seconds);
            if let Some(ids) = exemplar {
                route.exemplify(seconds, ids);
            }
            return;
        }
        // The route's template, never the raw path (label values must stay bounded).
        let Some(pattern) = req.match_pattern() else {
            metrics.request_finished(UNMATCHED_ROUTE, method.as_str(), status.as_str(), seconds);
            return;
        };
        let mut route = metrics.route(&pattern, method.as_str());
        route.finished(status.as_u16(), status.as_str(), seconds);
        if let Some(ids) = exemplar {
            route.exemplify(seconds, ids);
        }
        if cache.values().map(RouteMap::len).sum::<usize>() < ROUTE_CACHE_MAX {
            cache
                .entry(method.clone())
                .or_default()
                .insert(req.path().to_owned(), route);
        }
    }
}

/// The W3C `traceparent` header's name.
const TRACEPARENT_HEADER: header::HeaderName = header::HeaderName::from_static(TRACEPARENT);

impl<S, B> Service<ServiceRequest> for RequestLifecycleService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        if let Some(clock) = req.conn_data::<HeadClock>() {
            clock.request_started();
        }
        let factory = self.factory.clone();
        if let Some(metrics) = &factory.metrics {
            metrics.request_started();
        }
        let routes = self.routes.clone();
        let peer = req.peer_addr().map(|a| a.ip());
        let client = client_addr::resolve(peer, req.headers(), &factory.trusted);
        // The server span, when tracing is on. The caller's trace is continued only when it is
        // believed: any caller with `tracing.trust_incoming`, else a trusted proxy.
        let span: Option<Span> = match factory.tracing.is_on() {
            false => None,
            true => {
                // The header is looked for only when it would be believed (a name known at
                // compile time: no parsing, no allocation).
                let believed = (factory.tracing.trusts_incoming()
                    || peer.is_some_and(|ip| factory.trusted.contains(ip)))
                    && req.headers().contains_key(TRACEPARENT_HEADER);
                let headers = believed.then(|| IncomingHeaders::new(ActixHeaders(req.headers())));
                let incoming = headers.as_ref().map(|h| h as &dyn Extractor);
                factory
                    .tracing
                    .server_span(span_method(req.method()), incoming)
            }
        };
        // Its ids for the request's log records and envelope, and its context as the current
        // span of the spans the handler makes.
        let trace = span.as_ref().map(|span| span.context().clone());
        // What the request's future keeps of it: a recorded span, described, boxed (so with
        // tracing off, or the span sampled out, the future carries one null pointer and
        // nothing is allocated); a span that is not recorded is its ids alone, in the scopes.
        let span: Option<Box<Span>> = span.filter(Span::is_recording).map(|mut span| {
            describe_request(&mut span, &req, &client);
            Box::new(span)
        });
        if !factory.trusted.is_empty() {
            // Headers were (maybe) parsed: keep the answer for `client_addr()`. Without trusted
            // proxies it is the peer, recomputed for free, so the hot path allocates nothing.
            req.extensions_mut().insert(client);
        }
        // The peer as formatted once per connection, when it is the client (no trusted proxy).
        let peer_text = match factory.trusted.is_empty() && factory.access_log {
            true => req.conn_data::<PeerText>().cloned(),
            false => None,
        };
        let id = factory
            .ids
            .accept_or_generate(req.headers().get(&REQUEST_ID_HEADER));
        // An Err carries no request: keep what the error path and the record need (cheap,
        // reference-counted clones).
        let accept_language = req.headers().get(header::ACCEPT_LANGUAGE).cloned();
        let (method, uri) = (req.method().clone(), req.uri().clone());
        // The request id for every record made while the request is served (and its envelope),
        // with the span's ids when traced.
        let id_text = id.to_str().unwrap_or("-");
        let request_scope = match &trace {
            None => goex_logging::request::RequestScope::new(id_text),
            Some(cx) => goex_tracing::request_scope(id_text, cx),
        };
        let session_key = factory.sessions.then(|| {
            match req
                .headers()
                .get(&SESSION_ID_HEADER)
                .filter(|v| acceptable(v))
            {
                Some(header) => Arc::<str>::from(header.to_str().unwrap_or("-")),
                None => request_scope.id(),
            }
        });
        let call = self.service.call(req);
        // Either, not a box: the common case (no session) costs no allocation.
        let fut = match session_key {
            Some(key) => Either::Left(session::scope(key, call)),
            None => Either::Right(call),
        };
        let fut = AssertUnwindSafe(fut).catch_unwind();
        let answer = async move {
            let outcome = match fut.await {
                Ok(result) => result,
                Err(panic) => Err(panic_error(panic.as_ref()).into()),
            };
            let result: Result<Self::Response, Error> = match outcome {
                Ok(res) => match res.response().error() {
                    None => Ok(res.map_into_left_body()),
                    Some(e) => {
                        let out = OutgoingError::of(e, res.status(), accept_language.as_ref());
                        out.log(&factory.logger, &method, uri.path());
                        if let Some(metrics) = &factory.metrics {
                            metrics.error_code(out.code);
                        }
                        match out.replacement(e) {
                            None => Ok(res.map_into_left_body()),
                            Some(mut body) => {
                                // The route's rate-limit headers stay on the re-rendered error.
                                rate_limit::carry_headers(res.headers(), body.headers_mut());
                                Ok(res.into_response(body).map_into_right_body())
                            }
                        }
                    }
                },
                Err(e) => {
                    let status = e.as_response_error().status_code();
                    let out = OutgoingError::of(&e, status, accept_language.as_ref());
                    out.log(&factory.logger, &method, uri.path());
                    if let Some(metrics) = &factory.metrics {
                        metrics.error_code(out.code);
                    }
                    let mut body = out.envelope(&e);
                    body.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
                    Err(InternalError::from_response(out.summary, body).into())
                }
            };
            let (status, user, admin) = match &result {
                Ok(res) => {
                    let extensions = res.request().extensions();
                    (
                        res.status(),
                        factory
                            .access_log
                            .then(|| extensions.get::<AuthenticatedUserId>().map(|u| u.0)),
                        extensions.get::<AdminRequest>().copied(),
                    )
                }
                Err(e) => (e.as_response_error().status_code(), None, None),
            };
            // An admin's request leaves its audit record whatever the access log does.
            if let (Some(AdminRequest(actor)), Ok(res)) = (admin, &result) {
                let action = match res.request().match_pattern() {
                    Some(pattern) => format!("{method} {pattern}"),
                    None => format!("{method} {}", uri.path()),
                };
                let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
                let actor = audit::Actor {
                    id: actor.to_string(),
                    client: client.to_string(),
                };
                audit::record(&factory.logger, &actor, &action, target, status.as_str());
            }
            // One clock read for the metrics and the access record.
            let elapsed = started.elapsed();
            if let Some(metrics) = &factory.metrics {
                let seconds = elapsed.as_secs_f64();
                // A sampled request's ids are its latency bucket's exemplar.
                let exemplar = span.as_ref().map(|span| goex_metrics::Exemplar {
                    trace_id: span.context().trace_id().to_bytes(),
                    span_id: span.context().span_id().to_bytes(),
                });
                match &result {
                    Ok(res) => {
                        routes.record(metrics, res.request(), &method, status, seconds, exemplar);
                    }
                    Err(_) => metrics.request_finished(
                        UNMATCHED_ROUTE,
                        method.as_str(),
                        status.as_str(),
                        seconds,
                    ),
                }
            }
            if let Some(mut span) = span {
                describe_answer(&mut span, status);
                Span::end(*span);
            }
            let result = result.map(|mut res| {
                res.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
                res
            });
            if factory.access_log {
                let request = access_log::Request {
                    method: &method,
                    path: uri.path(),
                    client: match &peer_text {
                        Some(PeerText(text)) => access_log::Client::Formatted(text),
                        None => access_log::Client::Resolved(client),
                    },
                    user_id: user.flatten(),
                };
                access_log::record(&factory.logger, &request, status, elapsed);
            }
            result
        };
        match trace {
            None => Box::pin(goex_logging::request::scope(request_scope, answer)),
            // The span is the current span of all the request runs (the parent of the spans
            // its handler makes), and its ids are on the request's log records.
            Some(cx) => Box::pin(goex_tracing::serve(request_scope, &cx, answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goex_tracing::TRACESTATE;

    #[test]
    fn tracestate_on_several_lines_is_read_as_one_list() {
        let mut headers = header::HeaderMap::new();
        let name = header::HeaderName::from_static(TRACESTATE);
        headers.append(name.clone(), header::HeaderValue::from_static("a=1"));
        headers.append(name.clone(), header::HeaderValue::from_static("b=2,c=3"));
        assert_eq!(
            IncomingHeaders::new(ActixHeaders(&headers)).get(TRACESTATE),
            Some("a=1,b=2,c=3")
        );
        let mut one = header::HeaderMap::new();
        one.insert(name, header::HeaderValue::from_static("a=1"));
        assert_eq!(
            IncomingHeaders::new(ActixHeaders(&one)).get(TRACESTATE),
            Some("a=1")
        );
        assert_eq!(
            IncomingHeaders::new(ActixHeaders(&one)).get(TRACEPARENT),
            None
        );
    }
}

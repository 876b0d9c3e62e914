//! One source for the HTTP routes. A controller registers each route through [`Routes::add`]
//! with the route's `#[utoipa::path]` item: actix routes the method and path the item declares,
//! and the OpenAPI document gets the item's operation, completed with every error the route can
//! answer. A route cannot be served without being documented, nor documented without being
//! served, and [`RouteTable`] (read back from the document) is what the 405 answer and the
//! route-coverage test use.

use std::collections::BTreeMap;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Resource, Responder, guard, web};
use goex_errors::ErrorCode;
use serde_json::json;
use utoipa::openapi::path::{HttpMethod, Operation, Paths};
use utoipa::openapi::{OpenApi, RefOr, Response, schema::Schema};
use utoipa_actix_web::OpenApiFactory;
use utoipa_actix_web::service_config::ServiceConfig;

/// The security scheme name protected routes declare (`security(("bearer" = []))`).
pub const BEARER: &str = "bearer";

/// The probes (`GET /healthz`, `GET /readyz`): never shed (docs/overload.md), so an
/// overloaded instance still tells its orchestrator that it lives and whether it is ready,
/// instead of being restarted for refusing the probe. (The metrics have their own listener.)
pub const PROBE_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Whether `path` (a request's path, or a route's template) is one of [`PROBE_PATHS`].
#[inline]
pub fn is_probe(path: &str) -> bool {
    PROBE_PATHS.contains(&path)
}

/// Registers documented routes on an actix `ServiceConfig` (see the module docs).
pub struct Routes<'c, 's> {
    cfg: &'c mut ServiceConfig<'s>,
    documenting: bool,
}

impl<'c, 's> Routes<'c, 's> {
    /// Wraps the utoipa-collecting service config of an app being built: routes are served
    /// and documented.
    pub fn new(cfg: &'c mut ServiceConfig<'s>) -> Self {
        Self {
            cfg,
            documenting: true,
        }
    }

    /// The same registrations, serving only: the operations are not built. Each server worker
    /// builds its app this way; the document is built once, with [`Routes::new`] (building it
    /// in every worker kept megabytes of fragments per worker thread's allocator arena).
    pub fn serving(cfg: &'c mut ServiceConfig<'s>) -> Self {
        Self {
            cfg,
            documenting: false,
        }
    }

    /// Serves `handler` at the method and path of `doc` (a `__path_*` item of
    /// `#[utoipa::path]`) and documents it with `errors`: the codes this route's own logic
    /// answers. The errors every route of its kind can answer are added for it: 10001 on every
    /// route, 10000 where there are parameters, 10000/10007/10012 where there is a body, and
    /// 10010/20001/20002 where the bearer token is required.
    pub fn add<P, F, Args>(&mut self, doc: P, errors: &[ErrorCode], handler: F) -> &mut Self
    where
        P: utoipa::Path + OpenApiFactory + 'static,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let methods: Vec<Method> = P::methods().into_iter().map(actix_method).collect();
        let path = P::path();
        let Some((first, others)) = methods.split_first() else {
            unreachable!("#[utoipa::path] requires a method")
        };
        // The method guards sit on the resource, as `ServiceConfig::route` puts them, so a
        // request with another method falls through to the app's default service (405).
        let methods = others
            .iter()
            .fold(guard::Any(guard::Method(first.clone())), |any, m| {
                any.or(guard::Method(m.clone()))
            });
        let resource = Resource::new(path.as_str())
            .guard(methods)
            .route(web::route().to(handler));
        self.cfg.service(Documented {
            doc: self.documenting.then_some(doc),
            errors: errors.to_vec(),
            resource,
        });
        self
    }
}

/// A resource together with the item documenting it (none when only serving).
struct Documented<P> {
    doc: Option<P>,
    errors: Vec<ErrorCode>,
    resource: Resource,
}

impl<P: 'static> HttpServiceFactory for Documented<P> {
    fn register(self, config: &mut AppService) {
        self.resource.register(config);
    }
}

impl<P: OpenApiFactory> OpenApiFactory for Documented<P> {
    fn paths(&self) -> Paths {
        let Some(doc) = &self.doc else {
            return Paths::new();
        };
        let mut paths = doc.paths();
        for (path, item) in &mut paths.paths {
            let sheddable = !is_probe(path);
            for (_, operation) in operations_mut(item) {
                if let Some(operation) = operation {
                    complete(operation, &self.errors, sheddable);
                }
            }
        }
        paths
    }

    fn schemas(&self, schemas: &mut Vec<(String, RefOr<Schema>)>) {
        if let Some(doc) = &self.doc {
            doc.schemas(schemas);
        }
    }
}

/// A path item's operations by method (every method OpenAPI has, in one order; `None`: not
/// served).
pub fn operations(item: &utoipa::openapi::PathItem) -> [(Method, Option<&Operation>); 8] {
    [
        (Method::GET, item.get.as_ref()),
        (Method::PUT, item.put.as_ref()),
        (Method::POST, item.post.as_ref()),
        (Method::DELETE, item.delete.as_ref()),
        (Method::OPTIONS, item.options.as_ref()),
        (Method::HEAD, item.head.as_ref()),
        (Method::PATCH, item.patch.as_ref()),
        (Method::TRACE, item.trace.as_ref()),
    ]
}

/// [`operations`], to change them.
pub fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> [(Method, Option<&mut Operation>); 8] {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::TRACE, item.trace.as_mut()),
    ]
}

fn actix_method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// Adds the implied error codes and one response per error status, and the request-id header
/// to every response. A `sheddable` route (all but the probes) may answer 503 / 10015 when
/// the load shedder is on.
fn complete(operation: &mut Operation, own: &[ErrorCode], sheddable: bool) {
    use goex_errors::*;
    let mut codes = own.to_vec();
    if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        codes.push(ERR_PARAM);
    }
    if operation.request_body.is_some() {
        codes.extend([ERR_PARAM, ERR_PAYLOAD_TOO_LARGE, ERR_REQUEST_TIMEOUT]);
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        codes.extend([ERR_UNAUTHORIZED, ERR_LOGIN_REMOTE, ERR_LOGIN_FAILURE]);
    }
    codes.push(ERR_SYSTEM);
    if sheddable {
        codes.push(ERR_SERVER_BUSY);
    }

    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        let same = by_status.entry(code.status).or_default();
        if !same.contains(&code) {
            same.push(code);
        }
    }
    let responses = &mut operation.responses.responses;
    for (status, codes) in by_status {
        responses.insert(status.to_string(), RefOr::T(error_response(status, &codes)));
    }
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .entry("X-Request-Id".to_owned())
                .or_insert_with(request_id_header);
        }
    }
}

/// Documents that a rate-limit rule can refuse `operation`: 429 / 10008 with `Retry-After`,
/// and the `RateLimit-*` headers on every response (not required: they are sent only while
/// `rate_limit.enabled`).
pub fn document_rate_limited(operation: &mut Operation) {
    use goex_errors::ERR_TOO_MANY_REQUESTS;
    let responses = &mut operation.responses.responses;
    let status = ERR_TOO_MANY_REQUESTS.status.to_string();
    let refused = responses
        .entry(status)
        .or_insert_with(|| RefOr::T(error_response(429, &[ERR_TOO_MANY_REQUESTS])));
    if let RefOr::T(refused) = refused {
        refused
            .headers
            .entry("X-Request-Id".to_owned())
            .or_insert_with(request_id_header);
        refused.headers.insert(
            "Retry-After".to_owned(),
            header_doc("Seconds to wait before retrying.", true),
        );
    }
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            for (name, text) in [
                (
                    "RateLimit-Limit",
                    "The requests the tightest bucket of this route's rate limits holds.",
                ),
                (
                    "RateLimit-Remaining",
                    "The requests that bucket could still take at once.",
                ),
                (
                    "RateLimit-Reset",
                    "Seconds until that bucket is full again.",
                ),
            ] {
                response
                    .headers
                    .insert(name.to_owned(), header_doc(text, false));
            }
        }
    }
}

/// A header object with a string schema (integer seconds or counts are sent as digits).
fn header_doc(description: &str, required: bool) -> utoipa::openapi::header::Header {
    serde_json::from_value(json!({
        "description": description,
        "required": required,
        "schema": { "type": "string" },
    }))
    .unwrap_or_else(|e| unreachable!("a literal header object: {e}"))
}

fn request_id_header() -> utoipa::openapi::header::Header {
    serde_json::from_value(json!({
        "description": "The request's id (the client's own when it sent a sane one): \
                        quote it when reporting a problem.",
        "schema": { "type": "string" },
    }))
    .unwrap_or_else(|e| unreachable!("a literal header object: {e}"))
}

/// One response for every code sent with `status`: the envelope, its `code` held to those
/// codes, one example each.
fn error_response(status: u16, codes: &[ErrorCode]) -> Response {
    let description = codes
        .iter()
        .map(|c| format!("{} {} ({})", c.code, c.zh, c.en))
        .collect::<Vec<_>>()
        .join(" · ");
    let examples: serde_json::Map<String, serde_json::Value> = codes
        .iter()
        .map(|c| {
            let envelope = c.toast(goex_errors::Lang::En, None);
            let value = serde_json::to_value(&envelope)
                .unwrap_or_else(|e| unreachable!("an envelope serialises: {e}"));
            (
                c.code.to_string(),
                json!({ "summary": c.en, "value": value }),
            )
        })
        .collect();
    let enum_codes: Vec<String> = codes.iter().map(|c| c.code.to_string()).collect();
    let mut headers = serde_json::Map::new();
    if status == 401 {
        headers.insert(
            "WWW-Authenticate".to_owned(),
            json!({ "description": "`Bearer`", "required": true, "schema": { "type": "string" } }),
        );
    }
    if status == 503 {
        headers.insert(
            "Retry-After".to_owned(),
            json!({ "description": "Seconds to wait before retrying.", "required": true,
                    "schema": { "type": "string" } }),
        );
    }
    serde_json::from_value(json!({
        "description": description,
        "headers": headers,
        "content": { "application/json": {
            "schema": { "allOf": [
                { "$ref": "#/components/schemas/ErrorEnvelope" },
                { "type": "object", "properties": { "error": { "type": "object",
                    "properties": { "code": { "type": "string", "enum": enum_codes } } } } },
            ] },
            "examples": examples,
        } },
    }))
    .unwrap_or_else(|e| unreachable!("a literal response object: {e}"))
}

/// Every served (method, path template) pair, read back from the document; what the 405
/// answer's `Allow` header and the route-coverage test use.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    methods: BTreeMap<String, Vec<Method>>,
}

impl RouteTable {
    /// The routes `doc` describes.
    pub fn from_document(doc: &OpenApi) -> Self {
        let mut methods = BTreeMap::new();
        for (path, item) in &doc.paths.paths {
            let served: Vec<Method> = operations(item)
                .into_iter()
                .filter_map(|(m, operation)| operation.map(|_| m))
                .collect();
            methods.insert(path.clone(), served);
        }
        Self { methods }
    }

    /// The methods served at a path template (`/auth/login`), empty for an unknown one.
    pub fn methods(&self, path: &str) -> &[Method] {
        self.methods.get(path).map_or(&[], Vec::as_slice)
    }

    /// Every (method, path template) pair.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &str)> {
        self.methods
            .iter()
            .flat_map(|(path, ms)| ms.iter().map(move |m| (m, path.as_str())))
    }
}

//! The rate limits of the HTTP app (`rate_limit.rules`, docs/overload.md): our own actix
//! middleware (not `actix-governor`, which is GPL-3.0). It sits inside the request lifecycle, so
//! a refusal is the unified envelope (429 / 10008 with `Retry-After`) with the request id, in
//! the access log and the route's metrics.
//!
//! Which rules a route has is worked out once at start from the OpenAPI document
//! (`limited_routes`: route template, tag, method, and whether the route requires a token);
//! per request only the query parameter a rule may name is looked at. Address buckets are
//! spent here; on a route that requires a token, user buckets are left to the `Authenticated`
//! / `Admin` extractor (`web::rate_limit::PendingUserSpend`), which spends them once the token
//! passed (else by address). On a route that takes no token, a `user` rule counts the address:
//! no token was checked there. Health and readiness are never counted; metrics have their own
//! listener.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use futures_util::FutureExt;
use futures_util::future::{Either, LocalBoxFuture};
use utoipa::openapi::OpenApi as Document;

use crate::meta::config::RuleKey;
use crate::service::error::ServiceError;
use crate::service::rate_limit::{RateLimitService, RuleId, Subject};
use crate::web::client_addr::client_addr;
use crate::web::rate_limit::{
    PendingUserSpend, RateLimitSeen, insert_headers, record, spend_pending,
};
use crate::web::routes::{operations, operations_mut};

/// The OpenAPI tag of the routes never counted (liveness and readiness).
const NEVER_COUNTED_TAG: &str = "health";

/// The rules of one route (method and template).
#[derive(Debug, Default)]
struct RouteRules {
    rules: Vec<RuleId>,
    /// The route requires a bearer token (its operation declares the scheme): its user-keyed
    /// rules wait for the extractor.
    secured: bool,
}

/// Every limited route's rules, by method and template (one per worker: `Rc` inside).
#[derive(Debug, Default)]
struct RateLimitPlan {
    routes: HashMap<(Method, String), Rc<RouteRules>, foldhash::fast::RandomState>,
}

/// A route some rules can limit.
#[derive(Clone, Debug)]
pub struct LimitedRoute {
    /// The method.
    pub method: Method,
    /// The route template (`/excel/import/{id}`).
    pub template: String,
    /// The rules.
    pub rules: Vec<RuleId>,
    /// Whether the route requires a bearer token.
    pub secured: bool,
}

/// The routes of `doc` that `service`'s rules can limit. Health routes never are.
pub fn limited_routes(doc: &Document, service: &dyn RateLimitService) -> Vec<LimitedRoute> {
    let mut out = Vec::new();
    for (template, item) in &doc.paths.paths {
        for (method, operation) in operations(item) {
            let Some(operation) = operation else { continue };
            let tags = operation.tags.clone().unwrap_or_default();
            if tags.iter().any(|t| t == NEVER_COUNTED_TAG) {
                continue;
            }
            let rules = service.http_rules(method.as_str(), template, &tags);
            if rules.is_empty() {
                continue;
            }
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            out.push(LimitedRoute {
                method,
                template: template.clone(),
                rules,
                secured,
            });
        }
    }
    out
}

/// Adds the 429 / 10008 answer and the `RateLimit-*` headers to the operations `service`'s
/// rules can limit (whether or not `rate_limit.enabled`: the document describes the
/// configured rules).
pub fn document(doc: &mut Document, service: &dyn RateLimitService) {
    for LimitedRoute {
        method, template, ..
    } in limited_routes(doc, service)
    {
        let Some(item) = doc.paths.paths.get_mut(&template) else {
            continue;
        };
        let operation = operations_mut(item)
            .into_iter()
            .find_map(|(m, operation)| (m == method).then_some(operation).flatten());
        if let Some(operation) = operation {
            crate::web::routes::document_rate_limited(operation);
        }
    }
}

/// The middleware factory: the rules' service and the routes they limit (each worker builds
/// its own lookup from them).
#[derive(Clone)]
pub struct RateLimit {
    service: Arc<dyn RateLimitService>,
    routes: Arc<Vec<LimitedRoute>>,
}

impl RateLimit {
    /// Limits the routes of `doc` by `service`'s rules (none when rate limits are off: every
    /// request then passes straight through).
    pub fn new(doc: &Document, service: Arc<dyn RateLimitService>) -> Self {
        let routes = match service.enabled() {
            true => limited_routes(doc, service.as_ref()),
            false => Vec::new(),
        };
        Self {
            service,
            routes: Arc::new(routes),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Transform = RateLimitMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let plan = RateLimitPlan {
            routes: self
                .routes
                .iter()
                .map(|route| {
                    let rules = RouteRules {
                        rules: route.rules.clone(),
                        secured: route.secured,
                    };
                    (
                        (route.method.clone(), route.template.clone()),
                        Rc::new(rules),
                    )
                })
                .collect(),
        };
        ready(Ok(RateLimitMiddleware {
            inner: Rc::new(service),
            rules: self.service.clone(),
            plan: Rc::new(plan),
            paths: Rc::default(),
        }))
    }
}

/// Most request paths whose route a worker remembers; past it (paths with parameters), a
/// request's route is matched again.
const PATH_CACHE_MAX: usize = 1024;

/// Longest path a worker remembers, in bytes: a request head may be 128 KiB, and a client
/// sending a thousand long paths must not make every worker keep 128 MiB of them. With both
/// bounds a worker's memo holds at most 256 KiB of paths.
const PATH_CACHE_MAX_LEN: usize = 256;

/// A worker's routes by method, then path (`None`: not limited); looked up without copying the
/// path.
type PathCache = HashMap<Method, PathRules, foldhash::fast::RandomState>;
type PathRules = HashMap<String, Option<Rc<RouteRules>>, foldhash::fast::RandomState>;

/// The middleware service (one per worker).
pub struct RateLimitMiddleware<S> {
    inner: Rc<S>,
    rules: Arc<dyn RateLimitService>,
    plan: Rc<RateLimitPlan>,
    /// The rules of the paths this worker has served, by method and path (`None`: not
    /// limited), so a request is not matched to its template again.
    paths: Rc<RefCell<PathCache>>,
}

impl<S> RateLimitMiddleware<S> {
    /// The rules of the request's route, if it is limited.
    fn route_rules(&self, req: &ServiceRequest) -> Option<Rc<RouteRules>> {
        let known = self
            .paths
            .borrow()
            .get(req.method())
            .and_then(|paths| paths.get(req.path()).cloned());
        if let Some(known) = known {
            return known;
        }
        let found = req.match_pattern().and_then(|template| {
            self.plan
                .routes
                .get(&(req.method().clone(), template))
                .cloned()
        });
        let mut paths = self.paths.borrow_mut();
        if remembers(req.path(), paths.values().map(HashMap::len).sum()) {
            paths
                .entry(req.method().clone())
                .or_default()
                .insert(req.path().to_owned(), found.clone());
        }
        found
    }
}

/// Whether a worker remembers `path`'s route with `cached` paths remembered already.
fn remembers(path: &str, cached: usize) -> bool {
    path.len() <= PATH_CACHE_MAX_LEN && cached < PATH_CACHE_MAX
}

type PassThrough<F, B> = futures_util::future::Map<
    F,
    fn(Result<ServiceResponse<B>, Error>) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, Error>,
>;

fn pass<B>(
    res: Result<ServiceResponse<B>, Error>,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, Error> {
    res.map(ServiceResponse::map_into_left_body)
}

impl<S, B> Service<ServiceRequest> for RateLimitMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = Either<
        PassThrough<S::Future, B>,
        LocalBoxFuture<'static, Result<Self::Response, Self::Error>>,
    >;

    forward_ready!(inner);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let unlimited = |inner: &S, req| Either::Left(inner.call(req).map(pass::<B> as fn(_) -> _));
        if self.plan.routes.is_empty() {
            return unlimited(&self.inner, req);
        }
        let Some(route) = self.route_rules(&req) else {
            return unlimited(&self.inner, req);
        };
        let query = req.query_string();
        let rules: Vec<RuleId> = route
            .rules
            .iter()
            .copied()
            .filter(|rule| self.rules.query_matches(*rule, query))
            .collect();
        if rules.is_empty() {
            return unlimited(&self.inner, req);
        }
        let client = client_addr(req.request()).ip;
        let mut now = Vec::with_capacity(rules.len());
        let mut later = Vec::new();
        for rule in rules {
            match (self.rules.key(rule), route.secured) {
                (RuleKey::Address, _) | (RuleKey::User, false) => {
                    now.push((rule, Subject::Address(client)));
                }
                (RuleKey::User, true) => later.push(rule),
                (RuleKey::Both, secured) => {
                    now.push((rule, Subject::Address(client)));
                    if secured {
                        later.push(rule);
                    }
                }
            }
        }
        let inner = self.inner.clone();
        let service = self.rules.clone();
        Either::Right(Box::pin(async move {
            if let Some(decision) = service.spend(&now).await {
                record(req.request(), decision);
                if !decision.allowed {
                    let refused = req.error_response(ServiceError::RateLimited(decision));
                    return Ok(refused.map_into_right_body());
                }
            }
            if !later.is_empty() {
                req.extensions_mut().insert(PendingUserSpend {
                    service,
                    rules: later,
                    client,
                });
            }
            let mut res = inner.call(req).await?;
            // The handler never checked a token (it failed before its extractor ran): the
            // request is counted by address, as one without a valid token is.
            if res.request().extensions().contains::<PendingUserSpend>() {
                let _ = spend_pending(res.request(), None).await;
            }
            let seen = res.request().extensions().get::<RateLimitSeen>().copied();
            if let Some(RateLimitSeen(decision)) = seen {
                insert_headers(res.headers_mut(), &decision);
            }
            Ok(res.map_into_left_body())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{PATH_CACHE_MAX, PATH_CACHE_MAX_LEN, remembers};

    #[test]
    fn the_path_memo_is_bounded_in_count_and_in_bytes() {
        let short = "/users/42";
        assert!(remembers(short, 0));
        assert!(remembers(short, PATH_CACHE_MAX - 1));
        assert!(!remembers(short, PATH_CACHE_MAX), "full");
        let longest = format!("/{}", "a".repeat(PATH_CACHE_MAX_LEN - 1));
        assert!(remembers(&longest, 0));
        let long = format!("/{}", "a".repeat(PATH_CACHE_MAX_LEN));
        assert!(
            !remembers(&long, 0),
            "a path over the length bound is matched each time"
        );
    }
}

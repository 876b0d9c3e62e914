//! `X-Request-Id`: accepted from the client when it is sane, generated otherwise, stored in the
//! request extensions for the access log and echoed on the response.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage};
use futures_util::future::LocalBoxFuture;

/// The header name.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id accepted; longer (or non-token) ids are replaced.
const MAX_CLIENT_ID_LEN: usize = 128;

/// The id of the current request, in the request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

/// Makes ids `<process prefix>-<counter>`: unique within the process, distinct across restarts,
/// and far cheaper than a UUID per request.
#[derive(Debug)]
pub struct RequestIdGenerator {
    prefix: String,
    next: AtomicU64,
}

impl RequestIdGenerator {
    /// A generator with a random per-process prefix.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS per process: enough to tell restarts apart.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Self {
            prefix: format!("{:012x}", h.finish() & 0xffff_ffff_ffff),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for RequestIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// The middleware factory.
#[derive(Clone)]
pub struct RequestIdMiddleware {
    generator: Arc<RequestIdGenerator>,
}

impl RequestIdMiddleware {
    /// Uses `generator` for requests that bring no usable id.
    pub fn new(generator: Arc<RequestIdGenerator>) -> Self {
        Self { generator }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestIdMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdService {
            service: Rc::new(service),
            generator: self.generator.clone(),
        }))
    }
}

/// The middleware service.
pub struct RequestIdService<S> {
    service: Rc<S>,
    generator: Arc<RequestIdGenerator>,
}

fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_CLIENT_ID_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

impl<S, B> Service<ServiceRequest> for RequestIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = match req.headers().get(&REQUEST_ID_HEADER) {
            Some(v) if acceptable(v) => v.clone(),
            _ => self.generator.next(),
        };
        req.extensions_mut().insert(RequestId(id.clone()));
        let fut = self.service.call(req);
        Box::pin(async move {
            match fut.await {
                Ok(mut res) => {
                    res.headers_mut().insert(REQUEST_ID_HEADER, id);
                    Ok(res)
                }
                Err(e) => {
                    // Errors reach the client as their own response: put the id on that one.
                    let mut response = e.error_response();
                    response.headers_mut().insert(REQUEST_ID_HEADER, id);
                    Err(InternalError::from_response(e.to_string(), response).into())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_client_ids_are_screened() {
        let g = RequestIdGenerator::new();
        assert_ne!(g.next(), g.next());
        assert!(acceptable(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }
}

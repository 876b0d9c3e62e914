//! The one middleware every request passes: it gives the request its id (`request_id`), catches
//! a panicking handler (`catch_panic`), turns every error into the unified envelope in the
//! client's language and logs it once (`error_envelope`), echoes the id on the response, and
//! writes the access record (`access_log`). When read-your-writes is on, the request runs as a
//! database session (`X-Session-Id`, else the request id), so its reads follow its writes to
//! the primary.
//!
//! One layer instead of four: each layer costs a boxed future per request, and the whole stack
//! is held to 90 % of a bare actix-web server's throughput (docs/benchmarks.md).

use std::future::{Ready, ready};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::Error;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::InternalError;
use actix_web::http::header;
use futures_util::FutureExt;
use futures_util::future::Either;
use futures_util::future::LocalBoxFuture;
use slog::Logger;

use crate::middleware::access_log;
use crate::middleware::catch_panic::panic_error;
use crate::middleware::error_envelope::OutgoingError;
use crate::middleware::request_id::{
    REQUEST_ID_HEADER, RequestIdGenerator, SESSION_ID_HEADER, acceptable,
};

/// The middleware factory.
#[derive(Clone)]
pub struct RequestLifecycle {
    logger: Logger,
    access_log: bool,
    sessions: bool,
    ids: Arc<RequestIdGenerator>,
}

impl RequestLifecycle {
    /// Errors (and, when `access_log`, access records) go to `logger`; ids come from `ids`;
    /// `sessions` runs each request as a read-your-writes session.
    pub fn new(
        logger: &Logger,
        access_log: bool,
        sessions: bool,
        ids: Arc<RequestIdGenerator>,
    ) -> Self {
        Self {
            logger: logger.clone(),
            access_log,
            sessions,
            ids,
        }
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
        }))
    }
}

/// The middleware service.
pub struct RequestLifecycleService<S> {
    service: Rc<S>,
    factory: RequestLifecycle,
}

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
        let factory = self.factory.clone();
        let id = factory
            .ids
            .accept_or_generate(req.headers().get(&REQUEST_ID_HEADER));
        // An Err carries no request: keep what the error path and the record need (cheap,
        // reference-counted clones).
        let accept_language = req.headers().get(header::ACCEPT_LANGUAGE).cloned();
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let session = factory.sessions.then(|| {
            let header = req
                .headers()
                .get(&SESSION_ID_HEADER)
                .filter(|v| acceptable(v));
            Arc::<str>::from(header.unwrap_or(&id).to_str().unwrap_or("-"))
        });
        let call = self.service.call(req);
        // Either, not a box: the common case (no session) costs no allocation.
        let fut = match session {
            Some(key) => Either::Left(goex_database::session::scope(key, call)),
            None => Either::Right(call),
        };
        let fut = AssertUnwindSafe(fut).catch_unwind();
        Box::pin(async move {
            let outcome = match fut.await {
                Ok(result) => result,
                Err(panic) => Err(panic_error(panic.as_ref()).into()),
            };
            let result: Result<Self::Response, Error> = match outcome {
                Ok(res) => match res.response().error() {
                    None => Ok(res.map_into_left_body()),
                    Some(e) => {
                        let out = OutgoingError::of(e, res.status(), accept_language.as_ref());
                        out.log(&factory.logger, &id, &method, uri.path());
                        match out.replacement(e) {
                            None => Ok(res.map_into_left_body()),
                            Some(body) => Ok(res.into_response(body).map_into_right_body()),
                        }
                    }
                },
                Err(e) => {
                    let status = e.as_response_error().status_code();
                    let out = OutgoingError::of(&e, status, accept_language.as_ref());
                    out.log(&factory.logger, &id, &method, uri.path());
                    let mut body = out.envelope(&e);
                    body.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
                    Err(InternalError::from_response(out.summary, body).into())
                }
            };
            let status = match &result {
                Ok(res) => res.status(),
                Err(e) => e.as_response_error().status_code(),
            };
            let result = result.map(|mut res| {
                res.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
                res
            });
            if factory.access_log {
                access_log::record(&factory.logger, &id, &method, uri.path(), status, started);
            }
            result
        })
    }
}

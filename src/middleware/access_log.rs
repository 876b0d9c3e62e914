//! One access-log record per request: request id, method, path, status, latency.
//! Query strings are left out: they may carry tokens or personal data.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use futures_util::future::LocalBoxFuture;
use slog::Logger;

use crate::middleware::request_id::RequestId;

/// The middleware factory.
#[derive(Clone)]
pub struct AccessLog {
    logger: Logger,
}

impl AccessLog {
    /// Logs to `logger` (tagged `component = access`).
    pub fn new(logger: &Logger) -> Self {
        Self {
            logger: logger.new(slog::o!("component" => "access")),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for AccessLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = AccessLogService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AccessLogService {
            service: Rc::new(service),
            logger: self.logger.clone(),
        }))
    }
}

/// The middleware service.
pub struct AccessLogService<S> {
    service: Rc<S>,
    logger: Logger,
}

impl<S, B> Service<ServiceRequest> for AccessLogService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let logger = self.logger.clone();
        // An Err carries no request, so keep what the record needs (reference-counted clones).
        let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        let method = req.method().clone();
        let uri = req.uri().clone();
        let fut = self.service.call(req);
        Box::pin(async move {
            let result = fut.await;
            let status = match &result {
                Ok(res) => res.status(),
                Err(e) => e.as_response_error().status_code(),
            };
            slog::info!(logger, "request";
                "request_id" => id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
                "method" => method.as_str(),
                "path" => uri.path(),
                "status" => status.as_u16(),
                "latency_us" => started.elapsed().as_micros() as u64,
            );
            result
        })
    }
}

//! Adaptive load shedding at the HTTP edge (docs/overload.md): every request but the probes
//! (`web::routes::PROBE_PATHS`) asks the app's shedder before anything else is done with it,
//! its body unread. Dropped, it is answered at once 503 / 10015 (服务繁忙 "server busy") with
//! `Retry-After: 1`, the cool-off, by the lifecycle middleware around this one (which gives it
//! its request id, envelope, metrics and access record). Admitted, the shedder learns how it
//! ended: a pass unless the answer is a 5xx (go-zero's rule).
//!
//! The socket pages (`/socket/index`, `/socket/index2`) and the API documents are shed like
//! any route: they are this process's work, and nothing probes the instance through them.
//!
//! Off (`shedding.enabled: false`), a request costs one branch: no allocation, no lock, no
//! atomic; the inner future is forwarded unboxed either way.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};

use crate::service::error::ServiceError;
use crate::service::shedding::{Admission, AppShedder};
use crate::web::routes::is_probe;

/// The middleware factory: one app's shedder, `None` when shedding is off.
#[derive(Clone)]
pub struct Shedding {
    shedder: Option<AppShedder>,
}

impl Shedding {
    /// Sheds with `shedder`; a disabled one leaves the middleware a pass-through.
    pub fn new(shedder: AppShedder) -> Self {
        Shedding {
            shedder: shedder.is_enabled().then_some(shedder),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Shedding
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = SheddingService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SheddingService {
            service,
            shedder: self.shedder.clone(),
        }))
    }
}

/// The middleware service (one per worker).
pub struct SheddingService<S> {
    service: S,
    shedder: Option<AppShedder>,
}

impl<S, B> Service<ServiceRequest> for SheddingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Shed<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some(shedder) = self.shedder.as_ref().filter(|_| !is_probe(req.path())) else {
            return Shed::Through {
                fut: self.service.call(req),
            };
        };
        match shedder.admit() {
            Ok(admission) => Shed::Tracked {
                fut: self.service.call(req),
                admission: Some(admission),
            },
            // Nothing of the request was read; the connection stays usable.
            Err(busy) => Shed::Dropped { busy: Some(busy) },
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`SheddingService`]: the inner service's, reported to the shedder
    /// when admitted, or the refusal.
    #[project = ShedProj]
    pub enum Shed<F> {
        /// Shedding off, or a probe.
        Through { #[pin] fut: F },
        /// Admitted: the outcome is reported when the answer is ready (dropped before, the
        /// request counts as failed).
        Tracked { #[pin] fut: F, admission: Option<Admission> },
        /// Refused.
        Dropped { busy: Option<ServiceError> },
    }
}

impl<F, B> Future for Shed<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ShedProj::Through { fut } => fut.poll(cx),
            ShedProj::Tracked { fut, admission } => {
                let result = match admission {
                    Some(admission) => ready!(admission.poll(fut, cx)),
                    None => ready!(fut.poll(cx)),
                };
                let status = match &result {
                    Ok(res) => res.status(),
                    Err(e) => e.as_response_error().status_code(),
                };
                if let Some(admission) = admission.take() {
                    admission.finish(status.is_server_error());
                }
                Poll::Ready(result)
            }
            ShedProj::Dropped { busy } => {
                Poll::Ready(Err(busy.take().unwrap_or(ServiceError::ServerBusy).into()))
            }
        }
    }
}

//! Turns a panicking handler into a 500 envelope (code 10001) instead of a dropped connection;
//! the worker keeps serving. The panic message is logged, never sent.
//!
//! The panic comes back as an `Err` (rendered by the outer middleware), not as a response: a
//! response needs the `HttpRequest`, and holding a clone of it across the inner call would break
//! actix's routing, which needs the request uniquely owned.

use std::future::{Ready, ready};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use actix_web::Error;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;

use crate::service::error::ServiceError;

/// The middleware factory.
#[derive(Clone, Copy, Default)]
pub struct CatchPanic;

impl<S, B> Transform<S, ServiceRequest> for CatchPanic
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = CatchPanicService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CatchPanicService {
            service: Rc::new(service),
        }))
    }
}

/// The middleware service.
pub struct CatchPanicService<S> {
    service: Rc<S>,
}

fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

impl<S, B> Service<ServiceRequest> for CatchPanicService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        Box::pin(async move {
            let outcome = AssertUnwindSafe(async move { service.call(req).await })
                .catch_unwind()
                .await;
            match outcome {
                Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
                Err(panic) => Err(ServiceError::Panic(message(panic.as_ref())).into()),
            }
        })
    }
}

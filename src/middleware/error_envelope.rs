//! Every error response leaves in the unified envelope, in the client's language, and is logged
//! once with its whole source chain (5xx at error level, 4xx at debug).

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::InternalError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{Error, HttpResponse};
use futures_util::future::LocalBoxFuture;
use goex_errors::Lang;
use slog::Logger;

use crate::server::envelope::{code_for_status, render, render_code};
use crate::service::error::ServiceError;

/// The middleware factory.
#[derive(Clone)]
pub struct ErrorEnvelope {
    logger: Logger,
}

impl ErrorEnvelope {
    /// Logs errors to `logger`.
    pub fn new(logger: &Logger) -> Self {
        Self {
            logger: logger.new(slog::o!("component" => "http")),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for ErrorEnvelope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Transform = ErrorEnvelopeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ErrorEnvelopeService {
            service: Rc::new(service),
            logger: self.logger.clone(),
        }))
    }
}

/// The middleware service.
pub struct ErrorEnvelopeService<S> {
    service: Rc<S>,
    logger: Logger,
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl<S, B> Service<ServiceRequest> for ErrorEnvelopeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Only what an Err (which carries no request) needs; cheap reference-counted clones.
        let accept_language = req.headers().get(header::ACCEPT_LANGUAGE).cloned();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let logger = self.logger.clone();
        let fut = self.service.call(req);
        Box::pin(async move {
            let lang = accept_language
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map_or(Lang::ZhCn, Lang::from_accept_language);
            let (res, err) = match fut.await {
                Ok(res) => match res.response().error() {
                    None => return Ok(res.map_into_left_body()),
                    Some(e) => {
                        let envelope = Envelope::of(e, res.status(), lang);
                        (Some(res), envelope)
                    }
                },
                Err(e) => {
                    let status = e.as_response_error().status_code();
                    (None, Envelope::of(&e, status, lang))
                }
            };
            err.log(&logger, &method, uri.path());
            match res {
                Some(res) if err.already_rendered => Ok(res.map_into_left_body()),
                Some(res) => Ok(res.into_response(err.body).map_into_right_body()),
                None => Err(InternalError::from_response(err.summary, err.body).into()),
            }
        })
    }
}

/// An error seen on its way out, with what to log and the body to send if it must change.
struct Envelope {
    status: StatusCode,
    code: u32,
    summary: String,
    /// The envelope in the client's language.
    body: HttpResponse,
    /// The response already holds exactly this body (a `ServiceError` rendered in Chinese).
    already_rendered: bool,
}

impl Envelope {
    fn of(err: &Error, status: StatusCode, lang: Lang) -> Envelope {
        if let Some(service_err) = err.as_error::<ServiceError>() {
            Envelope {
                status,
                code: service_err.code().code,
                summary: chain(service_err),
                body: render(service_err, lang),
                already_rendered: lang == Lang::ZhCn,
            }
        } else {
            // Raised by actix itself (e.g. a body it refused): map by status.
            let code = code_for_status(status);
            Envelope {
                status,
                code: code.code,
                summary: err.to_string(),
                body: render_code(code, lang, None),
                already_rendered: false,
            }
        }
    }

    fn log(&self, logger: &Logger, method: &Method, path: &str) {
        if self.status.is_server_error() {
            slog::error!(logger, "request failed"; "method" => method.as_str(), "path" => path,
                "status" => self.status.as_u16(), "code" => self.code, "error" => &self.summary);
        } else {
            slog::debug!(logger, "request rejected"; "method" => method.as_str(), "path" => path,
                "status" => self.status.as_u16(), "code" => self.code, "error" => &self.summary);
        }
    }
}

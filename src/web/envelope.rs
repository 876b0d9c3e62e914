//! Where `ServiceError` meets the wire, once for the three apps: the HTTP envelope (its status
//! and language, and the one log line of an error on its way out: [`OutgoingError`]), the gRPC
//! `Status` with `x-error-code` ([`status`]), and the socket app's error frame
//! ([`error_frame`]). Nothing else in the application builds an error body.

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpResponse, ResponseError};
use goex_errors::{ErrorCode, Lang};
use slog::Logger;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::proto::ERROR_CODE_KEY;
use crate::service::error::ServiceError;

impl ResponseError for ServiceError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Chinese, the original's language; [`OutgoingError`] re-renders it when the
    /// client prefers English.
    fn error_response(&self) -> HttpResponse<BoxBody> {
        render(self, Lang::ZhCn)
    }
}

/// Where a client gets a new access token (the original's `refresh_url`).
pub const REFRESH_URL: &str = "/auth/refresh_token";

/// The envelope for `err` in `lang`.
pub fn render(err: &ServiceError, lang: Lang) -> HttpResponse {
    let code = err.code();
    let mut envelope = code.toast(lang, err.public_detail().as_deref());
    if matches!(err, ServiceError::LoginExpired) {
        envelope.error.refresh_url = Some(REFRESH_URL.to_owned());
    }
    if let ServiceError::ImportRejected(report) = err {
        envelope.error.details = serde_json::to_value(report).ok();
    }
    let mut res = respond(code, envelope);
    if let ServiceError::RateLimited(decision) = err {
        crate::web::rate_limit::insert_headers(res.headers_mut(), decision);
    }
    if let ServiceError::MethodNotAllowed { allow } = err
        && !allow.is_empty()
        && let Ok(allow) = HeaderValue::from_str(allow)
    {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

/// The envelope for a bare code (errors actix raised before our code ran).
pub fn render_code(code: ErrorCode, lang: Lang, detail: Option<&str>) -> HttpResponse {
    respond(code, code.toast(lang, detail))
}

fn respond(code: ErrorCode, mut envelope: goex_errors::Envelope) -> HttpResponse {
    // Rendered while the request is served (the lifecycle middleware's scope).
    envelope.error.request_id = goex_logging::request::current().map(|id| id.to_string());
    // Only a traced request has trace ids in its scope: with tracing off this stays `None`.
    envelope.error.trace_id =
        goex_logging::request::current_trace().map(|ids| ids.trace_hex().to_string());
    let status = StatusCode::from_u16(code.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    res.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
    }
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of a late body may still be on its way: close rather than drain it
        // (RFC 9110 §15.5.9).
        res.force_close();
    }
    res.body(envelope.to_json())
}

/// The code for an error status raised by actix itself (a body it refused, a timeout).
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    use goex_errors::*;
    match status.as_u16() {
        404 => ERR_NOT_FOUND,
        405 => ERR_METHOD_NOT_ALLOWED,
        408 => ERR_REQUEST_TIMEOUT,
        413 => ERR_PAYLOAD_TOO_LARGE,
        429 => ERR_TOO_MANY_REQUESTS,
        401 => ERR_UNAUTHORIZED,
        403 => ERR_FORBIDDEN,
        409 => ERR_CONFLICT,
        503 => ERR_UNAVAILABLE,
        400..=499 => ERR_PARAM,
        _ => ERR_SYSTEM,
    }
}

/// The socket app's error frame: the envelope with `"type":"error"`
/// (`{"type":"error","error":{"code","level","message",...}}`, docs/websocket.md).
pub fn error_frame(err: &ServiceError, lang: Lang) -> bytestring::ByteString {
    #[derive(serde::Serialize)]
    struct ErrorFrame {
        r#type: &'static str,
        error: goex_errors::EnvelopeBody,
    }
    let envelope = err.code().toast(lang, err.public_detail().as_deref());
    let frame = ErrorFrame {
        r#type: "error",
        error: envelope.error,
    };
    serde_json::to_string(&frame)
        .unwrap_or_else(|_| r#"{"type":"error"}"#.to_owned())
        .into()
}

/// The one mapping from a service error to a gRPC status: the gRPC code that means the same,
/// the English message (with the public detail), and the envelope code in [`ERROR_CODE_KEY`].
/// 5xx internals never reach the message.
pub fn status(err: &ServiceError) -> Status {
    let code = match err {
        ServiceError::InvalidInput { .. }
        | ServiceError::NoUpload(_)
        | ServiceError::ImportRejected(_)
        | ServiceError::BadWorkbook(_) => Code::InvalidArgument,
        ServiceError::NotFound | ServiceError::RouteNotFound => Code::NotFound,
        ServiceError::MethodNotAllowed { .. } => Code::Unimplemented,
        ServiceError::PayloadTooLarge { .. }
        | ServiceError::TooManyRequests
        | ServiceError::Limited(_)
        | ServiceError::ServerBusy
        | ServiceError::RateLimited(_) => Code::ResourceExhausted,
        ServiceError::RequestTimeout { .. } => Code::DeadlineExceeded,
        ServiceError::Conflict { .. } => Code::AlreadyExists,
        ServiceError::Unavailable { .. }
        | ServiceError::CircuitOpen { .. }
        | ServiceError::AtCapacity(_) => Code::Unavailable,
        ServiceError::Forbidden(_) => Code::PermissionDenied,
        ServiceError::Downstream { .. }
        | ServiceError::DownstreamSaid { .. }
        | ServiceError::SmsSend(_) => Code::Unknown,
        ServiceError::LoginFailed
        | ServiceError::LoginElsewhere
        | ServiceError::LoginExpired
        | ServiceError::RefreshFailed(_)
        | ServiceError::WrongCode(_)
        | ServiceError::Unauthorized(_) => Code::Unauthenticated,
        ServiceError::Panic(_)
        | ServiceError::Internal(_)
        | ServiceError::Certificate { .. }
        | ServiceError::Export(_) => Code::Internal,
    };
    let envelope = err.code();
    let message = match err.public_detail() {
        Some(detail) => format!("{}: {detail}", envelope.en),
        None => envelope.en.to_owned(),
    };
    let mut status = Status::new(code, message);
    if let Ok(value) = MetadataValue::try_from(envelope.code.to_string()) {
        status.metadata_mut().insert(ERROR_CODE_KEY, value);
    }
    status
}

/// An error seen on its way out: what to log, and the client's language for the envelope.
pub struct OutgoingError {
    /// The status it leaves with.
    pub status: StatusCode,
    /// The documented code.
    pub code: u32,
    /// The error and its sources, for the log.
    pub summary: String,
    lang: Lang,
}

impl OutgoingError {
    /// Classifies `err`: our `ServiceError`s by their code, errors actix raised itself (a body
    /// it refused, a timeout) by their status.
    pub fn of(err: &Error, status: StatusCode, accept_language: Option<&HeaderValue>) -> Self {
        let lang = accept_language
            .and_then(|v| v.to_str().ok())
            .map_or(Lang::ZhCn, Lang::from_accept_language);
        match err.as_error::<ServiceError>() {
            Some(service_err) => OutgoingError {
                status,
                code: service_err.code().code,
                summary: chain(service_err),
                lang,
            },
            None => OutgoingError {
                status,
                code: code_for_status(status).code,
                summary: err.to_string(),
                lang,
            },
        }
    }

    /// The envelope for `err` in the client's language.
    pub fn envelope(&self, err: &Error) -> HttpResponse {
        match err.as_error::<ServiceError>() {
            Some(service_err) => render(service_err, self.lang),
            None => render_code(code_for_status(self.status), self.lang, None),
        }
    }

    /// The envelope to put in place of the response actix built from `err`, or `None` when that
    /// response is already it (a `ServiceError` rendered in Chinese by `error_response`).
    pub fn replacement(&self, err: &Error) -> Option<HttpResponse> {
        let already = self.lang == Lang::ZhCn && err.as_error::<ServiceError>().is_some();
        (!already).then(|| self.envelope(err))
    }

    /// Logs the error once; the request id comes from the request scope (see
    /// `goex_logging::request`).
    pub fn log(&self, logger: &Logger, method: &Method, path: &str) {
        // A shed request is the server protecting itself, not a failure: an error record for
        // each would add log writes to an overloaded process (the shedding metrics count them).
        if self.status.is_server_error() && self.code != goex_errors::ERR_SERVER_BUSY.code {
            slog::error!(logger, "request failed"; "method" => method.as_str(),
                "path" => path, "status" => self.status.as_u16(), "code" => self.code, "error" => &self.summary);
        } else {
            slog::debug!(logger, "request rejected"; "method" => method.as_str(),
                "path" => path, "status" => self.status.as_u16(), "code" => self.code, "error" => &self.summary);
        }
    }
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

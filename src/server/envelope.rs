//! Where `ServiceError` meets HTTP: the unified envelope, its status, and its language.
//! Nothing else in the application builds an error body.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use goex_errors::{ErrorCode, Lang};

use crate::service::error::ServiceError;

impl ResponseError for ServiceError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Chinese, the original's language; `middleware::error_envelope` re-renders it when the
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

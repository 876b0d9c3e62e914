//! Errors on their way out: every error response leaves as the unified envelope in the
//! client's language, and is logged once with its whole source chain (5xx at error level, 4xx at
//! debug), with the request id.

use actix_web::http::header::HeaderValue;
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpResponse};
use goex_errors::Lang;
use slog::Logger;

use crate::server::envelope::{code_for_status, render, render_code};
use crate::service::error::ServiceError;

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

    /// Logs the error once.
    /// Logs the error once; the request id comes from the request scope (see
    /// `goex_logging::request`).
    pub fn log(&self, logger: &Logger, method: &Method, path: &str) {
        if self.status.is_server_error() {
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

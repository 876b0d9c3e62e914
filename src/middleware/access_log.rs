//! The access record: one per request (when `server.http.access_log` is on) with request id,
//! method, path, status and latency. Query strings are left out: they may carry tokens or
//! personal data.

use std::time::Instant;

use actix_web::http::{Method, StatusCode, header::HeaderValue};
use slog::Logger;

/// Writes the access record of one request.
pub fn record(
    logger: &Logger,
    id: &HeaderValue,
    method: &Method,
    path: &str,
    status: StatusCode,
    started: Instant,
) {
    slog::info!(logger, "request";
        "request_id" => id.to_str().unwrap_or("-"),
        "method" => method.as_str(),
        "path" => path,
        "status" => status.as_u16(),
        "latency_us" => started.elapsed().as_micros() as u64,
    );
}

//! The access record: one per request (when `server.http.access_log` is on) with request id,
//! method, path, client address, authenticated user id, status and latency. Query strings are
//! left out: they may carry tokens or personal data.

use std::time::Instant;

use actix_web::http::{Method, StatusCode, header::HeaderValue};
use slog::Logger;

use crate::middleware::client_addr::ClientAddr;

/// What the record says about the request.
pub struct Request<'a> {
    /// The request id.
    pub id: &'a HeaderValue,
    /// The method.
    pub method: &'a Method,
    /// The path, without the query string.
    pub path: &'a str,
    /// The client (see `client_addr`).
    pub client: ClientAddr,
    /// The authenticated user, when the request carried a valid access token.
    pub user_id: Option<i64>,
}

/// Writes the access record of one request.
pub fn record(logger: &Logger, req: &Request<'_>, status: StatusCode, started: Instant) {
    slog::info!(logger, "request";
        "request_id" => req.id.to_str().unwrap_or("-"),
        "method" => req.method.as_str(),
        "path" => req.path,
        "client" => %req.client,
        "user_id" => req.user_id,
        "status" => status.as_u16(),
        "latency_us" => started.elapsed().as_micros() as u64,
    );
}

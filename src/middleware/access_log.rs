//! The access record: one per request (when `server.http.access_log` is on) with method, path,
//! client address, authenticated user id, status and latency; the request id comes with every
//! record of the request (`goex_logging::request`). Query strings are
//! left out: they may carry tokens or personal data.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use slog::Logger;

use crate::web::client_addr::ClientAddr;

/// What the record says about the request.
pub struct Request<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, without the query string.
    pub path: &'a str,
    /// The client (see `client_addr`).
    pub client: Client<'a>,
    /// The authenticated user, when the request carried a valid access token.
    pub user_id: Option<i64>,
}

/// The client address as the record shows it.
#[derive(Clone, Copy, Debug)]
pub enum Client<'a> {
    /// Formatted once per connection: the peer, when no proxy is trusted (the common case,
    /// which then costs no formatting per request).
    Formatted(&'a str),
    /// Resolved for this request (trusted proxies).
    Resolved(ClientAddr),
}

impl slog::Value for Client<'_> {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        match self {
            Client::Formatted(text) => serializer.emit_str(key, text),
            Client::Resolved(addr) => serializer.emit_arguments(key, &format_args!("{addr}")),
        }
    }
}

/// The peer address of a connection, formatted when it is accepted (connection data).
#[derive(Clone, Debug)]
pub struct PeerText(pub std::rc::Rc<str>);

/// Writes the access record of one request.
pub fn record(logger: &Logger, req: &Request<'_>, status: StatusCode, elapsed: Duration) {
    slog::info!(logger, "request";
        "method" => req.method.as_str(),
        "path" => req.path,
        "client" => req.client,
        "user_id" => req.user_id,
        "status" => status.as_u16(),
        "latency_us" => elapsed.as_micros() as u64,
    );
}

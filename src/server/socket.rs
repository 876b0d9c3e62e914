//! The socket app's server (the original's `server/socket.go`): the upgrade route composed from
//! the socket controller, the request lifecycle middleware (request ids, the envelope for
//! refusals, access records), and the listener. The route resolves the socket controller from
//! the built module.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use slog::Logger;

use crate::assembly::AppModule;
use crate::controller;
use crate::meta::config::AppConfig;
use crate::middleware::lifecycle::RequestLifecycle;
use crate::middleware::request_id::RequestIdGenerator;

/// Builds the socket server on `listener`. It handles no signals: the caller tells the hub to
/// close every connection (1001), then stops the server through its handle (`cmd::socket`).
///
/// # Errors
/// The listener cannot be used.
pub fn serve(
    listener: TcpListener,
    config: &AppConfig,
    module: Arc<AppModule>,
    logger: &Logger,
    metrics: Option<goex_metrics::Metrics>,
    tracing: goex_tracing::Tracing,
) -> std::io::Result<Server> {
    let socket = &config.server.socket;
    let trusted = Arc::new(socket.trusted_proxies.clone());
    let user_timeout = socket.tcp_user_timeout;
    let on_connect_logger = logger.clone();
    let ids = Arc::new(RequestIdGenerator::new());
    let logger = logger.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            // Registered as Arc<AppModule> itself, not web::Data: handlers look it up so.
            .app_data(module.clone())
            .app_data(trusted.clone())
            .configure(controller::socket::routes::<AppModule>)
            .default_service(web::to(controller::fallback::no_route))
            .wrap(
                RequestLifecycle::new(
                    &logger,
                    true,
                    false,
                    ids.clone(),
                    trusted.clone(),
                    metrics.clone(),
                )
                // The upgrade's span, which each message's span links to.
                .traced(tracing.clone()),
            )
    })
    .on_connect(move |connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            set_user_timeout(tcp, user_timeout, &on_connect_logger);
        }
    })
    .disable_signals()
    .shutdown_timeout(socket.shutdown_timeout.as_secs_f64().ceil() as u64)
    // The hub counts connections against server.socket.max_connections and answers 503
    // past it; actix's own per-worker bound would only queue them unanswered.
    .max_connections(socket.max_connections.saturating_add(64))
    .client_request_timeout(UPGRADE_HEAD_TIMEOUT);
    if socket.workers > 0 {
        server = server.workers(socket.workers);
    }
    Ok(server.listen(listener)?.run())
}

/// Time a client has to send its upgrade request head.
const UPGRADE_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// A client that stops reading leaves the HTTP layer writing to a closed window with no timer
/// of its own: `TCP_USER_TIMEOUT` makes the kernel abort such a connection
/// (`server.socket.tcp_user_timeout`, docs/websocket.md, "Limits").
fn set_user_timeout(tcp: &actix_web::rt::net::TcpStream, timeout: Duration, logger: &Logger) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout)) {
        slog::warn!(logger, "socket: TCP_USER_TIMEOUT not set"; "error" => %e);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    let _ = (tcp, timeout, logger);
}

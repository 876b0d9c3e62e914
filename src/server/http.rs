//! The HTTP application: routes composed from the controllers, default middleware, limits, and
//! the listener. Handlers resolve controllers from the built shaku module.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use slog::Logger;

use crate::assembly::AppModule;
use crate::controller::{self, extract::BodyLimit};
use crate::meta::config::HttpConfig;
use crate::middleware::lifecycle::RequestLifecycle;
use crate::middleware::request_id::RequestIdGenerator;
use crate::service::error::ServiceError;

/// Registers every route of the HTTP app (the original's `httpServer.Register`).
pub fn routes(cfg: &mut web::ServiceConfig, debug_routes: bool) {
    controller::hello::routes::<AppModule>(cfg);
    controller::health::routes::<AppModule>(cfg);
    controller::auth::routes::<AppModule>(cfg);
    controller::home::routes(cfg);
    if debug_routes {
        controller::debug::routes(cfg);
    }
}

/// Builds the server on `listener`. It does not handle signals: the caller stops it through
/// its handle (see `cmd::http`), so SIGINT and SIGTERM both drain gracefully.
///
/// # Errors
/// The listener cannot be used.
pub fn serve(
    listener: TcpListener,
    http: &HttpConfig,
    debug_routes: bool,
    read_your_writes: bool,
    module: Arc<AppModule>,
    logger: &Logger,
) -> std::io::Result<Server> {
    let limit = http.max_body_size;
    let access_log = http.access_log;
    let ids = Arc::new(RequestIdGenerator::new());
    let logger = logger.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            // Registered as Arc<AppModule> itself, not web::Data: shaku_actix looks it up so.
            .app_data(module.clone())
            .app_data(BodyLimit(limit))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(|e, _| json_error(e).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ServiceError::invalid("query", e.to_string()).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ServiceError::invalid("path", e.to_string()).into()),
            )
            .configure(|cfg| routes(cfg, debug_routes))
            .default_service(web::to(controller::fallback::no_route))
            .wrap(RequestLifecycle::new(
                &logger,
                access_log,
                read_your_writes,
                ids.clone(),
            ))
    })
    .disable_signals()
    .shutdown_timeout(http.shutdown_timeout.as_secs_f64().ceil() as u64)
    .keep_alive(http.keep_alive)
    .client_request_timeout(http.client_request_timeout)
    .max_connections(http.max_connections);
    if http.workers > 0 {
        server = server.workers(http.workers);
    }
    Ok(server.listen(listener)?.run())
}

fn json_error(e: actix_web::error::JsonPayloadError) -> ServiceError {
    use actix_web::error::JsonPayloadError as J;
    match e {
        J::Overflow { limit } => ServiceError::PayloadTooLarge { limit },
        J::OverflowKnownLength { limit, .. } => ServiceError::PayloadTooLarge { limit },
        other => ServiceError::invalid("body", other.to_string()),
    }
}

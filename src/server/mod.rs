//! Servers: one file per application (the original's `internal/server`). Errors meet the wire in
//! the edge kit (`crate::web::envelope`), not here.

pub mod batched_io;
pub mod grpc;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod openapi;
pub mod pprof;
pub mod socket;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

/// A side listener (profiling, metrics): one worker, no signal handling (the command stops it),
/// a one-second drain, `routes` plus the 404 envelope.
///
/// # Errors
/// The listener cannot be used.
pub fn side_server<F>(listener: TcpListener, routes: F) -> std::io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    Ok(HttpServer::new(move || {
        App::new()
            .configure(routes.clone())
            .default_service(web::to(crate::controller::fallback::no_route))
    })
    .disable_signals()
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

//! The debug listener (the original's `:6060` pprof server), outside prod only: the profiling
//! routes of `controller::pprof` on their own one-worker listener.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;

use crate::assembly::AppModule;
use crate::controller;

/// Serves the profiling endpoints on `listener` with one worker, over `module`'s profiling
/// service (limited by the `pprof` section it was built with).
///
/// # Errors
/// The listener cannot be used.
pub fn serve(listener: TcpListener, module: Arc<AppModule>) -> std::io::Result<Server> {
    super::side_server(listener, move |cfg| {
        // Arc<AppModule> itself, as `web::inject` looks it up.
        cfg.app_data(module.clone());
        controller::pprof::routes::<AppModule>(cfg);
    })
}

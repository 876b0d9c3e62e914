//! The HTTP application: routes composed from the controllers, default middleware, limits, and
//! the listener. Handlers resolve controllers from the built shaku module.

use std::future::ready;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_http::error::DispatchError;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_web::dev::{AppConfig, Extensions, Server, fn_service};
use actix_web::rt::net::TcpStream;
use actix_web::{App, web};
use shaku::HasComponent;
use slog::Logger;
use utoipa::openapi::OpenApi as Document;
use utoipa_actix_web::AppExt;

use crate::assembly::AppModule;
use crate::controller::{self, socket::PageTarget};
use crate::meta::config::HttpConfig;
use crate::middleware::access_log::PeerText;
use crate::middleware::head_deadline::DeadlineStream;
use crate::middleware::lifecycle::RequestLifecycle;
use crate::middleware::rate_limit::{self, RateLimit};
use crate::middleware::request_id::RequestIdGenerator;
use crate::middleware::shedding::Shedding;
use crate::server::openapi;
use crate::service::error::ServiceError;
use crate::service::rate_limit::RateLimitService;
use crate::service::shedding::LoadShedding;
use crate::web::extract::{BodyLimit, BodyTimeout};
use crate::web::routes::{RouteTable, Routes};

/// Registers every route of the HTTP app (the original's `httpServer.Register`); each route
/// is documented as it is registered (`web::routes`).
pub fn routes(routes: &mut Routes, surface: Surface) {
    controller::hello::routes::<AppModule>(routes);
    controller::health::routes::<AppModule>(routes);
    // Before auth: fuzzers test in document order, and logout ends the session they test with.
    controller::home::routes::<AppModule>(routes);
    controller::auth::routes::<AppModule>(routes);
    controller::sms::routes::<AppModule>(routes);
    controller::jenkins::routes::<AppModule>(routes);
    controller::excel::routes::<AppModule>(routes);
    controller::grpc_client::routes::<AppModule>(routes);
    // generate:routes (`go_example generate` adds its controllers' routes above this line)
    controller::socket::page_routes(routes);
    if surface.debug_routes {
        controller::debug::routes(routes);
    }
    if surface.openapi {
        openapi::routes(routes);
    }
}

/// Which optional groups of routes the app serves.
#[derive(Clone, Copy, Debug)]
pub struct Surface {
    /// `/debug/*` (`server.debug_routes`).
    pub debug_routes: bool,
    /// `/openapi.json` (`server.http.openapi`).
    pub openapi: bool,
    /// `/swagger-ui/` (`server.http.swagger_ui`).
    pub swagger_ui: bool,
}

/// The OpenAPI document of the routes [`routes`] registers for `surface`: the registration
/// run once against an app that is then dropped.
pub fn document(surface: Surface) -> Document {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(openapi::base_document())
        .configure(|cfg| routes(&mut Routes::new(cfg), surface))
        .split_for_parts();
    doc
}

/// Builds the server on `listener`. It does not handle signals: the caller stops it through
/// its handle (see `cmd::http`), so SIGINT and SIGTERM both drain gracefully.
///
/// This is what `actix_web::HttpServer::listen` assembles (the same actix-server and
/// actix-http parts, HTTP/1 only, as with actix-web's default features off), with one
/// difference: every connection is wrapped in a [`DeadlineStream`], because actix bounds only
/// the first request head of a connection (`middleware::head_deadline`).
///
/// # Errors
/// The listener cannot be used.
pub fn serve(
    listener: TcpListener,
    config: &crate::meta::config::AppConfig,
    module: Arc<AppModule>,
    logger: &Logger,
    metrics: Option<goex_metrics::Metrics>,
    tracing: goex_tracing::Tracing,
) -> std::io::Result<Server> {
    let http: &HttpConfig = &config.server.http;
    let debug_routes = config.server.debug_routes;
    let read_your_writes = config.read_your_writes_enabled();
    let pages = web::Data::new(PageTarget {
        public_url: config.server.socket.public_url.clone(),
        port: crate::meta::config::parse_addr(&config.server.socket.addr)
            .map(|a| a.port())
            .unwrap_or(30000),
    });
    let limit = http.max_body_size;
    let body_timeout = BodyTimeout(http.body_timeout);
    let access_log = http.access_log;
    let trusted = Arc::new(http.trusted_proxies.clone());
    let ids = Arc::new(RequestIdGenerator::new());
    let logger = logger.clone();
    let surface = Surface {
        debug_routes,
        openapi: http.openapi,
        swagger_ui: http.swagger_ui,
    };
    // The process's adaptive load shedder (its CPU sampler starts here when `shedding.enabled`).
    let shedding: &dyn LoadShedding = shaku::HasComponent::resolve_ref(module.as_ref());
    let shedder = shedding.shedder("http").map_err(std::io::Error::other)?;
    let rate_limits: Arc<dyn RateLimitService> = module.resolve();
    let mut doc = document(surface);
    rate_limit::document(&mut doc, rate_limits.as_ref());
    let limiter = RateLimit::new(&doc, rate_limits);
    let table = Arc::new(RouteTable::from_document(&doc));
    let doc_json = openapi::DocumentJson(web::Bytes::from(
        doc.to_json().map_err(std::io::Error::other)?,
    ));
    let app = move || {
        let app = App::new()
            .into_utoipa_app()
            .configure(|cfg| routes(&mut Routes::serving(cfg), surface))
            .into_app();
        let app = if surface.swagger_ui {
            app.service(openapi::swagger_ui())
        } else {
            app
        };
        app
            // Registered as Arc<AppModule> itself, not web::Data: `web::inject` looks it up so.
            .app_data(module.clone())
            .app_data(trusted.clone())
            .app_data(table.clone())
            .app_data(web::Data::new(doc_json.clone()))
            .app_data(pages.clone())
            .app_data(BodyLimit(limit))
            .app_data(body_timeout)
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
            .default_service(web::to(controller::fallback::no_route))
            // Inside the lifecycle (a refusal is its envelope, logged and counted like any) and
            // inside the shedder: a request shed at once spends no allowance and no Redis call.
            .wrap(limiter.clone())
            // Inside the lifecycle: a shed request still gets its id, envelope and record.
            .wrap(Shedding::new(shedder.clone()))
            .wrap(
                RequestLifecycle::new(
                    &logger,
                    access_log,
                    read_your_writes,
                    ids.clone(),
                    trusted.clone(),
                    metrics.clone(),
                )
                .traced(tracing.clone()),
            )
    };

    let addr = listener.local_addr()?;
    let mut builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(http.shutdown_timeout.as_secs_f64().ceil() as u64)
        .max_concurrent_connections(http.max_connections);
    if http.workers > 0 {
        builder = builder.workers(http.workers);
    }
    // Lets idle kept-alive connections close at once when a graceful stop begins.
    let draining = builder.graceful_shutdown_signal();
    let (keep_alive, head_timeout) = (http.keep_alive, http.client_request_timeout);
    let next_head = keep_alive + head_timeout;
    let nodelay = http.tcp_nodelay;
    let builder = builder.listen("go_example-http", listener, move || {
        let draining = draining.clone();
        let service = HttpService::build()
            .graceful_shutdown_signal(move || {
                let draining = draining.clone();
                async move { draining.notified().await }
            })
            .keep_alive(keep_alive)
            .client_request_timeout(head_timeout)
            // HttpServer's default (the builder's own is 0: no linger, no shutdown bound).
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .local_addr(addr)
            .on_connect_ext(|io: &DeadlineStream, data: &mut Extensions| {
                data.insert(io.clock());
                if let Some(peer) = io.peer_addr() {
                    let client = crate::web::client_addr::ClientAddr::new(peer.ip());
                    data.insert(PeerText(client.to_string().into()));
                }
            })
            .h1(map_config(
                app().into_factory().map_err(|e| e.error_response()),
                // HttpServer passes the bound address through a semver-exempt constructor; the
                // public default differs only in the host that `url_for` and `ConnectionInfo`
                // fall back to when a request has no Host header (neither is used here).
                |()| AppConfig::default(),
            ));
        fn_service(move |io: TcpStream| {
            let peer = io.peer_addr().ok();
            if nodelay {
                // A socket that refuses the option still serves: only its answers' timing
                // differs.
                let _ = io.set_nodelay(true);
            }
            ready(Ok::<_, DispatchError>((
                DeadlineStream::new(io, next_head),
                peer,
            )))
        })
        .and_then(service)
    })?;
    Ok(builder.run())
}

/// How long a closing connection may linger to drain unread input, and how long a shutdown
/// write may take (actix-web's `HttpServer` default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

fn json_error(e: actix_web::error::JsonPayloadError) -> ServiceError {
    use actix_web::error::JsonPayloadError as J;
    match e {
        J::Overflow { limit } => ServiceError::PayloadTooLarge { limit },
        J::OverflowKnownLength { limit, .. } => ServiceError::PayloadTooLarge { limit },
        other => ServiceError::invalid("body", other.to_string()),
    }
}

//! The metrics listener (`metrics.addr`, loopback by default): `GET /metrics` in the Prometheus
//! text format. Its own port, so metrics never reach the public listener by accident.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use goex_metrics::Metrics;

/// Serves `/metrics` on `listener` with one worker.
///
/// # Errors
/// The listener cannot be used.
pub fn serve(listener: TcpListener, metrics: Metrics) -> std::io::Result<Server> {
    super::side_server(listener, move |cfg| {
        cfg.app_data(web::Data::new(metrics.clone()))
            .route("/metrics", web::get().to(scrape));
    })
}

async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(metrics.render())
}

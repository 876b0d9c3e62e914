//! The metrics listener (`metrics.addr`, loopback by default): `GET /metrics` in the Prometheus
//! text format, or OpenMetrics when asked for (the trace exemplars ride on it). Its own port, so metrics never reach the public listener by accident.

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

/// The Prometheus text format, or OpenMetrics (with the latency histogram's trace exemplars)
/// when the scraper accepts it, as Prometheus does by default.
async fn scrape(req: actix_web::HttpRequest, metrics: web::Data<Metrics>) -> HttpResponse {
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render_openmetrics(),
        )
    } else {
        ("text/plain; version=0.0.4; charset=utf-8", metrics.render())
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(body)
}

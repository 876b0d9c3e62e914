//! The debug listener (the original's `:6060` pprof server), outside prod only:
//! `GET /debug/pprof/profile?seconds=N` (pprof protobuf, for `pprof -http` or `go tool pprof`) and
//! `GET /debug/pprof/flamegraph?seconds=N` (SVG).

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{HttpResponse, web};
use goex_profiling::{Format, ProfilingError, Settings, cpu_profile};
use serde::Deserialize;
use validator::Validate;

use crate::controller::extract::ValidatedQuery;
use crate::service::error::ServiceError;

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct ProfileQuery {
    #[serde(default = "default_seconds")]
    #[validate(range(min = 1))]
    seconds: u64,
}

fn default_seconds() -> u64 {
    30
}

#[derive(Clone, Copy)]
struct Limits {
    max_seconds: u64,
    frequency: i32,
}

/// Serves the profiling endpoints on `listener` with one worker.
///
/// # Errors
/// The listener cannot be used.
pub fn serve(listener: TcpListener, settings: &Settings) -> std::io::Result<Server> {
    let limits = Limits {
        max_seconds: settings.max_seconds,
        frequency: settings.frequency,
    };
    super::side_server(listener, move |cfg| {
        cfg.app_data(web::Data::new(limits))
            .route("/debug/pprof/", web::get().to(index))
            .route("/debug/pprof/profile", web::get().to(protobuf))
            .route("/debug/pprof/flamegraph", web::get().to(flamegraph));
    })
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(
            "go_example profiling\n\
         /debug/pprof/profile?seconds=30     CPU profile, pprof protobuf (pprof -http=:6061 URL)\n\
         /debug/pprof/flamegraph?seconds=30  CPU flamegraph, SVG\n",
        )
}

async fn protobuf(
    limits: web::Data<Limits>,
    ValidatedQuery(q): ValidatedQuery<ProfileQuery>,
) -> Result<HttpResponse, ServiceError> {
    let body = profile(&limits, q.seconds, Format::Protobuf).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("Content-Disposition", "attachment; filename=\"profile.pb\""))
        .body(body))
}

async fn flamegraph(
    limits: web::Data<Limits>,
    ValidatedQuery(q): ValidatedQuery<ProfileQuery>,
) -> Result<HttpResponse, ServiceError> {
    let body = profile(&limits, q.seconds, Format::Flamegraph).await?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(body))
}

async fn profile(limits: &Limits, seconds: u64, format: Format) -> Result<Vec<u8>, ServiceError> {
    if seconds > limits.max_seconds {
        return Err(ServiceError::invalid(
            "seconds",
            format!("must be at most {}", limits.max_seconds),
        ));
    }
    cpu_profile(Duration::from_secs(seconds), limits.frequency, format)
        .await
        .map_err(|e| match e {
            ProfilingError::Busy => {
                ServiceError::invalid("seconds", "another profile is being taken")
            }
            other => ServiceError::Internal(Box::new(other)),
        })
}

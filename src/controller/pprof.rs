//! The debug listener's routes (the original's `:6060` pprof server, outside prod only):
//! `GET /debug/pprof/profile?seconds=N` (pprof protobuf, for `pprof -http` or `go tool pprof`)
//! and `GET /debug/pprof/flamegraph?seconds=N` (SVG), over the profiling service. Served on
//! their own listener (`server::pprof`), so not in the OpenAPI document.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use shaku::{HasComponent, ModuleInterface};
use validator::Validate;

use crate::service::error::ServiceError;
use crate::service::profiling::{ProfileFormat, ProfilingService};
use crate::web::extract::ValidatedQuery;
use crate::web::inject::Inject;

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

/// Registers the profiling routes.
pub fn routes<M>(cfg: &mut web::ServiceConfig)
where
    M: ModuleInterface + HasComponent<dyn ProfilingService> + ?Sized,
{
    cfg.route("/debug/pprof/", web::get().to(index))
        .route("/debug/pprof/profile", web::get().to(protobuf::<M>))
        .route("/debug/pprof/flamegraph", web::get().to(flamegraph::<M>));
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

async fn protobuf<M>(
    profiling: Inject<M, dyn ProfilingService>,
    ValidatedQuery(q): ValidatedQuery<ProfileQuery>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn ProfilingService> + ?Sized,
{
    let body = profiling
        .cpu_profile(q.seconds, ProfileFormat::Protobuf)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("Content-Disposition", "attachment; filename=\"profile.pb\""))
        .body(body))
}

async fn flamegraph<M>(
    profiling: Inject<M, dyn ProfilingService>,
    ValidatedQuery(q): ValidatedQuery<ProfileQuery>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn ProfilingService> + ?Sized,
{
    let body = profiling
        .cpu_profile(q.seconds, ProfileFormat::Flamegraph)
        .await?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(body))
}

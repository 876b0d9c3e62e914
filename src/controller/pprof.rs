//! The debug listener's routes (the original's `:6060` pprof server, outside prod only):
//! `GET /debug/pprof/profile?seconds=N` (pprof protobuf, for `pprof -http` or `go tool pprof`)
//! and `GET /debug/pprof/flamegraph?seconds=N` (SVG), over the profiling service. Served on
//! their own listener (`server::pprof`), so not in the OpenAPI document.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use serde::Deserialize;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
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

/// The profiling controller.
#[async_trait]
pub trait PprofController: Interface {
    /// `GET /debug/pprof/profile`: a CPU profile of `seconds`, pprof protobuf, as an
    /// attachment.
    ///
    /// # Errors
    /// As [`ProfilingService::cpu_profile`].
    async fn profile(&self, seconds: u64) -> Result<HttpResponse, ServiceError>;
    /// `GET /debug/pprof/flamegraph`: a CPU flamegraph of `seconds`, SVG.
    ///
    /// # Errors
    /// As [`ProfilingService::cpu_profile`].
    async fn flamegraph(&self, seconds: u64) -> Result<HttpResponse, ServiceError>;
}

/// [`PprofController`] over the profiling service.
#[derive(Component)]
#[shaku(interface = PprofController)]
pub struct PprofControllerImpl {
    #[shaku(inject)]
    profiling: Arc<dyn ProfilingService>,
}

#[async_trait]
impl PprofController for PprofControllerImpl {
    async fn profile(&self, seconds: u64) -> Result<HttpResponse, ServiceError> {
        let body = self
            .profiling
            .cpu_profile(seconds, ProfileFormat::Protobuf)
            .await?;
        Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header(("Content-Disposition", "attachment; filename=\"profile.pb\""))
            .body(body))
    }

    async fn flamegraph(&self, seconds: u64) -> Result<HttpResponse, ServiceError> {
        let body = self
            .profiling
            .cpu_profile(seconds, ProfileFormat::Flamegraph)
            .await?;
        Ok(HttpResponse::Ok().content_type("image/svg+xml").body(body))
    }
}

/// Registers the profiling routes.
pub fn routes<M>(cfg: &mut web::ServiceConfig)
where
    M: ModuleInterface + HasComponent<dyn PprofController> + ?Sized,
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
    controller: Inject<M, dyn PprofController>,
    ValidatedQuery(q): ValidatedQuery<ProfileQuery>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn PprofController> + ?Sized,
{
    controller.profile(q.seconds).await
}

async fn flamegraph<M>(
    controller: Inject<M, dyn PprofController>,
    ValidatedQuery(q): ValidatedQuery<ProfileQuery>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn PprofController> + ?Sized,
{
    controller.flamegraph(q.seconds).await
}

//! `GET /healthz` (liveness: the process serves) and `GET /readyz` (readiness: every configured
//! dependency answers; 503 with code 10004 naming the first that does not).

use std::sync::Arc;

use actix_web::HttpResponse;
use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, HasComponent, Interface, ModuleInterface};

use crate::service::error::ServiceError;
use crate::service::health::{HealthService, Readiness};
use crate::web::inject::Inject;
use crate::web::routes::Routes;

/// The health controller.
#[async_trait]
pub trait HealthController: Interface {
    /// `GET /readyz`: the readiness of every dependency as JSON.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] naming a dependency that is down.
    async fn ready(&self) -> Result<HttpResponse, ServiceError>;
}

/// [`HealthController`] over the health service.
#[derive(Component)]
#[shaku(interface = HealthController)]
pub struct HealthControllerImpl {
    #[shaku(inject)]
    health: Arc<dyn HealthService>,
}

#[async_trait]
impl HealthController for HealthControllerImpl {
    async fn ready(&self) -> Result<HttpResponse, ServiceError> {
        let readiness = self.health.readiness().await?;
        Ok(HttpResponse::Ok().json(readiness))
    }
}

/// Registers `/healthz` and `/readyz`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface + HasComponent<dyn HealthController> + ?Sized,
{
    routes
        .add(__path_live, &[], live)
        .add(__path_ready, &[goex_errors::ERR_DIAL], ready::<M>);
}

/// `{"status": "alive"}`.
#[derive(Serialize, utoipa::ToSchema)]
struct Liveness {
    /// Always `alive`.
    #[schema(pattern = "^alive$")]
    status: &'static str,
}

/// Liveness: the process serves.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "liveness",
    responses((status = 200, description = "The process serves.", body = Liveness)),
)]
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "alive" })
}

/// Readiness: every configured dependency answers (503 / 10004 names the first that does
/// not).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readiness",
    responses((status = 200, description = "Every critical dependency answers.", body = Readiness)),
)]
async fn ready<M>(controller: Inject<M, dyn HealthController>) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn HealthController> + ?Sized,
{
    controller.ready().await
}

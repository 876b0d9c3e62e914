//! `GET /healthz` (liveness: the process serves) and `GET /readyz` (readiness: every configured
//! dependency answers; 503 with code 10004 naming the first that does not).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use serde_json::json;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use shaku_actix::Inject;

use crate::service::error::ServiceError;
use crate::service::health::{HealthService, Readiness};

/// The health controller.
#[async_trait]
pub trait HealthController: Interface {
    /// Readiness of every dependency.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] naming a dependency that is down.
    async fn ready(&self) -> Result<Readiness, ServiceError>;
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
    async fn ready(&self) -> Result<Readiness, ServiceError> {
        self.health.readiness().await
    }
}

/// Registers `/healthz` and `/readyz`.
pub fn routes<M>(cfg: &mut web::ServiceConfig)
where
    M: ModuleInterface + HasComponent<dyn HealthController> + ?Sized,
{
    cfg.route("/healthz", web::get().to(live))
        .route("/readyz", web::get().to(ready::<M>));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

async fn ready<M>(controller: Inject<M, dyn HealthController>) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn HealthController> + ?Sized,
{
    Ok(HttpResponse::Ok().json(controller.ready().await?))
}

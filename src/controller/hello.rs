//! `GET /hello` (the original's `hello_controller.go`).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use shaku_actix::Inject;

use crate::controller::extract::ValidatedQuery;
use crate::model::forms::HelloQuery;
use crate::service::error::ServiceError;
use crate::service::hello::{Greeting, HelloService};

/// The hello controller.
#[async_trait]
pub trait HelloController: Interface {
    /// Answers `GET /hello?id=`.
    ///
    /// # Errors
    /// Whatever the service fails with.
    async fn say(&self, query: HelloQuery) -> Result<Greeting, ServiceError>;
}

/// [`HelloController`] over the hello service.
#[derive(Component)]
#[shaku(interface = HelloController)]
pub struct HelloControllerImpl {
    #[shaku(inject)]
    hello: Arc<dyn HelloService>,
}

#[async_trait]
impl HelloController for HelloControllerImpl {
    async fn say(&self, query: HelloQuery) -> Result<Greeting, ServiceError> {
        self.hello.say_hello(query.id).await
    }
}

/// Registers `/hello`, resolving the controller from module `M`.
pub fn routes<M>(cfg: &mut web::ServiceConfig)
where
    M: ModuleInterface + HasComponent<dyn HelloController> + ?Sized,
{
    cfg.route("/hello", web::get().to(say::<M>));
}

async fn say<M>(
    controller: Inject<M, dyn HelloController>,
    ValidatedQuery(query): ValidatedQuery<HelloQuery>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn HelloController> + ?Sized,
{
    Ok(HttpResponse::Ok().json(controller.say(query).await?))
}

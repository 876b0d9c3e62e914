//! `GET /hello` (the original's `hello_controller.go`).

use std::sync::Arc;

use actix_web::HttpResponse;
use async_trait::async_trait;
use shaku::{Component, HasComponent, Interface, ModuleInterface};

use crate::model::forms::HelloQuery;
use crate::service::error::ServiceError;
use crate::service::hello::{Greeting, HelloService};
use crate::web::extract::ValidatedQuery;
use crate::web::inject::Inject;
use crate::web::routes::Routes;

/// The hello controller.
#[async_trait]
pub trait HelloController: Interface {
    /// Answers `GET /hello?id=`: the greeting as JSON.
    ///
    /// # Errors
    /// Whatever the service fails with.
    async fn say(&self, query: HelloQuery) -> Result<HttpResponse, ServiceError>;
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
    async fn say(&self, query: HelloQuery) -> Result<HttpResponse, ServiceError> {
        let greeting = self.hello.say_hello(query.id).await?;
        Ok(HttpResponse::Ok().json(greeting))
    }
}

/// Registers `/hello`, resolving the controller from module `M`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface + HasComponent<dyn HelloController> + ?Sized,
{
    routes.add(__path_say, &[goex_errors::ERR_DIAL], say::<M>);
}

/// Greets, naming user `id` when it exists (the original's `GET /hello`).
#[utoipa::path(
    get,
    path = "/hello",
    tag = "hello",
    operation_id = "hello",
    params(HelloQuery),
    responses((status = 200, description = "The greeting.", body = Greeting)),
)]
async fn say<M>(
    controller: Inject<M, dyn HelloController>,
    ValidatedQuery(query): ValidatedQuery<HelloQuery>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn HelloController> + ?Sized,
{
    controller.say(query).await
}

//! `GET /grpc/hello?id=` (the original's gRPC-client route in `hello_controller.go`): calls the
//! gRPC app's `SayHello` through the shared client and its circuit breaker. When the breaker is
//! open the answer is 503 / 10004 saying so, never a made-up success.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::service::error::ServiceError;
use crate::service::hello::HelloService;
use crate::web::client_addr::client_addr;
use crate::web::extract::ValidatedQuery;
use crate::web::inject::Inject;
use crate::web::routes::Routes;

/// `?id=` for `/grpc/hello`: the id sent to `SayHello`.
#[derive(Clone, Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GrpcHelloQuery {
    /// The `HelloRequest.id` (an int32); absent means 1, as in the original.
    #[serde(default = "default_id")]
    #[param(minimum = -2147483648, maximum = 2147483647)]
    pub id: i32,
}

fn default_id() -> i32 {
    1
}

/// The gRPC-client controller.
#[async_trait(?Send)]
pub trait GrpcClientController: Interface {
    /// `GET /grpc/hello?id=`: calls `SayHello(id)` for the client of `req` (its address is
    /// forwarded to the gRPC app), and answers the name.
    ///
    /// # Errors
    /// As the service: 10002, 10003, 10004 (unreachable or circuit open).
    async fn hello(
        &self,
        req: &HttpRequest,
        query: GrpcHelloQuery,
    ) -> Result<HttpResponse, ServiceError>;
}

/// [`GrpcClientController`] over the hello service.
#[derive(Component)]
#[shaku(interface = GrpcClientController)]
pub struct GrpcClientControllerImpl {
    #[shaku(inject)]
    hello: Arc<dyn HelloService>,
}

#[async_trait(?Send)]
impl GrpcClientController for GrpcClientControllerImpl {
    async fn hello(
        &self,
        req: &HttpRequest,
        query: GrpcHelloQuery,
    ) -> Result<HttpResponse, ServiceError> {
        let name = self
            .hello
            .say_hello_remote(query.id, client_addr(req).ip)
            .await?;
        Ok(HttpResponse::Ok().json(GrpcHelloResponse {
            data: GrpcHelloData { name },
        }))
    }
}

/// Registers `/grpc/hello`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface + HasComponent<dyn GrpcClientController> + ?Sized,
{
    use goex_errors::{ERR_CALL_FUNC, ERR_CERT, ERR_DIAL};
    routes.add(
        __path_grpc_hello,
        &[ERR_CERT, ERR_CALL_FUNC, ERR_DIAL],
        grpc_hello::<M>,
    );
}

/// `{"data": {"name": ...}}`, the original's shape.
#[derive(Serialize, ToSchema)]
struct GrpcHelloResponse {
    data: GrpcHelloData,
}

#[derive(Serialize, ToSchema)]
struct GrpcHelloData {
    /// `hello world` for id 1, else `hello gRPC` (the gRPC app's answer).
    name: String,
}

/// Calls the gRPC app's `hello.HelloService/SayHello` through the circuit breaker
/// (`grpc_client.breaker.SayHello`). 503 / 10004 when the gRPC app is unreachable or the
/// breaker is open (the message says which); 502 / 10003 when the call failed there; 500 /
/// 10002 when the client's certificates are missing. Anonymous; calls per client address are
/// the `rate_limit` rule `grpc-hello` (429 / 10008 past it).
#[utoipa::path(
    get,
    path = "/grpc/hello",
    tag = "grpc",
    operation_id = "grpc_hello",
    params(GrpcHelloQuery),
    responses((status = 200, description = "The gRPC app's answer.", body = GrpcHelloResponse)),
)]
async fn grpc_hello<M>(
    controller: Inject<M, dyn GrpcClientController>,
    ValidatedQuery(query): ValidatedQuery<GrpcHelloQuery>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn GrpcClientController> + ?Sized,
{
    controller.hello(&req, query).await
}

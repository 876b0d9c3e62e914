//! `hello.HelloService` (the original's gRPC server): `SayHello`.

use std::sync::Arc;

use shaku::{Component, Interface};
use tonic::{Request, Response, Status};

use crate::proto::hello::hello_service_server::HelloService as HelloRpc;
use crate::proto::hello::{HelloRequest, HelloResponse};
use crate::service::hello::HelloService;

/// The `hello.HelloService` controller: the trait tonic generates from `proto/hello/hello.proto`,
/// made a shaku interface.
pub trait HelloRpcController: HelloRpc + Interface {}

/// `SayHello` over the hello service.
#[derive(Component)]
#[shaku(interface = HelloRpcController)]
pub struct HelloRpcControllerImpl {
    #[shaku(inject)]
    hello: Arc<dyn HelloService>,
}

#[tonic::async_trait]
impl HelloRpc for HelloRpcControllerImpl {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(HelloResponse {
            id,
            name: self.hello.rpc_greeting(id).to_owned(),
        }))
    }
}

impl HelloRpcController for HelloRpcControllerImpl {}

/// The component as the module hands it out: tonic's generated server takes a sized service,
/// so the resolved `Arc<dyn HelloRpcController>` is one.
#[tonic::async_trait]
impl HelloRpc for Arc<dyn HelloRpcController> {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        (**self).say_hello(request).await
    }
}

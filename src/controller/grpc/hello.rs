//! `hello.HelloService` (the original's gRPC server): `SayHello`.

use std::sync::Arc;

use shaku::HasComponent;
use tonic::{Request, Response, Status};

use crate::proto::hello::hello_service_server::HelloService as HelloRpcService;
use crate::proto::hello::{HelloRequest, HelloResponse};
use crate::service::hello::HelloService;

/// `SayHello` over the hello service.
pub struct HelloRpc {
    hello: Arc<dyn HelloService>,
}

impl HelloRpc {
    /// The controller with its service resolved from `module`.
    pub fn new<M: HasComponent<dyn HelloService> + ?Sized>(module: &M) -> Self {
        Self {
            hello: module.resolve(),
        }
    }
}

#[tonic::async_trait]
impl HelloRpcService for HelloRpc {
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

//! `user.UserService`: `GetUser`, the HTTP app's user read over gRPC.

use std::sync::Arc;

use shaku::HasComponent;
use tonic::{Request, Response, Status};

use crate::proto::user::user_service_server::UserService as UserRpcService;
use crate::proto::user::{GetUserRequest, User};
use crate::server::grpc::status;
use crate::service::user::UserService;

/// `GetUser` over the user service.
pub struct UserRpc {
    users: Arc<dyn UserService>,
}

impl UserRpc {
    /// The controller with its service resolved from `module`.
    pub fn new<M: HasComponent<dyn UserService> + ?Sized>(module: &M) -> Self {
        Self {
            users: module.resolve(),
        }
    }
}

#[tonic::async_trait]
impl UserRpcService for UserRpc {
    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let user = self
            .users
            .get(request.into_inner().id)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(User {
            id: user.id,
            username: user.username,
            gender: i32::from(user.gender),
        }))
    }
}

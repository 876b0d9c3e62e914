//! `user.UserService`: `GetUser`, the HTTP app's user read over gRPC: any user for services
//! (the shared credentials) and admins, only their own record for other users (issue 22).

use std::sync::Arc;

use shaku::{Component, Interface};
use tonic::{Request, Response, Status};

use crate::controller::grpc::caller::caller_of;
use crate::proto::user::user_service_server::UserService as UserRpc;
use crate::proto::user::{GetUserRequest, User};
use crate::service::user::UserService;
use crate::web::envelope::status;

/// The `user.UserService` controller: the trait tonic generates from `proto/user/user.proto`,
/// made a shaku interface.
pub trait UserRpcController: UserRpc + Interface {}

/// `GetUser` over the user service.
#[derive(Component)]
#[shaku(interface = UserRpcController)]
pub struct UserRpcControllerImpl {
    #[shaku(inject)]
    users: Arc<dyn UserService>,
}

#[tonic::async_trait]
impl UserRpc for UserRpcControllerImpl {
    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let caller = caller_of(&request)?;
        let user = self
            .users
            .get_as(&caller, request.into_inner().id)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(User {
            id: user.id,
            username: user.username,
            gender: i32::from(user.gender),
        }))
    }
}

impl UserRpcController for UserRpcControllerImpl {}

/// The component as the module hands it out: tonic's generated server takes a sized service,
/// so the resolved `Arc<dyn UserRpcController>` is one.
#[tonic::async_trait]
impl UserRpc for Arc<dyn UserRpcController> {
    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        (**self).get_user(request).await
    }
}

//! `user.UserService`: `GetUser`, the HTTP app's user read over gRPC: any user for services
//! (the shared credentials) and admins, only their own record for other users (issue 22).

use std::sync::Arc;

use shaku::HasComponent;
use tonic::{Request, Response, Status};

use crate::proto::user::user_service_server::UserService as UserRpcService;
use crate::proto::user::{GetUserRequest, User};
use crate::service::caller::Caller;
use crate::service::error::ServiceError;
use crate::service::user::UserService;
use crate::web::envelope::status;

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
        // The auth layer put the caller here; a call without one never reaches this.
        let Some(caller) = request.extensions().get::<Caller>().cloned() else {
            return Err(status(&ServiceError::Unauthorized("no caller".into())));
        };
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

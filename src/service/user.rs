//! The user read (cache-aside: the in-process cache, then the database, then fill the cache),
//! served by gRPC's `user.UserService.GetUser`.

use std::sync::Arc;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::model::user::UserView;
use crate::repository::cache::user::UserCacheRepository;
use crate::repository::mysql::user::UserRepository;
use crate::service::caller::Caller;
use crate::service::error::ServiceError;

/// Reads users.
#[async_trait]
pub trait UserService: Interface {
    /// User `id` as the API shows it (never its password hash).
    ///
    /// # Errors
    /// [`ServiceError::InvalidInput`] for an id below 1, [`ServiceError::NotFound`] when there
    /// is no such user, [`ServiceError::Unavailable`] when the database does not answer.
    async fn get(&self, id: i64) -> Result<UserView, ServiceError>;

    /// [`UserService::get`] for `caller`: services and admins read any user, other users only
    /// themselves.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for someone else's record; as [`UserService::get`].
    async fn get_as(&self, caller: &Caller, id: i64) -> Result<UserView, ServiceError> {
        if !caller.may_access_user(id) {
            return Err(ServiceError::Forbidden("only your own user".into()));
        }
        self.get(id).await
    }
}

/// [`UserService`] over the user cache and repository.
#[derive(Component)]
#[shaku(interface = UserService)]
pub struct UserServiceImpl {
    #[shaku(inject)]
    users: Arc<dyn UserRepository>,
    #[shaku(inject)]
    user_cache: Arc<dyn UserCacheRepository>,
}

#[async_trait]
impl UserService for UserServiceImpl {
    async fn get(&self, id: i64) -> Result<UserView, ServiceError> {
        if id < 1 {
            return Err(ServiceError::invalid("id", "must be at least 1"));
        }
        if let Some(user) = self.user_cache.get(id) {
            return Ok(UserView::from(&user));
        }
        let user = self.users.find(id).await?.ok_or(ServiceError::NotFound)?;
        self.user_cache.set(&user);
        Ok(UserView::from(&user))
    }
}

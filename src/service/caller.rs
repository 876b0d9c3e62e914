//! Who calls the gRPC app (issue 22): the caller a call authenticated as, put in the request's
//! extensions by the gRPC server's auth layer for the controllers, and the check of the shared
//! `user` / `password` metadata credentials. Failed attempts count per client bucket in the
//! throttle store (shared by the processes when Redis is on) like failed logins, and are logged
//! at warn; past `auth.max_failures` the bucket is refused, the right password included, for the
//! rest of the window. A right password costs no store round trip: the refused buckets are also
//! kept in process, so the hot path of service calls stays a constant-time comparison and a
//! map lookup. (Another instance learns of a refused bucket at its next failed attempt.)

use std::sync::Arc;

use async_trait::async_trait;
use goex_cache::ExpiringCache;
use secrecy::ExposeSecret;
use shaku::{Component, Interface};
use slog::Logger;
use subtle::ConstantTimeEq;

use crate::meta::config::{AuthConfig, GrpcAuthConfig};
use crate::model::role::Role;
use crate::repository::redis::throttle::LoginThrottleRepository;
use crate::service::auth::AuthUser;
use crate::service::error::ServiceError;

/// The caller of a gRPC call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Another service, with the shared metadata credentials (`server.grpc.auth.user`).
    Service,
    /// A signed-in user, with an access token.
    User(AuthUser),
}

impl Caller {
    /// Whether the caller may read or act on user `id`'s own data: services and admins may
    /// for anyone, other users for themselves.
    pub fn may_access_user(&self, id: i64) -> bool {
        match self {
            Caller::Service => true,
            Caller::User(user) => user.id == id || user.has(Role::Admin),
        }
    }

    /// The signed-in user making the call: changes are made by users, under the same rules as
    /// over HTTP (the shared service credentials read).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for a call with the service credentials.
    pub fn user(&self) -> Result<&AuthUser, ServiceError> {
        match self {
            Caller::User(user) => Ok(user),
            Caller::Service => Err(ServiceError::Forbidden(
                "the service credentials read; a change needs a signed-in user's token".into(),
            )),
        }
    }

    /// The signed-in admin making the call.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for anyone else (a user without the admin role, a service).
    pub fn admin(&self) -> Result<&AuthUser, ServiceError> {
        let user = self.user()?;
        if user.has(Role::Admin) {
            Ok(user)
        } else {
            Err(ServiceError::Forbidden("admins only".into()))
        }
    }
}

/// Checks the metadata credentials of gRPC calls.
#[async_trait]
pub trait CallerAuthService: Interface {
    /// Checks `user` / `password` from client bucket `client`.
    ///
    /// # Errors
    /// [`ServiceError::Unauthorized`] for wrong credentials (or password auth off);
    /// [`ServiceError::TooManyRequests`] when the bucket failed `max_failures` times in the
    /// window (then even the right password is refused until it ends).
    async fn check_service(
        &self,
        user: &[u8],
        password: &[u8],
        client: &str,
    ) -> Result<Caller, ServiceError>;
}

/// [`CallerAuthService`] over the throttle repository.
#[derive(Component)]
#[shaku(interface = CallerAuthService)]
pub struct CallerAuthServiceImpl {
    #[shaku(inject)]
    throttle: Arc<dyn LoginThrottleRepository>,
    /// `server.grpc.auth.*`: the shared `user` / `password` credentials.
    grpc_auth: GrpcAuthConfig,
    /// `auth.max_failures` and `auth.failure_window`: the credentials' throttle.
    auth: AuthConfig,
    /// Client buckets refused until their window ends (bounded, O(1) eviction).
    refused: Arc<ExpiringCache<String, ()>>,
    /// Refusals at warn.
    logger: Logger,
}

#[async_trait]
impl CallerAuthService for CallerAuthServiceImpl {
    async fn check_service(
        &self,
        user: &[u8],
        password: &[u8],
        client: &str,
    ) -> Result<Caller, ServiceError> {
        let expected_password = self.grpc_auth.password.expose_secret().as_bytes();
        let user_ok = user.ct_eq(self.grpc_auth.user.as_bytes());
        let password_ok = password.ct_eq(expected_password);
        // A configured empty password admits nobody by password.
        let right = bool::from(user_ok & password_ok) && !expected_password.is_empty();
        if right {
            if self.refused.get(client).is_some() {
                return Err(ServiceError::TooManyRequests);
            }
            return Ok(Caller::Service);
        }
        // A failure counts (atomically: parallel guesses are each counted).
        let subject = format!("grpc:{client}");
        let window = self.auth.failure_window;
        let count = self.throttle.reserve(&subject, window).await?;
        if count > self.auth.max_failures {
            self.refused.insert(client.to_owned(), (), window);
            slog::warn!(self.logger, "grpc credentials throttled"; "client" => client,
                "limit" => self.auth.max_failures);
            return Err(ServiceError::TooManyRequests);
        }
        slog::warn!(self.logger, "grpc credentials refused"; "client" => client,
            "user" => String::from_utf8_lossy(user).chars().take(64).collect::<String>());
        Err(ServiceError::Unauthorized("wrong user or password".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::role::Roles;

    fn user(roles: Roles) -> Caller {
        Caller::User(AuthUser {
            id: 7,
            username: "u7".into(),
            sid: "s".into(),
            roles,
        })
    }

    #[test]
    fn changes_need_a_user_and_admin_changes_an_admin() {
        let forbidden =
            |r: Result<&AuthUser, ServiceError>| matches!(r, Err(ServiceError::Forbidden(_)));
        assert!(forbidden(Caller::Service.user()));
        assert!(forbidden(Caller::Service.admin()));
        let plain = user(Roles::NONE);
        assert_eq!(plain.user().unwrap().id, 7);
        assert!(forbidden(plain.admin()));
        let admin = user(Roles::NONE.with(Role::Admin));
        assert_eq!(admin.admin().unwrap().id, 7);
    }
}

//! The guard of protected routes: a handler that takes [`Authenticated`] runs only for a valid
//! access token of the user's latest login (the original's `JWTAuthMiddleware`); one that takes
//! [`Admin`] runs only when that user also has the `admin` role (else 403 / 10011), and the
//! request is then recorded in the audit trail ([`AdminRequest`]).
//!
//! A route's rate-limit rules keyed by user spend their buckets here, once the token passed
//! (`web::rate_limit`).
//!
//! Authorization is checked here and nowhere else: a route states its caller by the extractor it
//! takes (none: anonymous; [`Authenticated`]: a user; [`Admin`]: an admin).

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use shaku::HasComponent;

use crate::model::role::Role;
use crate::service::auth::{AuthService, AuthUser, bearer, header_text};
use crate::service::error::ServiceError;
use crate::web::rate_limit;

/// The signed-in user; extracting it authenticates the request against the `dyn AuthService`
/// of the module `M` registered with the app. Generic over the module so that it names no
/// concrete assembly.
pub struct Authenticated<M: ?Sized> {
    /// The user.
    pub user: AuthUser,
    module: PhantomData<fn() -> Box<M>>,
}

impl<M: ?Sized> Deref for Authenticated<M> {
    type Target = AuthUser;

    fn deref(&self) -> &AuthUser {
        &self.user
    }
}

/// The id of the user a request authenticated as, left in the request's extensions by
/// [`Authenticated`] for the access record (`user_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticatedUserId(pub i64);

/// The credentials a request carries (`Authorization: Bearer <jwt>`).
pub fn credentials(req: &HttpRequest) -> Result<String, ServiceError> {
    bearer_token(req.headers().get(header::AUTHORIZATION)).map(str::to_owned)
}

/// The token of an `Authorization: Bearer <jwt>` header.
fn bearer_token(value: Option<&header::HeaderValue>) -> Result<&str, ServiceError> {
    let value =
        value.ok_or_else(|| ServiceError::Unauthorized("no Authorization header".into()))?;
    let value = header_text(value.as_bytes())
        .ok_or_else(|| ServiceError::Unauthorized("unreadable Authorization header".into()))?;
    bearer(value).ok_or_else(|| ServiceError::Unauthorized("not a Bearer token".into()))
}

/// An admin's request: left in the request's extensions by [`Admin`], so the request lifecycle
/// writes its audit record (actor, action, target, client, outcome) when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminRequest(pub i64);

/// Authenticates the request against the module `M` registered with the app.
fn authenticate<M>(
    req: &HttpRequest,
) -> Pin<Box<dyn Future<Output = Result<AuthUser, ServiceError>>>>
where
    M: HasComponent<dyn AuthService> + ?Sized + Send + Sync + 'static,
{
    // The header itself (its bytes are shared with the request, not copied).
    let header = req.headers().get(header::AUTHORIZATION).cloned();
    let module = req.app_data::<Arc<M>>().cloned();
    let req = req.clone();
    Box::pin(async move {
        let module =
            module.ok_or_else(|| ServiceError::Internal("module not registered".into()))?;
        let auth: &dyn AuthService = module.resolve_ref();
        let checked = match bearer_token(header.as_ref()) {
            Ok(token) => auth.authenticate(token).await,
            Err(e) => Err(e),
        };
        // The route's user-keyed rate limits: by this user once the token passed, else by the
        // client's address (a refusal then answers 429 rather than 401).
        match checked {
            Ok(user) => {
                req.extensions_mut().insert(AuthenticatedUserId(user.id));
                rate_limit::spend_pending(&req, Some(user.id)).await?;
                Ok(user)
            }
            Err(e) => {
                rate_limit::spend_pending(&req, None).await?;
                Err(e)
            }
        }
    })
}

impl<M> FromRequest for Authenticated<M>
where
    M: HasComponent<dyn AuthService> + ?Sized + Send + Sync + 'static,
{
    type Error = ServiceError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ServiceError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = authenticate::<M>(req);
        Box::pin(async move {
            Ok(Authenticated {
                user: user.await?,
                module: PhantomData,
            })
        })
    }
}

/// A signed-in user with the `admin` role; extracting it authorizes the request (403 / 10011
/// for any other user, 401 without a valid token). Generic over the module so that it names
/// no concrete assembly.
pub struct Admin<M: ?Sized> {
    /// The admin.
    pub user: AuthUser,
    module: PhantomData<fn() -> Box<M>>,
}

impl<M: ?Sized> Deref for Admin<M> {
    type Target = AuthUser;

    fn deref(&self) -> &AuthUser {
        &self.user
    }
}

impl<M> FromRequest for Admin<M>
where
    M: HasComponent<dyn AuthService> + ?Sized + Send + Sync + 'static,
{
    type Error = ServiceError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ServiceError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = authenticate::<M>(req);
        let req = req.clone();
        Box::pin(async move {
            let user = user.await?;
            if !user.has(Role::Admin) {
                return Err(ServiceError::Forbidden("this route is for admins".into()));
            }
            req.extensions_mut().insert(AdminRequest(user.id));
            Ok(Admin {
                user,
                module: PhantomData,
            })
        })
    }
}

//! The guard of protected routes: a handler that takes [`Authenticated`] runs only for a valid
//! access token of the user's latest login (the original's `JWTAuthMiddleware`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use shaku::HasComponent;

use crate::assembly::AppModule;
use crate::service::auth::{AuthService, AuthUser, bearer};
use crate::service::error::ServiceError;

/// The signed-in user; extracting it authenticates the request.
#[derive(Clone, Debug)]
pub struct Authenticated(pub AuthUser);

/// The id of the user a request authenticated as, left in the request's extensions by
/// [`Authenticated`] for the access record (`user_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticatedUserId(pub i64);

/// The credentials a request carries (`Authorization: Bearer <jwt>`).
pub fn credentials(req: &HttpRequest) -> Result<String, ServiceError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ServiceError::Unauthorized("no Authorization header".into()))?;
    let value = value
        .to_str()
        .map_err(|_| ServiceError::Unauthorized("unreadable Authorization header".into()))?;
    bearer(value)
        .map(str::to_owned)
        .ok_or_else(|| ServiceError::Unauthorized("not a Bearer token".into()))
}

impl FromRequest for Authenticated {
    type Error = ServiceError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ServiceError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = credentials(req);
        let module = req.app_data::<Arc<AppModule>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let module =
                module.ok_or_else(|| ServiceError::Internal("module not registered".into()))?;
            let auth: &dyn AuthService = module.resolve_ref();
            let user = auth.authenticate(&token?).await?;
            req.extensions_mut().insert(AuthenticatedUserId(user.id));
            Ok(Authenticated(user))
        })
    }
}

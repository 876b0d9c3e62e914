//! `/auth/*` (the original's `auth_controller.go`): register, login, refresh, logout.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use serde_json::json;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use shaku_actix::Inject;

use crate::controller::extract::ValidatedBody;
use crate::middleware::client_addr::client_addr;
use crate::middleware::jwt_auth::{Authenticated, credentials};
use crate::model::forms::{LoginForm, RegisterForm};
use crate::model::user::UserView;
use crate::service::auth::{AuthService, AuthUser, TokenPair};
use crate::service::error::ServiceError;

/// The auth controller.
#[async_trait]
pub trait AuthController: Interface {
    /// `POST /auth/register`.
    ///
    /// # Errors
    /// As the service.
    async fn register(&self, form: RegisterForm, client: String) -> Result<UserView, ServiceError>;
    /// `POST /auth/login`.
    ///
    /// # Errors
    /// As the service.
    async fn login(&self, form: LoginForm, client: String) -> Result<TokenPair, ServiceError>;
    /// `GET /auth/refresh_token`.
    ///
    /// # Errors
    /// As the service.
    async fn refresh(
        &self,
        refresh_token: String,
        client: String,
    ) -> Result<TokenPair, ServiceError>;
    /// `POST /auth/logout`.
    ///
    /// # Errors
    /// As the service.
    async fn logout(&self, user: AuthUser) -> Result<(), ServiceError>;
}

/// [`AuthController`] over the auth service.
#[derive(Component)]
#[shaku(interface = AuthController)]
pub struct AuthControllerImpl {
    #[shaku(inject)]
    auth: Arc<dyn AuthService>,
}

#[async_trait]
impl AuthController for AuthControllerImpl {
    async fn register(&self, form: RegisterForm, client: String) -> Result<UserView, ServiceError> {
        self.auth.register(form, &client).await
    }

    async fn login(&self, form: LoginForm, client: String) -> Result<TokenPair, ServiceError> {
        self.auth.login(form, &client).await
    }

    async fn refresh(
        &self,
        refresh_token: String,
        client: String,
    ) -> Result<TokenPair, ServiceError> {
        self.auth.refresh(&refresh_token, &client).await
    }

    async fn logout(&self, user: AuthUser) -> Result<(), ServiceError> {
        self.auth.logout(&user).await
    }
}

/// Registers `/auth/*`.
pub fn routes<M>(cfg: &mut web::ServiceConfig)
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    cfg.route("/auth/register", web::post().to(register::<M>))
        .route("/auth/login", web::post().to(login::<M>))
        .route("/auth/refresh_token", web::get().to(refresh::<M>))
        .route("/auth/logout", web::post().to(logout::<M>));
}

async fn register<M>(
    req: HttpRequest,
    controller: Inject<M, dyn AuthController>,
    ValidatedBody(form): ValidatedBody<RegisterForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    let client = client_bucket(&req);
    Ok(HttpResponse::Created().json(json!({ "data": controller.register(form, client).await? })))
}

async fn login<M>(
    req: HttpRequest,
    controller: Inject<M, dyn AuthController>,
    ValidatedBody(form): ValidatedBody<LoginForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    let pair = controller.login(form, client_bucket(&req)).await?;
    Ok(tokens_response(&pair))
}

async fn refresh<M>(
    req: HttpRequest,
    controller: Inject<M, dyn AuthController>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    let token = credentials(&req).map_err(|_| ServiceError::RefreshFailed("no refresh token"))?;
    let pair = controller.refresh(token, client_bucket(&req)).await?;
    Ok(tokens_response(&pair))
}

async fn logout<M>(
    controller: Inject<M, dyn AuthController>,
    Authenticated(user): Authenticated,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    controller.logout(user).await?;
    Ok(HttpResponse::Ok().json(json!({ "data": { "message": "OK" } })))
}

/// The original's response: `{"data": {"accessToken", "refreshToken", "message": "OK"}}`,
/// never stored by a browser or proxy cache (RFC 6749 §5.1).
fn tokens_response(pair: &TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({ "data": {
            "accessToken": pair.access_token,
            "refreshToken": pair.refresh_token,
            "message": "OK",
        } }))
}

/// The client address bucket a request is throttled and logged by: the peer, or what a
/// trusted proxy says (never the client's own claim); IPv6 by /64.
fn client_bucket(req: &HttpRequest) -> String {
    client_addr(req).bucket()
}

//! `/auth/*` (the original's `auth_controller.go`): register, login, refresh, logout.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use utoipa::ToSchema;

use crate::model::forms::{LoginForm, RegisterForm, SmsLoginForm};
use crate::model::user::UserView;
use crate::service::auth::{AuthService, AuthUser, TokenPair};
use crate::service::error::ServiceError;
use crate::web::auth::{Authenticated, credentials};
use crate::web::client_addr::client_bucket;
use crate::web::extract::ValidatedBody;
use crate::web::inject::Inject;
use crate::web::routes::Routes;

/// The auth controller: one method per route, each given the request (for the client
/// address) and the route's validated input, answering the HTTP response.
#[async_trait(?Send)]
pub trait AuthController: Interface {
    /// `POST /auth/register`: 201 with the user.
    ///
    /// # Errors
    /// As the service.
    async fn register(
        &self,
        req: &HttpRequest,
        form: RegisterForm,
    ) -> Result<HttpResponse, ServiceError>;
    /// `POST /auth/login`: the token pair.
    ///
    /// # Errors
    /// As the service.
    async fn login(&self, req: &HttpRequest, form: LoginForm)
    -> Result<HttpResponse, ServiceError>;
    /// `POST /auth/login_sms`: the token pair.
    ///
    /// # Errors
    /// As the service.
    async fn login_sms(
        &self,
        req: &HttpRequest,
        form: SmsLoginForm,
    ) -> Result<HttpResponse, ServiceError>;
    /// `GET /auth/refresh_token`: the refresh token of the `Authorization` header swapped for
    /// a new pair.
    ///
    /// # Errors
    /// 401 / 10012 without a refresh token; as the service.
    async fn refresh(&self, req: &HttpRequest) -> Result<HttpResponse, ServiceError>;
    /// `POST /auth/logout`.
    ///
    /// # Errors
    /// As the service.
    async fn logout(&self, user: AuthUser) -> Result<HttpResponse, ServiceError>;
}

/// [`AuthController`] over the auth service.
#[derive(Component)]
#[shaku(interface = AuthController)]
pub struct AuthControllerImpl {
    #[shaku(inject)]
    auth: Arc<dyn AuthService>,
}

#[async_trait(?Send)]
impl AuthController for AuthControllerImpl {
    async fn register(
        &self,
        req: &HttpRequest,
        form: RegisterForm,
    ) -> Result<HttpResponse, ServiceError> {
        let data = self.auth.register(form, &client_bucket(req)).await?;
        Ok(HttpResponse::Created().json(RegisteredResponse { data }))
    }

    async fn login(
        &self,
        req: &HttpRequest,
        form: LoginForm,
    ) -> Result<HttpResponse, ServiceError> {
        let pair = self.auth.login(form, &client_bucket(req)).await?;
        Ok(tokens_response(&pair))
    }

    async fn login_sms(
        &self,
        req: &HttpRequest,
        form: SmsLoginForm,
    ) -> Result<HttpResponse, ServiceError> {
        let pair = self.auth.login_sms(form, &client_bucket(req)).await?;
        Ok(tokens_response(&pair))
    }

    async fn refresh(&self, req: &HttpRequest) -> Result<HttpResponse, ServiceError> {
        let token =
            credentials(req).map_err(|_| ServiceError::RefreshFailed("no refresh token"))?;
        let pair = self.auth.refresh(&token, &client_bucket(req)).await?;
        Ok(tokens_response(&pair))
    }

    async fn logout(&self, user: AuthUser) -> Result<HttpResponse, ServiceError> {
        self.auth.logout(&user).await?;
        Ok(HttpResponse::Ok().json(LoggedOutResponse {
            data: LoggedOut { message: "OK" },
        }))
    }
}

/// Registers `/auth/*`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface + HasComponent<dyn AuthController> + HasComponent<dyn AuthService> + ?Sized,
{
    use goex_errors::{
        ERR_CONFLICT, ERR_DIAL, ERR_LOGIN, ERR_NOT_FOUND, ERR_REFRESH_TOKEN, ERR_TOO_MANY_REQUESTS,
        ERR_VERIFY_CODE,
    };
    routes
        .add(
            __path_register,
            &[ERR_CONFLICT, ERR_TOO_MANY_REQUESTS, ERR_DIAL],
            register::<M>,
        )
        .add(
            __path_login,
            &[ERR_LOGIN, ERR_TOO_MANY_REQUESTS, ERR_DIAL],
            login::<M>,
        )
        .add(
            __path_login_sms,
            &[
                ERR_VERIFY_CODE,
                ERR_NOT_FOUND,
                ERR_TOO_MANY_REQUESTS,
                ERR_DIAL,
            ],
            login_sms::<M>,
        )
        .add(__path_refresh, &[ERR_REFRESH_TOKEN, ERR_DIAL], refresh::<M>)
        .add(__path_logout, &[ERR_DIAL], logout::<M>);
}

/// `{"data": <user>}`.
#[derive(Serialize, ToSchema)]
struct RegisteredResponse {
    data: UserView,
}

/// The original's token answer: `{"data": {"accessToken", "refreshToken", "message": "OK"}}`.
#[derive(Serialize, ToSchema)]
struct TokensResponse {
    data: TokensData,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokensData {
    /// `Bearer <jwt>`: send as `Authorization` on protected routes.
    #[schema(pattern = "^Bearer .+$")]
    access_token: String,
    /// `Bearer <jwt>`: send as `Authorization` to `GET /auth/refresh_token`.
    #[schema(pattern = "^Bearer .+$")]
    refresh_token: String,
    /// `OK`.
    #[schema(pattern = "^OK$")]
    message: &'static str,
}

/// `{"data": {"message": "OK"}}`.
#[derive(Serialize, ToSchema)]
struct LoggedOutResponse {
    data: LoggedOut,
}

#[derive(Serialize, ToSchema)]
struct LoggedOut {
    /// `OK`.
    #[schema(pattern = "^OK$")]
    message: &'static str,
}

/// Creates a user (JSON or form body). Throttled per client address
/// (`auth.max_registrations` per `auth.registration_window`); a taken name is 409 / 10013.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    operation_id = "register",
    request_body(content(
        (RegisterForm = "application/json"),
        (RegisterForm = "application/x-www-form-urlencoded"),
    )),
    responses((status = 201, description = "The user was created.", body = RegisteredResponse)),
)]
async fn register<M>(
    req: HttpRequest,
    controller: Inject<M, dyn AuthController>,
    ValidatedBody(form): ValidatedBody<RegisterForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    controller.register(&req, form).await
}

/// Signs in: a new access and refresh token; any older login of the user ends (single sign-on).
/// Throttled per address and per username (`auth.max_failures` per `auth.failure_window`).
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body(content(
        (LoginForm = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    )),
    responses((status = 200, description = "Signed in.", body = TokensResponse,
               headers(("Cache-Control" = String, description = "`no-store`")))),
)]
async fn login<M>(
    req: HttpRequest,
    controller: Inject<M, dyn AuthController>,
    ValidatedBody(form): ValidatedBody<LoginForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    controller.login(&req, form).await
}

/// Signs in with the code `POST /sms/send-code` sent to the phone: a token pair as from
/// `/auth/login` (single sign-on included). A code works once and allows `sms.max_attempts`
/// tries; throttled per address and per phone (`auth.max_failures` per `auth.failure_window`).
/// A number no user has creates its user when `sms.register_on_login` (else 404 / 10005).
#[utoipa::path(
    post,
    path = "/auth/login_sms",
    tag = "auth",
    operation_id = "login_sms",
    request_body(content(
        (SmsLoginForm = "application/json"),
        (SmsLoginForm = "application/x-www-form-urlencoded"),
    )),
    responses((status = 200, description = "Signed in.", body = TokensResponse,
               headers(("Cache-Control" = String, description = "`no-store`")))),
)]
async fn login_sms<M>(
    req: HttpRequest,
    controller: Inject<M, dyn AuthController>,
    ValidatedBody(form): ValidatedBody<SmsLoginForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    controller.login_sms(&req, form).await
}

/// Swaps the refresh token (sent as `Authorization: Bearer <refresh jwt>`) for a new pair;
/// each refresh token works once, and a reused one ends the login.
#[utoipa::path(
    get,
    path = "/auth/refresh_token",
    tag = "auth",
    operation_id = "refresh_token",
    params(("Authorization" = String, Header, description = "`Bearer <refreshToken>`")),
    responses((status = 200, description = "A new token pair.", body = TokensResponse,
               headers(("Cache-Control" = String, description = "`no-store`")))),
)]
async fn refresh<M>(
    req: HttpRequest,
    controller: Inject<M, dyn AuthController>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + ?Sized,
{
    controller.refresh(&req).await
}

/// Ends the login the access token belongs to.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    operation_id = "logout",
    security(("bearer" = [])),
    responses((status = 200, description = "Signed out.", body = LoggedOutResponse)),
)]
async fn logout<M>(
    controller: Inject<M, dyn AuthController>,
    Authenticated { user, .. }: Authenticated<M>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn AuthController> + HasComponent<dyn AuthService> + ?Sized,
{
    controller.logout(user).await
}

/// The original's response, never stored by a browser or proxy cache (RFC 6749 §5.1).
fn tokens_response(pair: &TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokensResponse {
            data: TokensData {
                access_token: pair.access_token.clone(),
                refresh_token: pair.refresh_token.clone(),
                message: "OK",
            },
        })
}

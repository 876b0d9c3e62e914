//! `GET /home`: the signed-in user (the original's `home_controller.go`).

use actix_web::HttpResponse;
use serde::Serialize;

use crate::middleware::jwt_auth::Authenticated;
use crate::server::routes::Routes;
use crate::service::auth::AuthUser;

/// Registers `/home`.
pub fn routes(routes: &mut Routes) {
    routes.add(__path_home, &[], home);
}

/// `{"data": {"userInfo": ...}}`, the original's shape.
#[derive(Serialize, utoipa::ToSchema)]
struct HomeResponse {
    data: HomeData,
}

#[derive(Serialize, utoipa::ToSchema)]
struct HomeData {
    #[serde(rename = "userInfo")]
    user_info: AuthUser,
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/home",
    tag = "user",
    operation_id = "home",
    security(("bearer" = [])),
    responses((status = 200, description = "The user the access token belongs to.", body = HomeResponse)),
)]
async fn home(Authenticated(user): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(HomeResponse {
        data: HomeData { user_info: user },
    })
}

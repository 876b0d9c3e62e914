//! `GET /home`: the signed-in user (the original's `home_controller.go`).

use actix_web::HttpResponse;
use serde::Serialize;
use shaku::{HasComponent, ModuleInterface};

use crate::service::auth::{AuthService, AuthUser};
use crate::web::auth::Authenticated;
use crate::web::routes::Routes;

/// Registers `/home`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface + HasComponent<dyn AuthService> + ?Sized,
{
    routes.add(__path_home, &[], home::<M>);
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
async fn home<M>(Authenticated { user, .. }: Authenticated<M>) -> HttpResponse
where
    M: ModuleInterface + HasComponent<dyn AuthService> + ?Sized,
{
    HttpResponse::Ok().json(HomeResponse {
        data: HomeData { user_info: user },
    })
}

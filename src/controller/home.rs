//! `GET /home`: the signed-in user (the original's `home_controller.go`).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::middleware::jwt_auth::Authenticated;

/// Registers `/home`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/home", web::get().to(home));
}

async fn home(Authenticated(user): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": { "userInfo": user } }))
}

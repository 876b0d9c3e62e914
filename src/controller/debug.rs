//! `/debug/*` helper routes, served only when `server.debug_routes` is on (debug and test
//! profiles; the loader refuses it in prod): a slow route that proves graceful shutdown, and a
//! panicking route that proves a panic becomes a 500 envelope while the server keeps serving, and
//! an echo of the registration form that shows body binding and validation over the wire.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use validator::Validate;

use crate::controller::extract::{ValidatedBody, ValidatedQuery};
use crate::model::forms::RegisterForm;
use crate::service::error::ServiceError;

/// `?ms=` for `/debug/slow`.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct SlowQuery {
    /// How long to sleep, at most a minute.
    #[serde(default = "default_ms")]
    #[validate(range(max = 60000))]
    pub ms: u64,
}

fn default_ms() -> u64 {
    5000
}

/// Registers the debug routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/debug/slow", web::get().to(slow))
        .route("/debug/panic", web::get().to(panic))
        .route("/debug/validate", web::post().to(validate));
}

async fn slow(ValidatedQuery(q): ValidatedQuery<SlowQuery>) -> Result<HttpResponse, ServiceError> {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    Ok(HttpResponse::Ok().json(json!({ "slept_ms": q.ms })))
}

#[allow(clippy::unused_async)]
async fn panic() -> HttpResponse {
    panic!("deliberate panic from /debug/panic")
}

/// Binds a JSON or form body to the registration form and echoes what passed validation
/// (never the password).
async fn validate(ValidatedBody(form): ValidatedBody<RegisterForm>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "username": form.username, "gender": form.gender }))
}

//! `/debug/*` helper routes, served only when `server.debug_routes` is on (debug and test
//! profiles; the loader refuses it in prod): a slow route that proves graceful shutdown, and a
//! panicking route that proves a panic becomes a 500 envelope while the server keeps serving, an
//! echo of the registration form that shows body binding and validation over the wire, and the
//! overload benchmark's CPU-bound route (`/debug/burn`: `service::burn`, as `bench.Burn`).

use std::time::Duration;

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::model::forms::RegisterForm;
use crate::service::burn;
use crate::service::error::ServiceError;
use crate::web::extract::{ValidatedBody, ValidatedQuery};
use crate::web::routes::Routes;

/// `?ms=` for `/debug/slow`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlowQuery {
    /// How long to sleep in milliseconds, at most a minute (default 5000).
    #[serde(default = "default_ms")]
    #[validate(range(max = 60000))]
    #[param(minimum = 0, maximum = 60000)]
    pub ms: u64,
}

fn default_ms() -> u64 {
    5000
}

/// `?ms=` for `/debug/burn`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BurnQuery {
    /// CPU time to burn in milliseconds, 1 to 100 (default 1).
    // `service::burn::MAX_MS`, spelled out for the document; the service checks it again.
    #[serde(default = "default_burn_ms")]
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub ms: u32,
}

fn default_burn_ms() -> u32 {
    1
}

/// Registers the debug routes.
pub fn routes(routes: &mut Routes) {
    routes
        .add(__path_slow, &[], slow)
        .add(__path_burn_cpu, &[], burn_cpu)
        .add(__path_panic, &[], panic)
        .add(__path_validate, &[], validate);
}

/// `{"slept_ms": n}`.
#[derive(Serialize, ToSchema)]
struct Slept {
    slept_ms: u64,
}

/// Sleeps `ms` milliseconds, then answers: an in-flight request for graceful-shutdown tests.
#[utoipa::path(
    get,
    path = "/debug/slow",
    tag = "debug",
    operation_id = "debug_slow",
    params(SlowQuery),
    responses((status = 200, description = "Slept.", body = Slept)),
)]
async fn slow(ValidatedQuery(q): ValidatedQuery<SlowQuery>) -> Result<HttpResponse, ServiceError> {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    Ok(HttpResponse::Ok().json(Slept { slept_ms: q.ms }))
}

/// `{"burned_ms": n}`.
#[derive(Serialize, ToSchema)]
struct Burned {
    burned_ms: u32,
}

/// Burns `ms` milliseconds of CPU in 10 slices with a yield between them, then answers: the
/// overload benchmark's request (`bench/run.py --suite overload`).
#[utoipa::path(
    get,
    path = "/debug/burn",
    tag = "debug",
    operation_id = "debug_burn",
    params(BurnQuery),
    responses((status = 200, description = "Burned.", body = Burned)),
)]
async fn burn_cpu(
    ValidatedQuery(q): ValidatedQuery<BurnQuery>,
) -> Result<HttpResponse, ServiceError> {
    let burned_ms = burn::burn(q.ms).await?;
    Ok(HttpResponse::Ok().json(Burned { burned_ms }))
}

/// Panics: the answer is the 500 envelope (10001) and the server keeps serving.
#[utoipa::path(
    get,
    path = "/debug/panic",
    tag = "debug",
    operation_id = "debug_panic",
    responses()
)]
#[allow(clippy::unused_async)]
async fn panic() -> HttpResponse {
    panic!("deliberate panic from /debug/panic")
}

/// What `/debug/validate` echoes: the bound form without its password.
#[derive(Serialize, ToSchema)]
struct Validated {
    username: String,
    gender: i16,
}

/// Binds a JSON or form body to the registration form and echoes what passed validation
/// (never the password).
#[utoipa::path(
    post,
    path = "/debug/validate",
    tag = "debug",
    operation_id = "debug_validate",
    request_body(content(
        (RegisterForm = "application/json"),
        (RegisterForm = "application/x-www-form-urlencoded"),
    )),
    responses((status = 200, description = "The form passed validation.", body = Validated)),
)]
async fn validate(ValidatedBody(form): ValidatedBody<RegisterForm>) -> HttpResponse {
    HttpResponse::Ok().json(Validated {
        username: form.username,
        gender: form.gender,
    })
}

//! The OpenAPI 3.1 document of the HTTP app, generated from the code: the routes, their
//! request and response types and their error codes come from the registrations in
//! [`crate::web::routes`]; this file adds what is the document's own (title, version, tags,
//! the bearer scheme, the error envelope) and serves it at `/openapi.json`, with Swagger UI at
//! `/swagger-ui/` outside prod.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::web::routes::{BEARER, Routes};

/// The parts of the document that are not a route's.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "go_example-rs HTTP API",
        description = "The go_example HTTP API (hello, health, auth with access and refresh \
                       tokens, single sign-on). Every error is the unified envelope \
                       `{\"error\": {\"code\", \"level\", \"message\", ...}}` with its code \
                       listed under the response; messages are Chinese by default, English with \
                       `Accept-Language: en`.",
        license(name = "MIT"),
    ),
    components(schemas(goex_errors::Envelope, goex_errors::EnvelopeBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "hello", description = "The original's greeting route."),
        (name = "health", description = "Liveness and readiness."),
        (name = "auth", description = "Registration, login, token refresh, logout (the \
                                       original's auth controller)."),
        (name = "user", description = "The signed-in user."),
        (name = "grpc", description = "Calls to the gRPC app, through a circuit breaker."),
        (name = "docs", description = "This document."),
        (name = "debug", description = "Helper routes of the debug and test profiles \
                                        (`server.debug_routes`); never in prod."),
    )
)]
struct BaseDocument;

/// Declares the `bearer` scheme the protected routes require: the access token from
/// `POST /auth/login`, sent as `Authorization: Bearer <jwt>`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `accessToken` of `POST /auth/login` (it already reads \
                         `Bearer <jwt>`, as the original's does).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document the route registrations start from.
pub fn base_document() -> Document {
    let mut doc = BaseDocument::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as served: serialised once, when the server starts.
#[derive(Clone, Debug)]
pub struct DocumentJson(pub web::Bytes);

/// Registers `/openapi.json`.
pub fn routes(routes: &mut Routes) {
    routes.add(__path_openapi_json, &[], openapi_json);
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.",
               content_type = "application/json", body = Object)),
)]
async fn openapi_json(doc: web::Data<DocumentJson>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(doc.0.clone())
}

/// Swagger UI at `/swagger-ui/`, reading `/openapi.json`; its files are compiled in
/// (utoipa-swagger-ui's `vendored` feature), nothing is fetched.
pub fn swagger_ui() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/swagger-ui/{_:.*}")
        .config(utoipa_swagger_ui::Config::new(["/openapi.json"]))
}

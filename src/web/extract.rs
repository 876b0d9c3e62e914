//! Extractors that parse and validate a request in one step, so a bad body or query becomes
//! `ServiceError::InvalidInput` naming the field (400, code 10000) and never reaches a handler.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors};

use crate::service::error::ServiceError;

/// The largest body the extractors read, registered as app data by the server
/// (`server.http.max_body_size`).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Used only when the server registered no [`BodyLimit`].
const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// How long the extractors wait for a whole body, registered as app data by the server
/// (`server.http.body_timeout`): a client that dribbles its body gets 408 / 10012 instead of
/// holding a worker's connection for as long as it likes.
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub Duration);

/// Used only when the server registered no [`BodyTimeout`].
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A JSON or `application/x-www-form-urlencoded` body (chosen by `Content-Type`, like gin's
/// `ShouldBind`), deserialised and validated.
#[derive(Debug)]
pub struct ValidatedBody<T>(pub T);

/// A query string, deserialised and validated.
#[derive(Debug)]
pub struct ValidatedQuery<T>(pub T);

/// The path's parameters (`/widgets/{id}`), deserialised and validated: an id that is not a
/// number, or out of its range, is 400 / 10000 naming `path` or the field.
#[derive(Debug)]
pub struct ValidatedPath<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidatedPath<T> {
    type Error = ServiceError;
    type Future = std::future::Ready<Result<Self, ServiceError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = actix_router::PathDeserializer::new(req.match_info());
        let parsed = serde_path_to_error::deserialize(de)
            .map_err(|e| {
                let path = e.path().to_string();
                let reason = e.into_inner().to_string();
                field_error(if path == "." { "path" } else { &path }, &reason)
            })
            .and_then(validate);
        std::future::ready(parsed.map(ValidatedPath))
    }
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidatedQuery<T> {
    type Error = ServiceError;
    type Future = std::future::Ready<Result<Self, ServiceError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_form::<T>(req.query_string().as_bytes()).map(ValidatedQuery))
    }
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidatedBody<T> {
    type Error = ServiceError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ServiceError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let mime = req.content_type().to_ascii_lowercase();
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let timeout = req
            .app_data::<BodyTimeout>()
            .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|len| len > limit) {
                return Err(ServiceError::PayloadTooLarge { limit });
            }
            let read = async {
                let mut body = BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk =
                        chunk.map_err(|e| ServiceError::invalid("", format!("body: {e}")))?;
                    if body.len() + chunk.len() > limit {
                        return Err(ServiceError::PayloadTooLarge { limit });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            };
            // One deadline for the whole body, not per chunk: a byte a second would never
            // trip a per-chunk one.
            let body = tokio::time::timeout(timeout, read)
                .await
                .map_err(|_| ServiceError::RequestTimeout { timeout })??;
            let value = if mime == "application/json" || mime.ends_with("+json") {
                parse_json::<T>(&body)?
            } else if mime == "application/x-www-form-urlencoded" {
                parse_form::<T>(&body)?
            } else {
                return Err(ServiceError::invalid(
                    "",
                    "Content-Type must be application/json or application/x-www-form-urlencoded",
                ));
            };
            Ok(ValidatedBody(value))
        })
    }
}

fn parse_json<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ServiceError> {
    bind(&mut serde_json::Deserializer::from_slice(body))
}

fn parse_form<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ServiceError> {
    bind(serde_urlencoded::Deserializer::new(form_urlencoded::parse(
        body,
    )))
}

/// Deserialises with the path of the failing field tracked, then validates.
fn bind<'de, T, D>(de: D) -> Result<T, ServiceError>
where
    T: DeserializeOwned + Validate,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    let value: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        field_error(&path, &e.into_inner().to_string())
    })?;
    validate(value)
}

/// `value` when it passes its rules, else the first failing field (400 / 10000): what the
/// extractors answer, and what the gRPC controllers use on the messages they convert.
///
/// # Errors
/// [`ServiceError::InvalidInput`] naming the first field, in name order.
pub fn validate<T: Validate>(value: T) -> Result<T, ServiceError> {
    value
        .validate()
        .map_err(|errors| first_violation(&errors))?;
    Ok(value)
}

/// Names the field of a deserialisation error: the path when serde reached a field, else the
/// field a `missing field` / `unknown field` message quotes.
fn field_error(path: &str, reason: &str) -> ServiceError {
    let field = if path.is_empty() || path == "." {
        reason.split('`').nth(1).unwrap_or("").to_owned()
    } else {
        path.to_owned()
    };
    // serde's messages end with " at line 1 column 9" for JSON: noise for an API client.
    let reason = reason
        .split(" at line ")
        .next()
        .unwrap_or(reason)
        .to_owned();
    ServiceError::InvalidInput { field, reason }
}

/// The first failing field, in name order so the answer is stable.
fn first_violation(errors: &ValidationErrors) -> ServiceError {
    let fields = errors.field_errors();
    let mut names: Vec<_> = fields.keys().collect();
    names.sort();
    match names.first() {
        Some(name) => {
            let first = fields[*name].first();
            let reason = first
                .and_then(|e| e.message.as_ref().map(|m| m.to_string()))
                .or_else(|| first.map(|e| format!("failed rule `{}`", e.code)))
                .unwrap_or_else(|| "is invalid".into());
            ServiceError::InvalidInput {
                field: name.to_string(),
                reason,
            }
        }
        None => ServiceError::invalid("", "is invalid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forms::{LoginForm, RegisterForm};
    use actix_web::test::TestRequest;

    async fn body<T: DeserializeOwned + Validate + 'static>(
        content_type: &str,
        body: &'static str,
        limit: usize,
    ) -> Result<T, ServiceError> {
        let (req, mut payload) = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, content_type))
            .app_data(BodyLimit(limit))
            .set_payload(body)
            .to_http_parts();
        ValidatedBody::<T>::from_request(&req, &mut payload)
            .await
            .map(|v| v.0)
    }

    fn field_of(e: ServiceError) -> String {
        match e {
            ServiceError::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[actix_web::test]
    async fn path_parameters_are_parsed_and_validated() {
        use crate::model::page::IdPath;
        let path = |value: &str| {
            let req = TestRequest::get()
                .param("id", value.to_owned())
                .to_http_request();
            let mut payload = Payload::None;
            ValidatedPath::<IdPath>::from_request(&req, &mut payload)
                .into_inner()
                .map(|p| p.0.id)
        };
        assert_eq!(path("42").unwrap(), 42);
        for bad in ["0", "-3", "x", "99999999999999999999"] {
            assert_eq!(field_of(path(bad).unwrap_err()), "id", "{bad}");
        }
    }

    #[actix_web::test]
    async fn json_and_form_bodies_bind_and_validate() {
        let ok: LoginForm = body(
            "application/json",
            r#"{"username":"alice01","password":"abc123"}"#,
            1024,
        )
        .await
        .unwrap();
        assert_eq!(ok.username, "alice01");
        let ok: LoginForm = body(
            "application/x-www-form-urlencoded",
            "username=alice01&password=abc123",
            1024,
        )
        .await
        .unwrap();
        assert_eq!(ok.password, "abc123");
    }

    #[actix_web::test]
    async fn errors_name_the_field() {
        let e = body::<LoginForm>(
            "application/json",
            r#"{"username":"alice01","password":"abcdef"}"#,
            1024,
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(e), "password");
        let e = body::<LoginForm>("application/json", r#"{"password":"abc123"}"#, 1024)
            .await
            .unwrap_err();
        assert_eq!(field_of(e), "username");
        let e = body::<RegisterForm>(
            "application/json",
            r#"{"username":"alice01","password":"abc123","gender":"x"}"#,
            1024,
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(e), "gender");
        let e = body::<RegisterForm>(
            "application/json",
            r#"{"username":"alice01","password":"abc123","gender":7}"#,
            1024,
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(e), "gender");
        let e = body::<RegisterForm>(
            "application/x-www-form-urlencoded",
            "username=al&password=abc123",
            1024,
        )
        .await
        .unwrap_err();
        assert_eq!(field_of(e), "username");
        let e = body::<LoginForm>("application/json", "{not json", 1024)
            .await
            .unwrap_err();
        assert!(matches!(e, ServiceError::InvalidInput { .. }));
        let e = body::<LoginForm>("text/plain", "x", 1024)
            .await
            .unwrap_err();
        assert!(matches!(e, ServiceError::InvalidInput { .. }));
    }

    #[actix_web::test]
    async fn oversized_bodies_are_refused() {
        let e = body::<LoginForm>(
            "application/json",
            r#"{"username":"alice","password":"abc123"}"#,
            10,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ServiceError::PayloadTooLarge { limit: 10 }));
    }

    #[actix_web::test]
    async fn a_body_that_does_not_arrive_in_time_is_a_request_timeout() {
        use actix_web::web::Bytes;
        use futures_util::stream::{self, LocalBoxStream};
        // A part of a body, then nothing more: a client that stopped sending.
        let dribble: LocalBoxStream<'static, Result<Bytes, actix_web::error::PayloadError>> =
            Box::pin(
                stream::once(std::future::ready(Ok(Bytes::from_static(b"{\"user"))))
                    .chain(stream::pending()),
            );
        let (req, _) = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .app_data(BodyTimeout(Duration::from_millis(100)))
            .to_http_parts();
        let mut payload = Payload::from(dribble);
        let started = std::time::Instant::now();
        let e = ValidatedBody::<LoginForm>::from_request(&req, &mut payload)
            .await
            .unwrap_err();
        assert!(matches!(e, ServiceError::RequestTimeout { .. }), "{e:?}");
        assert_eq!(e.code().code, 10012);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[actix_web::test]
    async fn query_errors_name_the_field() {
        use crate::model::forms::HelloQuery;
        let req = TestRequest::get().uri("/hello?id=abc").to_http_request();
        let e = ValidatedQuery::<HelloQuery>::from_request(&req, &mut Payload::None)
            .await
            .unwrap_err();
        assert_eq!(field_of(e), "id");
        let req = TestRequest::get().uri("/hello?id=5").to_http_request();
        let q = ValidatedQuery::<HelloQuery>::from_request(&req, &mut Payload::None)
            .await
            .unwrap();
        assert_eq!(q.0.id, 5);
    }
}

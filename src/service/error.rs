//! The service layer's one error type, and its mapping to the unified error codes. The HTTP
//! envelope and `tonic::Status` are rendered from it in `web::envelope` and nowhere else.

use goex_errors::ErrorCode;

use crate::repository::error::{BoxError, RepoError};

/// What a use case can fail with, as a client should see it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A parameter or body field is missing or invalid (10000).
    #[error("invalid parameter `{field}`: {reason}")]
    InvalidInput {
        /// The offending field (dotted path for nested bodies); empty for the body as a whole.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The addressed record does not exist (10005).
    #[error("not found")]
    NotFound,
    /// No route matches the path (10005).
    #[error("no route for this path")]
    RouteNotFound,
    /// The route exists, but not for this method (10014).
    #[error("method not allowed (allowed: {allow})")]
    MethodNotAllowed {
        /// The methods the route has, comma-separated (the `Allow` header, RFC 9110 §15.5.6).
        allow: String,
    },
    /// The body is larger than `server.http.max_body_size` (10007).
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body did not arrive within `server.http.body_timeout` (10012, 408).
    #[error("request body not received within {timeout:?}")]
    RequestTimeout {
        /// The configured deadline.
        timeout: std::time::Duration,
    },
    /// A record with the same unique key exists (10013, 409, naming the field).
    #[error("conflict on `{field}`")]
    Conflict {
        /// The unique field.
        field: String,
    },
    /// A dependency cannot be reached in time (10004).
    #[error("{dependency} unavailable")]
    Unavailable {
        /// The dependency by name.
        dependency: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A downstream call could not be made: its client's certificates are unusable (10002).
    #[error("{dependency}: certificates: {reason}")]
    Certificate {
        /// The dependency by name.
        dependency: &'static str,
        /// What is wrong (logged, not sent).
        reason: String,
    },
    /// A downstream call reached its service and failed there (10003, 502).
    #[error("{dependency} call failed")]
    Downstream {
        /// The dependency by name.
        dependency: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A downstream service refused the request and said why (10003, 502): its words are the
    /// detail (Jenkins's `X-Error`, say), for callers allowed to use that service.
    #[error("{dependency} refused: {said}")]
    DownstreamSaid {
        /// The dependency by name.
        dependency: &'static str,
        /// What it said.
        said: String,
    },
    /// A circuit breaker refused the call without sending it (10004, 503): the dependency is
    /// failing and is left alone for a while.
    #[error("{dependency}: circuit open")]
    CircuitOpen {
        /// The dependency by name.
        dependency: &'static str,
    },
    /// Wrong username or password (20000).
    #[error("wrong credentials")]
    LoginFailed,
    /// The token belongs to an older login: the account signed in elsewhere (20001).
    #[error("signed in on another device")]
    LoginElsewhere,
    /// The access token expired: refresh it (20002).
    #[error("access token expired")]
    LoginExpired,
    /// The SMS provider refused the message or could not be reached (10006, 502); the detail
    /// names the provider's answer code.
    #[error("sms not sent: {0}")]
    SmsSend(String),
    /// An SMS login's code is wrong, expired, spent or out of tries (20004).
    #[error("verification code refused: {0}")]
    WrongCode(String),
    /// The refresh token is invalid, expired, reused or revoked (20003).
    #[error("refresh failed: {0}")]
    RefreshFailed(&'static str),
    /// No credentials, or credentials that are not a valid token (10010).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Too many attempts (10008).
    #[error("too many attempts")]
    TooManyRequests,
    /// A per-client limit was reached (10008, 429); the detail names the limit's key.
    #[error("limited: {0}")]
    Limited(&'static str),
    /// A `rate_limit` rule refused the request (10008, 429): the decision says when to retry
    /// (`Retry-After`) and fills the `RateLimit-*` headers.
    #[error("rate limited ({} s to wait)", .0.retry_after.as_secs_f64().ceil())]
    RateLimited(crate::repository::rate_limit::Decision),
    /// Authenticated, or not needing to be, but not allowed: an address or origin outside an
    /// allowlist, a room one is not in (10011, 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The service is at a configured capacity or shutting down (10009, 503).
    #[error("at capacity: {0}")]
    AtCapacity(&'static str),
    /// The process is overloaded: the adaptive load shedder refused the request before its
    /// work began (10015, 503 with `Retry-After`; gRPC `RESOURCE_EXHAUSTED`).
    #[error("load shed: the server is busy")]
    ServerBusy,
    /// The Excel export could not be written (30000, 500). The body stays generic.
    #[error("export failed")]
    Export(#[source] BoxError),
    /// `POST /excel/import` without a file in `uploadFile` (30001, 400).
    #[error("no file: {0}")]
    NoUpload(&'static str),
    /// The import was refused for its bad rows and nothing was written (30001, 400); the
    /// envelope's `details` carry the report.
    #[error("import refused: {} bad rows", .0.invalid)]
    ImportRejected(Box<crate::model::excel::ImportReport>),
    /// The upload is not a readable users workbook: not xlsx, corrupt, past a zip limit, or a
    /// bad header (30002, 400).
    #[error("unreadable workbook: {0}")]
    BadWorkbook(String),
    /// A handler panicked; the server keeps serving (10001).
    #[error("handler panicked: {0}")]
    Panic(String),
    /// Anything unexpected (10001). The body stays generic; the chain is logged.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ServiceError {
    /// The documented code this error is sent with.
    pub fn code(&self) -> ErrorCode {
        use goex_errors::*;
        match self {
            ServiceError::InvalidInput { .. } => ERR_PARAM,
            ServiceError::Conflict { .. } => ERR_CONFLICT,
            ServiceError::NotFound | ServiceError::RouteNotFound => ERR_NOT_FOUND,
            ServiceError::MethodNotAllowed { .. } => ERR_METHOD_NOT_ALLOWED,
            ServiceError::PayloadTooLarge { .. } => ERR_PAYLOAD_TOO_LARGE,
            ServiceError::RequestTimeout { .. } => ERR_REQUEST_TIMEOUT,
            ServiceError::Unavailable { .. } | ServiceError::CircuitOpen { .. } => ERR_DIAL,
            ServiceError::Certificate { .. } => ERR_CERT,
            ServiceError::Downstream { .. } | ServiceError::DownstreamSaid { .. } => ERR_CALL_FUNC,
            ServiceError::Panic(_) | ServiceError::Internal(_) => ERR_SYSTEM,
            ServiceError::LoginFailed => ERR_LOGIN,
            ServiceError::LoginElsewhere => ERR_LOGIN_REMOTE,
            ServiceError::LoginExpired => ERR_LOGIN_FAILURE,
            ServiceError::RefreshFailed(_) => ERR_REFRESH_TOKEN,
            ServiceError::SmsSend(_) => ERR_SMS_SEND,
            ServiceError::WrongCode(_) => ERR_VERIFY_CODE,
            ServiceError::Unauthorized(_) => ERR_UNAUTHORIZED,
            ServiceError::TooManyRequests
            | ServiceError::Limited(_)
            | ServiceError::RateLimited(_) => ERR_TOO_MANY_REQUESTS,
            ServiceError::Forbidden(_) => ERR_FORBIDDEN,
            ServiceError::AtCapacity(_) => ERR_UNAVAILABLE,
            ServiceError::ServerBusy => ERR_SERVER_BUSY,
            ServiceError::Export(_) => ERR_EXPORT,
            ServiceError::NoUpload(_) | ServiceError::ImportRejected(_) => ERR_IMPORT,
            ServiceError::BadWorkbook(_) => ERR_FILE_PARSE,
        }
    }

    /// The detail a client may see after the message: the field or dependency name. 5xx
    /// internals never appear here.
    pub fn public_detail(&self) -> Option<String> {
        match self {
            ServiceError::InvalidInput { field, reason } if field.is_empty() => {
                Some(reason.clone())
            }
            ServiceError::InvalidInput { field, reason } => Some(format!("{field} ({reason})")),
            ServiceError::Conflict { field } => Some(format!("{field} already exists")),
            ServiceError::Unavailable { dependency, .. }
            | ServiceError::Downstream { dependency, .. } => Some((*dependency).to_owned()),
            ServiceError::DownstreamSaid { dependency, said } => {
                Some(format!("{dependency}: {said}"))
            }
            ServiceError::CircuitOpen { dependency } => {
                Some(format!("{dependency} (circuit open: retry later)"))
            }
            ServiceError::Forbidden(reason) => Some(reason.clone()),
            ServiceError::AtCapacity(what) | ServiceError::Limited(what) => {
                Some((*what).to_owned())
            }
            ServiceError::NoUpload(why) => Some((*why).to_owned()),
            ServiceError::ImportRejected(report) => Some(format!(
                "{} of {} rows are invalid; nothing was written",
                report.invalid, report.rows
            )),
            ServiceError::BadWorkbook(why) => Some(why.clone()),
            ServiceError::SmsSend(why) => Some(why.clone()),
            ServiceError::WrongCode(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// Shorthand for [`ServiceError::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ServiceError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<RepoError> for ServiceError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => ServiceError::NotFound,
            RepoError::Conflict(message) => ServiceError::Conflict {
                field: conflict_field(&message),
            },
            RepoError::Unavailable { dependency, source } => {
                ServiceError::Unavailable { dependency, source }
            }
            RepoError::Internal(source) => ServiceError::Internal(source),
        }
    }
}

/// Names the column of a unique violation from the driver's message (MySQL names the key,
/// SQLite the column); unknown shapes give a generic name rather than leaking the message.
fn conflict_field(message: &str) -> String {
    // A repository that named the column itself (`RepoError::named_conflict`).
    if !message.is_empty()
        && message
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return message.into();
    }
    if message.contains("uk_users_phone") || message.contains("users.phone") {
        return "phone".into();
    }
    if message.contains("username") {
        return "username".into();
    }
    "record".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_name_the_field_without_the_driver_message() {
        let mysql = RepoError::Conflict("Duplicate entry 'bob' for key 'uk_users_username'".into());
        let sqlite = RepoError::Conflict("UNIQUE constraint failed: users.username".into());
        for e in [mysql, sqlite] {
            let s = ServiceError::from(e);
            assert_eq!(
                s.public_detail().as_deref(),
                Some("username already exists")
            );
            assert_eq!(s.code().code, 10013);
        }
    }

    #[test]
    fn a_conflict_the_repository_named_keeps_its_field() {
        for (driver, field) in [
            ("Duplicate entry 'T-1' for key 'uk_products_sku'", "sku"),
            ("UNIQUE constraint failed: products.sku", "sku"),
            ("Duplicate entry 'x' for key 'uk_products_other'", "record"),
            (
                "Duplicate entry 'x' for key 'products.uk_products_sku_2'",
                "sku_2",
            ),
            ("UNIQUE constraint failed: products.sku_2", "sku_2"),
            // MongoDB (a generated `--mongo` resource's unique index).
            (
                "E11000 duplicate key error collection: db.products index: uk_products_sku_2 dup key: { sku_2: \"x\" }",
                "sku_2",
            ),
            (
                "E11000 duplicate key error collection: db.products index: uk_products_sku dup key: { sku: \"x\" }",
                "sku",
            ),
        ] {
            let named =
                RepoError::Conflict(driver.into()).named_conflict("products", &["sku", "sku_2"]);
            match ServiceError::from(named) {
                ServiceError::Conflict { field: f } => assert_eq!(f, field, "{driver}"),
                other => panic!("{other:?}"),
            }
        }
        // Any other error passes through unchanged.
        assert!(matches!(
            RepoError::NotFound.named_conflict("products", &["sku"]),
            RepoError::NotFound
        ));
    }

    #[test]
    fn internals_have_no_public_detail() {
        let e = ServiceError::Internal("password=secret in a driver message".into());
        assert_eq!(e.public_detail(), None);
        assert_eq!(e.code().status, 500);
    }
}

//! Who makes a gRPC call, as the server's auth layer recorded it (`server::grpc`).

use tonic::{Request, Status};

use crate::service::caller::Caller;
use crate::service::error::ServiceError;
use crate::web::envelope::status;

/// The caller of `request`.
///
/// # Errors
/// `UNAUTHENTICATED` when none was recorded (a call without credentials never gets this far).
pub fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| status(&ServiceError::Unauthorized("no caller".into())))
}

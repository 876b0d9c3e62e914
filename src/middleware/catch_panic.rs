//! Panics in handlers: caught by `lifecycle` with `catch_unwind` and answered as a 500 envelope
//! (code 10001); the worker keeps serving. The message is logged, never sent.
//!
//! The panic comes back as an `Err`, not a response: a response needs the `HttpRequest`, and
//! holding a clone of it across the inner call would break actix's routing, which needs the
//! request uniquely owned.

use crate::service::error::ServiceError;

/// The error a caught panic becomes.
pub fn panic_error(panic: &(dyn std::any::Any + Send)) -> ServiceError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    ServiceError::Panic(message)
}

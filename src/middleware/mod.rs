//! HTTP middleware, outermost first: request id, access log, error envelope, panic catcher.
//! (Authentication middleware joins here with the auth feature.)

pub mod access_log;
pub mod catch_panic;
pub mod error_envelope;
pub mod request_id;

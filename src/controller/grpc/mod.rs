//! The gRPC app's controllers: each implements a generated tonic service over the services it
//! resolves from the built shaku module (the same services the HTTP controllers use). Errors
//! become a `tonic::Status` in one place, `web::envelope::status`.

pub mod hello;
pub mod user;

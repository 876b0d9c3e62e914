//! The gRPC app's controllers: each a component of the module (`assembly`) implementing a
//! generated tonic service over the services it injects (the same services the HTTP
//! controllers use); `server::grpc` resolves them. Errors become a `tonic::Status` in one
//! place, `web::envelope::status`.

pub mod bench;
pub mod caller;
pub mod hello;
pub mod user;
// generate:mod (`go_example generate resource --grpc` adds its modules above this line)

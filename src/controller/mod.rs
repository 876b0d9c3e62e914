//! Controllers: one file per feature, each owning its `routes()`. Handlers resolve their
//! controller from the shaku module (`Inject<M, dyn ...>`), generic over the module so the
//! controllers never name the assembly.

pub mod auth;
pub mod debug;
pub mod excel;
pub mod fallback;
pub mod grpc;
pub mod grpc_client;
pub mod health;
pub mod hello;
pub mod home;
pub mod jenkins;
pub mod pprof;
pub mod sms;
pub mod socket;
// generate:mod (`go_example generate` adds its modules above this line)

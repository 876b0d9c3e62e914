//! HTTP middleware, and the gRPC app's tower layers. `lifecycle` is the one layer every HTTP
//! request passes; `rate_limit` (inside it) and `grpc_rate_limit` apply `rate_limit.rules`; the
//! other files hold the pieces the lifecycle is made of. What handlers share with it (errors on the wire, the client address,
//! the auth extractors) is the edge kit's (`crate::web`).

pub mod access_log;
pub mod catch_panic;
pub mod grpc_call_log;
pub mod grpc_metrics;
pub mod grpc_rate_limit;
pub mod grpc_trace;
pub mod head_deadline;
pub mod lifecycle;
pub mod rate_limit;
pub mod request_id;
pub mod shedding;

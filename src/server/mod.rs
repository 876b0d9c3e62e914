//! Servers: one file per application (the original's `internal/server`). `envelope` is where
//! service errors meet HTTP.

pub mod envelope;
pub mod http;
pub mod metrics;
pub mod pprof;

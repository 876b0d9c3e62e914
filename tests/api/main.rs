//! Integration tests: the real application on a free port, against a fresh SQLite file or a
//! fresh MariaDB database (started by `scripts/services.sh`), asserted on status, body and rows.
//! One binary, so the crate links once.

mod helpers;

mod abuse;
mod auth;
mod burn;
mod client_addr;
mod config;
mod deploy;
mod discovery;
mod errors;
mod excel;
mod excel_import;
mod grpc;
mod grpc_client;
mod hello;
mod hygiene;
mod jenkins;
mod logins;
mod metrics;
mod mongo;
mod mysql;
mod openapi;
mod pprof;
mod probe;
mod rate_limit_store;
mod rate_limits;
mod redis;
mod redis_cluster;
mod replica;
mod request_ids;
mod roles;
mod secrets;
mod shedding;
mod shutdown;
mod slow_client;
mod sms;
mod socket;
mod socket_bus;
mod tracing;
mod validation;
// generate:mod (`go_example generate` adds its modules above this line)

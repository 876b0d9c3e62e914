//! Definitions the layers share: the configuration tree, the value types its fields parse into
//! (trusted proxies, socket allowlists) and the custom validators (the original's
//! `internal/meta`). Nothing here imports the edge (`web`, `middleware`, `controller`, `server`).

pub mod config;
pub mod socket_admission;
pub mod trusted_proxies;
pub mod validator;

/// The application's name, in logs and `version`.
pub const APP_NAME: &str = "go_example";

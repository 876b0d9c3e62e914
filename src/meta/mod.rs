//! Definitions the layers share: the configuration tree and the custom validators
//! (the original's `internal/meta`).

pub mod config;
pub mod validator;

/// The application's name, in logs and `version`.
pub const APP_NAME: &str = "go_example";

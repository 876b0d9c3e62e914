//! The breaker's integration tests, one binary: the Hystrix state machine against a reference
//! model and under concurrency, the SRE throttle's formula, the tower service, and the settings
//! as read from YAML by the workspace's loader.

mod hystrix;
mod hystrix_model;
mod settings;
mod sre;
mod support;
mod tower_service;

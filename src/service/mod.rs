//! Use cases: one trait and one implementation per feature; no actix, tonic or diesel here.

pub mod account;
pub mod audit;
pub mod auth;
pub mod burn;
pub mod caller;
pub mod error;
pub mod excel;
pub mod health;
pub mod hello;
pub mod jenkins;
pub mod password;
pub mod profiling;
pub mod rate_limit;
pub mod session;
pub mod shedding;
pub mod sms;
pub mod socket;
pub mod user;
// generate:mod (`go_example generate` adds its modules above this line)

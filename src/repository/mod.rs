//! Storage: one folder per backing store (the original's `repository/{mysql,redis,cache,...}`).
//! `mysql/` holds the relational repositories, which also run on the embedded SQLite.

pub mod cache;
pub mod client;
pub mod discovery;
pub mod ejection;
pub mod error;
pub mod health;
pub mod jenkins;
pub mod kv;
pub mod mongodb;
pub mod mysql;
pub mod rate_limit;
pub mod redis;
pub mod registration;
pub mod room_bus;
pub mod rpc;
pub mod sms;
pub mod thread_channel;

//! Repositories over MongoDB.

pub mod user;

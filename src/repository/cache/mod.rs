//! Repositories over the in-process cache.

pub mod login;
pub mod user;

//! Repositories over the in-process cache.

pub mod user;

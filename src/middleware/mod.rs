//! HTTP middleware. `lifecycle` is the one layer every request passes; the other files hold the
//! pieces it is made of. What handlers share with it (errors on the wire, the client address,
//! the auth extractors) is the edge kit's (`crate::web`).

pub mod access_log;
pub mod catch_panic;
pub mod head_deadline;
pub mod lifecycle;
pub mod request_id;
pub mod shedding;

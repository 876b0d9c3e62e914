//! HTTP middleware. `lifecycle` is the one layer every request passes; the other files hold the
//! pieces it is made of. (Authentication middleware joins here with the auth feature.)

pub mod access_log;
pub mod catch_panic;
pub mod client_addr;
pub mod error_envelope;
pub mod head_deadline;
pub mod jwt_auth;
pub mod lifecycle;
pub mod request_id;
pub mod socket_admission;
pub mod socket_frame_limit;

//! Repositories over Redis (or the in-process key-value store on the embedded default).

pub mod room_bus;
pub mod sms_code;
pub mod throttle;
pub mod token;
pub mod value;

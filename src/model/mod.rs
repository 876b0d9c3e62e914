//! Rows, request forms and response types shared by the layers.

pub mod forms;
pub mod schema;
pub mod user;

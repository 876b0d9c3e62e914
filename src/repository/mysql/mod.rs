//! Repositories over the relational database (MySQL, or SQLite on the embedded default).

pub mod token;
pub mod user;

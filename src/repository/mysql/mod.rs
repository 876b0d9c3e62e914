//! Repositories over the relational database (MySQL, or SQLite on the embedded default).

pub mod import_job;
pub mod role;
pub mod token;
pub mod user;
// generate:mod (`go_example generate` adds its modules above this line)

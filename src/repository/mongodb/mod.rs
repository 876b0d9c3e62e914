//! Repositories over MongoDB.

pub mod documents;
pub mod user;
// generate:mod (`go_example generate resource --mongo` adds its modules above this line)

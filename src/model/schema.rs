// @generated automatically by Diesel CLI (`diesel print-schema` against migrations/mysql).
// The same table definition is valid for the SQLite migrations: both use signed BIGINT ids,
// VARCHAR/TEXT strings, SMALLINT and TIMESTAMP columns.

diesel::table! {
    users (id) {
        id -> Bigint,
        #[max_length = 30]
        username -> Varchar,
        #[max_length = 255]
        password_hash -> Varchar,
        gender -> Smallint,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

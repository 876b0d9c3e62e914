// @generated automatically by Diesel CLI.

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

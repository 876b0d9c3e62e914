// @generated automatically by Diesel CLI.

diesel::table! {
    import_jobs (id) {
        #[max_length = 32]
        id -> Varchar,
        user_id -> Bigint,
        #[max_length = 16]
        status -> Varchar,
        rows_read -> Bigint,
        rows_written -> Bigint,
        result -> Nullable<Text>,
        created_at -> Bigint,
        updated_at -> Bigint,
        #[max_length = 55]
        traceparent -> Nullable<Varchar>,
    }
}

diesel::table! {
    logins (user_id) {
        user_id -> Bigint,
        #[max_length = 64]
        sid -> Varchar,
        #[max_length = 64]
        refresh_jti -> Varchar,
        expires_at -> Bigint,
    }
}

diesel::table! {
    user_roles (user_id, role) {
        user_id -> Bigint,
        #[max_length = 32]
        role -> Varchar,
        granted_at -> Bigint,
    }
}

diesel::table! {
    users (id) {
        id -> Bigint,
        #[max_length = 30]
        username -> Varchar,
        #[max_length = 20]
        phone -> Nullable<Varchar>,
        #[max_length = 255]
        password_hash -> Varchar,
        gender -> Smallint,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(user_roles -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(import_jobs, logins, user_roles, users,);

//! The same application on a real MariaDB (`scripts/services.sh up`), a fresh database per test.

use std::process::Command;

use go_example::repository::mysql::user::UserRepository;
use shaku::HasComponent;

use crate::helpers::{
    binary, fresh_mysql_database, manifest_dir, mysql_server_dsn, seed_user, spawn_app_with,
};

fn mysql_overrides(dsn: &str) -> Vec<(&'static str, String)> {
    vec![
        ("APP__DATABASE__DRIVER", "mysql".into()),
        ("APP__DATABASE__MIGRATE_ON_START", "true".into()),
        ("APP__MYSQL__DSN", dsn.to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_reads_users_from_mariadb() {
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let dsn = fresh_mysql_database(&server).await;
    let app = spawn_app_with(&mysql_overrides(&dsn)).await;

    let id = seed_user(&app, "mariadb01").await;
    let (status, body) = app.get_json(&format!("/hello?id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"], "mariadb01");

    let users: &dyn UserRepository = app.module.resolve_ref();
    let row = users
        .find_by_username("mariadb01")
        .await
        .unwrap()
        .expect("stored row");
    assert_eq!((row.id, row.gender), (id, 1));
    assert!(row.created_at <= row.updated_at);

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_usernames_are_a_conflict() {
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let dsn = fresh_mysql_database(&server).await;
    let app = spawn_app_with(&mysql_overrides(&dsn)).await;
    seed_user(&app, "twin0001").await;
    let users: &dyn UserRepository = app.module.resolve_ref();
    let err = users
        .create(go_example::model::user::NewUser {
            username: "twin0001",
            password_hash: "x",
            gender: 0,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, go_example::repository::error::RepoError::Conflict(_)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_command_creates_the_users_table() {
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let dsn = fresh_mysql_database(&server).await;
    let run = || {
        Command::new(binary())
            .args(["migrate", "--env", "test"])
            .current_dir(manifest_dir())
            .env("APP__DATABASE__DRIVER", "mysql")
            .env("APP__MYSQL__DSN", &dsn)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migration applied"));
    let again = run();
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to apply"),
        "idempotent"
    );

    // The table is there and usable: the app without start-up migrations reads it.
    let mut overrides = mysql_overrides(&dsn);
    overrides[1].1 = "false".into();
    let app = spawn_app_with(&overrides).await;
    let id = seed_user(&app, "migrated1").await;
    assert_eq!(
        app.get_json(&format!("/hello?id={id}")).await.1["user"],
        "migrated1"
    );
}

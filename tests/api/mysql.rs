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

/// The server id of a connection checked out of the app's primary pool (and given back).
async fn pooled_connection_id(app: &crate::helpers::TestApp) -> u64 {
    use diesel::dsl::sql;
    use diesel::sql_types::Unsigned;
    use diesel_async::RunQueryDsl;
    use go_example::repository::client::DatabaseClient;
    use goex_database::DbPool;
    let db: &dyn DatabaseClient = app.module.resolve_ref();
    let DbPool::Mysql(pool) = db.database().pool() else {
        panic!("mysql")
    };
    let mut conn = pool.get().await.unwrap();
    diesel::select(sql::<Unsigned<diesel::sql_types::BigInt>>(
        "CONNECTION_ID()",
    ))
    .get_result(&mut *conn)
    .await
    .unwrap()
}

/// Kills connection `id` on the server and waits until it is gone.
async fn kill(server: &str, id: u64) {
    use diesel::dsl::sql;
    use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
    let mut admin = AsyncMysqlConnection::establish(server).await.unwrap();
    admin.batch_execute(&format!("KILL {id}")).await.unwrap();
    for _ in 0..200 {
        let left: i64 = diesel::select(sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id})"
        )))
        .get_result(&mut admin)
        .await
        .unwrap();
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("connection {id} still listed after KILL");
}

/// The app on a fresh database of `server` with a pool of one connection.
async fn spawn_on_one_connection(server: &str) -> crate::helpers::TestApp {
    let dsn = fresh_mysql_database(server).await;
    let mut overrides = mysql_overrides(&dsn);
    overrides.push(("APP__MYSQL__MAX_OPEN", "1".into()));
    overrides.push(("APP__MYSQL__MAX_IDLE", "1".into()));
    spawn_app_with(&overrides).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_in_steady_use_is_not_checked_and_a_dead_one_never_goes_back() {
    use goex_database::recycle::VERIFY_AFTER;
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    // One connection: every statement below runs on the same one, or on its replacement.
    let app = spawn_on_one_connection(&server).await;
    let id = seed_user(&app, "steady01").await;
    let users: &dyn UserRepository = app.module.resolve_ref();
    assert!(users.find(id).await.unwrap().is_some());

    // Killed by the server while in steady use: the next statement goes out on it unchecked
    // (no `SELECT 1` first) and fails; the connection does not go back to the pool, so the
    // statement after gets a new one.
    let first = pooled_connection_id(&app).await;
    kill(&server, first).await;
    let failed = users.find(id).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(users.find(id).await.unwrap().is_some());
    let second = pooled_connection_id(&app).await;
    assert_ne!(first, second);

    // Killed while idle for longer than VERIFY_AFTER: checked before use, replaced, and the
    // statement succeeds.
    kill(&server, second).await;
    tokio::time::sleep(VERIFY_AFTER + std::time::Duration::from_millis(200)).await;
    assert!(users.find(id).await.unwrap().is_some());
    assert_ne!(pooled_connection_id(&app).await, second);
}

/// A statement whose future is dropped before it ends (actix-web drops a handler's other
/// extractors when one fails, so a bad body cancels the bearer token's login read) leaves its
/// connection mid-protocol: it must leave the pool, or the next statement on it reads the old
/// one's reply (a user's row read as a login record, "signed out", "buf doesn't have enough
/// data"). One connection in the pool, so the next statement would get the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_dropped_midway_never_leaves_its_connection_to_the_next() {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    use go_example::repository::client::DatabaseClient;
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let app = spawn_on_one_connection(&server).await;
    let id = seed_user(&app, "dropped01").await;
    let users: &dyn UserRepository = app.module.resolve_ref();
    let db: &dyn DatabaseClient = app.module.resolve_ref();
    let database = db.database();
    for round in 0..3 {
        // Cut off while the server is still sleeping: its reply is on the way.
        let slow = async {
            goex_database::with_connection!(database, |conn| {
                diesel::select(sql::<BigInt>("SLEEP(0.3)"))
                    .get_result::<i64>(conn)
                    .await
            })
        };
        let cut = tokio::time::timeout(std::time::Duration::from_millis(50), slow).await;
        assert!(cut.is_err(), "round {round}: the statement was cut off");
        for _ in 0..3 {
            let user = users.find(id).await.expect("the next statement works");
            assert_eq!(user.map(|u| u.username), Some("dropped01".to_owned()));
        }
    }
}

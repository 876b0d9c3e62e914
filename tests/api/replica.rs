//! The MySQL group against a real MariaDB primary with a binlog (GTID) replica
//! (`scripts/services.sh up`): reads on the replica, writes on the primary, the replica stopped
//! and restarted under load, read-your-writes. Serialised with each other (.config/nextest.toml)
//! because one of them stops the shared replica.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use go_example::repository::client::DatabaseClient;
use go_example::repository::mysql::user::UserRepository;
use goex_database::group::NodeStats;
use shaku::HasComponent;

use crate::helpers::{
    TestApp, eventually, fresh_replicated_database, seed_user, services, spawn_app_with,
};

struct Group {
    app: TestApp,
    replica_dsn: String,
}

/// The app on a fresh database of the group: primary as root, the replica as the read-only
/// application account.
async fn spawn_group(read_your_writes: &str) -> Option<Group> {
    let (primary_dsn, replica_dsn) = fresh_replicated_database(Duration::from_secs(5)).await?;
    let app = spawn_app_with(&[
        ("APP__DATABASE__DRIVER", "mysql".into()),
        ("APP__DATABASE__MIGRATE_ON_START", "true".into()),
        ("APP__MYSQL__DSN", primary_dsn),
        ("APP__MYSQL__REPLICAS__0__DSN", replica_dsn.clone()),
        ("APP__MYSQL__HEALTH_CHECK_INTERVAL", "200ms".into()),
        ("APP__MYSQL__CONNECT_TIMEOUT", "1s".into()),
        ("APP__MYSQL__READ_YOUR_WRITES", read_your_writes.into()),
        // Every /hello reaches the database.
        ("APP__CACHEKEYS__USERINFO__TTL", "1ms".into()),
    ])
    .await;
    Some(Group { app, replica_dsn })
}

fn stats(app: &TestApp) -> (NodeStats, NodeStats) {
    let db: &dyn DatabaseClient = app.module.resolve_ref();
    let mut nodes = db.database().node_stats().into_iter();
    (
        nodes.next().expect("primary"),
        nodes.next().expect("replica"),
    )
}

async fn replica_has_user(replica_dsn: &str, username: &str) -> bool {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use go_example::model::schema::users;
    let Ok(mut conn) = AsyncMysqlConnection::establish(replica_dsn).await else {
        return false;
    };
    let count: Result<i64, _> = users::table
        .filter(users::username.eq(username))
        .count()
        .get_result(&mut conn)
        .await;
    count == Ok(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_the_primary_are_read_from_the_replica() {
    let Some(Group { app, replica_dsn }) = spawn_group("0s").await else {
        return;
    };
    let id = seed_user(&app, "replicated1").await;
    assert!(
        eventually(Duration::from_secs(3), async || replica_has_user(
            &replica_dsn,
            "replicated1"
        )
        .await)
        .await,
        "the row reaches the replica"
    );
    let (primary_before, replica_before) = stats(&app);

    let (status, body) = app.get_json(&format!("/hello?id={id}")).await;
    assert_eq!((status, body["user"].as_str()), (200, Some("replicated1")));
    let users: &dyn UserRepository = app.module.resolve_ref();
    for _ in 0..10 {
        assert_eq!(
            users.find(id).await.unwrap().unwrap().username,
            "replicated1"
        );
    }
    let (primary, replica) = stats(&app);
    assert!(replica.healthy);
    assert_eq!(
        replica.reads - replica_before.reads,
        11,
        "every read on the replica"
    );
    assert_eq!(primary.reads, primary_before.reads, "none on the primary");

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    // server.readiness_details is off: replicas by position, their addresses not shown.
    assert_eq!(body["checks"]["database_replica_0"], "up");
    assert!(!body.to_string().contains(&replica.label), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_fails_no_request_and_is_used_again_when_back() {
    let Some(Group { app, replica_dsn }) = spawn_group("0s").await else {
        return;
    };
    let app = Arc::new(app);
    let id = seed_user(&app, "steady001").await;
    assert!(
        eventually(Duration::from_secs(3), async || replica_has_user(
            &replica_dsn,
            "steady001"
        )
        .await)
        .await
    );

    // A steady stream of reads for the whole test; every answer must be a 200 with the user.
    let running = Arc::new(AtomicBool::new(true));
    let stream = tokio::spawn({
        let (app, running) = (app.clone(), running.clone());
        async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while running.load(Ordering::Relaxed) {
                let (status, body) = app.get_json(&format!("/hello?id={id}")).await;
                if status == 200 && body["user"] == "steady001" {
                    ok += 1
                } else {
                    failed.push((status, body))
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        stats(&app).1.reads > 0,
        "the replica serves before it stops"
    );

    services(&["stop", "mysql-replica"]);
    assert!(
        eventually(Duration::from_secs(5), async || !stats(&app).1.healthy).await,
        "the stopped replica leaves the rotation"
    );
    let primary_reads = stats(&app).0.reads;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        stats(&app).0.reads > primary_reads,
        "reads fall back to the primary"
    );
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("degraded")),
        "{body}"
    );

    services(&["start", "mysql-replica"]);
    assert!(
        eventually(Duration::from_secs(10), async || stats(&app).1.healthy).await,
        "the restarted replica returns to the rotation"
    );
    let replica_reads = stats(&app).1.reads;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        stats(&app).1.reads > replica_reads,
        "and serves reads again"
    );

    running.store(false, Ordering::Relaxed);
    let (ok, failed) = stream.await.unwrap();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok > 100, "a real stream of requests ({ok})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reads_its_own_writes_from_the_primary() {
    let Some(Group { app, .. }) = spawn_group("5s").await else {
        return;
    };
    let users: &dyn UserRepository = app.module.resolve_ref();
    let (p0, r0) = stats(&app);
    let id = goex_database::session::scope("writer".into(), async {
        let id = seed_user(&app, "ryw00001").await;
        // Immediately after its write, the session's read goes to the primary: no replica lag.
        assert_eq!(users.find(id).await.unwrap().unwrap().username, "ryw00001");
        id
    })
    .await;
    let (p1, r1) = stats(&app);
    assert_eq!(
        (p1.reads - p0.reads, r1.reads - r0.reads),
        (1, 0),
        "the writer read the primary"
    );

    goex_database::session::scope("someone-else".into(), async {
        let _ = users.find(id).await.unwrap();
    })
    .await;
    let (p2, r2) = stats(&app);
    assert_eq!(
        (p2.reads - p1.reads, r2.reads - r1.reads),
        (0, 1),
        "other sessions read the replica"
    );
}

//! Values and login records in a real Redis (`scripts/services.sh up`), the in-process store of
//! the embedded default, and Redis failures answered as 503 / 10004 without hangs.

use std::time::{Duration, Instant};

use go_example::repository::redis::token::TokenRepository;
use go_example::repository::redis::value::ValueRepository;
use shaku::HasComponent;

use crate::helpers::{
    TestApp, assert_envelope, eventually, free_port, private_redis, redis_overrides, service_env,
    spawn_app, spawn_app_with, unique_name,
};

fn unique(prefix: &str) -> String {
    unique_name(&format!("{prefix}:"))
}

fn rand_bits() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Every repository operation, against whatever store the app was built with, then readiness:
/// `redis` is reported (and up) exactly when the app runs on Redis.
pub async fn exercise_repositories(app: &TestApp, on_redis: bool) {
    let values: &dyn ValueRepository = app.module.resolve_ref();
    let key = unique("it:value");
    assert_eq!(values.get(&key).await.unwrap(), None);
    values.set(&key, "v1", Duration::ZERO).await.unwrap();
    assert_eq!(values.get(&key).await.unwrap().as_deref(), Some("v1"));
    let short = unique("it:short");
    values
        .set(&short, "gone soon", Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(
        values.get(&short).await.unwrap().as_deref(),
        Some("gone soon")
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(values.get(&short).await.unwrap(), None, "expired");

    let tokens: &dyn TokenRepository = app.module.resolve_ref();
    let uid = (rand_bits() % 1_000_000_000) as i64;
    tokens
        .start(uid, "s1", "r1", Duration::from_secs(60))
        .await
        .unwrap();
    use go_example::repository::redis::token::Rotation;
    let ttl = Duration::from_secs(60);
    assert_eq!(
        tokens.rotate(uid, "s1", "r1", "r2", ttl).await.unwrap(),
        Rotation::Rotated
    );
    assert_eq!(
        tokens.rotate(uid, "s1", "r1", "r3", ttl).await.unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        tokens.rotate(uid, "s0", "r2", "r3", ttl).await.unwrap(),
        Rotation::Superseded
    );
    let record = tokens.get(uid).await.unwrap();
    assert_eq!(
        (record["sid"].as_str(), record["refresh_jti"].as_str()),
        ("s1", "r2")
    );
    assert!(!tokens.revoke(uid, "s0").await.unwrap(), "not that login");
    assert!(tokens.revoke(uid, "s1").await.unwrap());
    assert!(tokens.get(uid).await.unwrap().is_empty());
    assert_eq!(
        tokens.rotate(uid, "s1", "r2", "r3", ttl).await.unwrap(),
        Rotation::SignedOut
    );
    assert!(tokens.get(uid).await.unwrap().is_empty(), "never recreated");

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let expected = on_redis.then_some("up");
    assert_eq!(
        body["checks"].get("redis").and_then(|v| v.as_str()),
        expected,
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_work_on_a_single_redis() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    let app = spawn_app_with(&redis_overrides("single", &addr)).await;
    exercise_repositories(&app, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_reports_the_redis_value() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    let key = unique("it:hello");
    let mut overrides = redis_overrides("single", &addr);
    overrides.push(("APP__CACHEKEYS__HELLOVALUE__KEY", key.clone()));
    let app = spawn_app_with(&overrides).await;
    assert_eq!(app.get_json("/hello").await.1["value"], "");
    let values: &dyn ValueRepository = app.module.resolve_ref();
    values
        .set(&key, "from redis", Duration::from_secs(60))
        .await
        .unwrap();
    let (status, body) = app.get_json("/hello").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("from redis")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_keeps_values_in_process() {
    let app = spawn_app().await;
    exercise_repositories(&app, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_in_time_and_recovers_by_itself() {
    if service_env("APP__REDIS__ADDRS__0").is_none() {
        return;
    }
    let port = free_port();
    let mut server = private_redis(port);
    let mut overrides = redis_overrides("single", &format!("127.0.0.1:{port}"));
    overrides.push(("APP__REDIS__COMMAND_TIMEOUT", "500ms".into()));
    overrides.push(("APP__REDIS__CONNECT_TIMEOUT", "500ms".into()));
    let app = spawn_app_with(&overrides).await;
    assert!(
        eventually(Duration::from_secs(5), async || app
            .get_json("/hello")
            .await
            .0
            == 200)
        .await
    );

    let _ = server.0.kill();
    let _ = server.0.wait();
    let started = Instant::now();
    let (status, body) = app.get_json("/hello").await;
    assert_eq!(status, 503, "{body}");
    assert!(assert_envelope(&body, "10004").contains("redis"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeouts"
    );
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert!(assert_envelope(&body, "10004").contains("redis"));
    // Routes that do not need Redis are unaffected.
    assert_eq!(app.get_json("/healthz").await.0, 200);

    server = private_redis(port);
    assert!(
        eventually(Duration::from_secs(10), async || app
            .get_json("/hello")
            .await
            .0
            == 200)
        .await,
        "recovers without a restart"
    );
    drop(server);
}

//! The unified envelope for every failure the framework itself answers.

use crate::helpers::{assert_envelope, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_a_404_envelope() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/nope").await;
    assert_eq!(status, 404);
    assert_eq!(assert_envelope(&body, "10005"), "资源不存在");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_a_405_envelope() {
    let app = spawn_app().await;
    let res = app
        .client
        .delete(format!("{}/hello", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_envelope(&res.json().await.unwrap(), "10014");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_follow_accept_language() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/nope", app.address))
        .header("Accept-Language", "en-US,en;q=0.9,zh;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(
        assert_envelope(&res.json().await.unwrap(), "10005"),
        "Not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_500_envelope_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let (status, body) = app.get_json("/debug/panic").await;
        assert_eq!(status, 500);
        let message = assert_envelope(&body, "10001");
        assert!(
            !message.contains("deliberate"),
            "panic text must not leak: {message}"
        );
    }
    let (status, _) = app.get_json("/hello").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_routes_are_absent_when_disabled() {
    let app = spawn_app_with(&[("APP__SERVER__DEBUG_ROUTES", "false".into())]).await;
    let (status, _) = app.get_json("/debug/panic").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_is_a_503_naming_the_dependency() {
    // A MySQL address nobody listens on: pooled connects fail fast.
    let app = spawn_app_with(&[
        ("APP__DATABASE__DRIVER", "mysql".into()),
        ("APP__DATABASE__MIGRATE_ON_START", "false".into()),
        ("APP__DATABASE__ACQUIRE_TIMEOUT", "1s".into()),
        (
            "APP__MYSQL__DSN",
            "mysql://root:topsecret@127.0.0.1:1/none".into(),
        ),
        ("APP__MYSQL__CONNECT_TIMEOUT", "1s".into()),
    ])
    .await;
    let started = std::time::Instant::now();
    let (status, body) = app.get_json("/hello?id=1").await;
    assert_eq!(status, 503);
    let message = assert_envelope(&body, "10004");
    assert!(message.contains("database"), "{message}");
    assert!(!body.to_string().contains("topsecret"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded by the timeouts"
    );

    let res = app.get("/readyz").await;
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(assert_envelope(&res.json().await.unwrap(), "10004").contains("database"));

    // Routes that need no database keep working.
    assert_eq!(app.get_json("/hello").await.0, 200);
    assert_eq!(app.get_json("/healthz").await.0, 200);
}

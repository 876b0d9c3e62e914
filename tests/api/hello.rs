//! `GET /hello`: the original's response and its cache-aside lookup.

use go_example::repository::cache::user::UserCacheRepository;
use shaku::HasComponent;

use crate::helpers::{seed_user, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_without_id_greets_with_an_empty_user() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/hello").await;
    assert_eq!(status, 200);
    assert_eq!(body["hello"], "world，rust");
    assert_eq!(body["env"], "test");
    assert_eq!(body["user"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_names_the_user_and_fills_the_cache() {
    let app = spawn_app().await;
    let id = seed_user(&app, "alice01").await;
    let cache: &dyn UserCacheRepository = app.module.resolve_ref();
    assert!(cache.get(id).is_none(), "cold cache");

    let (status, body) = app.get_json(&format!("/hello?id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"], "alice01");
    assert_eq!(
        cache.get(id).map(|u| u.username).as_deref(),
        Some("alice01"),
        "filled by the lookup"
    );

    // Served from the cache: a cached value that differs from the row proves the path.
    let mut cached = cache.get(id).unwrap();
    cached.username = "from-cache".into();
    cache.set(&cached);
    let (_, body) = app.get_json(&format!("/hello?id={id}")).await;
    assert_eq!(body["user"], "from-cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_an_empty_name_not_an_error() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/hello?id=999999").await;
    assert_eq!(status, 200);
    assert_eq!(body["user"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"]["database"], "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_generated_or_echoed() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!generated.is_empty());
    let res = app.get("/healthz").await;
    assert_ne!(res.headers()["x-request-id"].to_str().unwrap(), generated);
    let res = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "client-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-id-42");
    let res = app
        .client
        .get(format!("{}/nope", app.address))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id with spaces");
}

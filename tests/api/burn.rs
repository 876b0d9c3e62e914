//! `GET /debug/burn`, the overload benchmark's CPU-bound route: it answers what it burned,
//! refuses `ms` outside 1..=100 with the 400 / 10000 envelope, takes at least the time it
//! burns, and is absent without `server.debug_routes`. (`bench.Burn`, its gRPC twin: `grpc.rs`.)

use std::time::{Duration, Instant};

use crate::helpers::{assert_envelope, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_answers_the_milliseconds_it_burned_and_takes_at_least_that_long() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/debug/burn?ms=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({ "burned_ms": 1 }));
    // The default is the benchmark's 1 ms.
    let (status, body) = app.get_json("/debug/burn").await;
    assert_eq!((status, &body["burned_ms"]), (200, &serde_json::json!(1)));
    let started = Instant::now();
    let (status, body) = app.get_json("/debug/burn?ms=30").await;
    assert_eq!((status, &body["burned_ms"]), (200, &serde_json::json!(30)));
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "burned for {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_refuses_ms_outside_1_to_100_with_the_400_envelope() {
    let app = spawn_app().await;
    for bad in ["0", "101", "100000", "-1", "x"] {
        let (status, body) = app.get_json(&format!("/debug/burn?ms={bad}")).await;
        assert_eq!(status, 400, "ms={bad}: {body}");
        assert_envelope(&body, "10000");
    }
    let (status, _) = app.get_json("/debug/burn?ms=100").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_is_absent_without_debug_routes() {
    let app = spawn_app_with(&[("APP__SERVER__DEBUG_ROUTES", "false".into())]).await;
    let (status, _) = app.get_json("/debug/burn?ms=1").await;
    assert_eq!(status, 404);
}

//! `GET /grpc/hello`: the HTTP app calling the gRPC app over mTLS through the circuit breaker,
//! and degrading honestly: 503 / 10004 when the gRPC app is down, then "circuit open" without
//! calling it, then closed again once a probe gets through.

use std::time::{Duration, Instant};

use go_example::cmd::grpc::GrpcApplication;
use goex_config::Profile;
use serde_json::Value;

use crate::helpers::{TestApp, assert_envelope, free_port, spawn_app_adjusted, test_config};

/// A gRPC app on `port` serving with the certificates in `certs`; stopped when the sender drops.
async fn grpc_app_on(port: u16, certs: &std::path::Path) -> tokio::sync::oneshot::Sender<()> {
    let dir = tempfile::tempdir().unwrap().keep();
    let config = test_config(&[
        ("APP__SERVER__GRPC__ADDR", format!("127.0.0.1:{port}")),
        ("APP__SERVER__GRPC__TLS__DIR", certs.display().to_string()),
        ("APP__SERVER__GRPC__TLS__CLIENT_AUTH", "require".to_owned()),
        (
            "APP__SQLITE__PATH",
            dir.join("grpc.db").display().to_string(),
        ),
        ("APP__CERTS__DIR", dir.join("keys").display().to_string()),
    ]);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let app = GrpcApplication::build(&config, Profile::Test, &logger)
        .await
        .expect("grpc app builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    stop
}

async fn http_app_calling(port: u16, certs: &std::path::Path, sleep_window: Duration) -> TestApp {
    spawn_app_adjusted(
        &[
            (
                "APP__GRPC_CLIENT__ADDR",
                format!("https://127.0.0.1:{port}"),
            ),
            ("APP__GRPC_CLIENT__TLS__DIR", certs.display().to_string()),
        ],
        |config| {
            let breaker = config
                .grpc_client
                .breaker
                .get_mut("SayHello")
                .expect("the SayHello breaker is configured");
            breaker.sleep_window = sleep_window;
        },
    )
    .await
}

async fn grpc_hello(app: &TestApp, query: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = app.get_json(&format!("/grpc/hello{query}")).await;
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_hello_answers_through_the_client_as_the_original() {
    let certs = tempfile::tempdir().unwrap();
    goex_certs::ensure(certs.path(), 1).unwrap();
    let port = free_port();
    let _grpc = grpc_app_on(port, certs.path()).await;
    let app = http_app_calling(port, certs.path(), Duration::from_secs(5)).await;
    let (status, body, _) = grpc_hello(&app, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({ "data": { "name": "hello world" } })
    );
    let (status, body, _) = grpc_hello(&app, "?id=5").await;
    assert_eq!(
        (status, body["data"]["name"].as_str()),
        (200, Some("hello gRPC"))
    );
    let (status, body, _) = grpc_hello(&app, "?id=abc").await;
    assert_eq!(status, 400);
    assert_envelope(&body, "10000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_a_dead_grpc_app_answers_degraded_then_closes_after_a_probe() {
    let certs = tempfile::tempdir().unwrap();
    goex_certs::ensure(certs.path(), 1).unwrap();
    let port = free_port();
    let app = http_app_calling(port, certs.path(), Duration::from_millis(800)).await;

    // Nothing listens: each call fails as unreachable (10004), honestly, not as a success.
    for _ in 0..10 {
        let (status, body, _) = grpc_hello(&app, "").await;
        assert_eq!(status, 503, "{body}");
        let message = assert_envelope(&body, "10004");
        assert!(!message.contains("circuit open"), "{message}");
    }
    // Ten failures in the window: open. Refused at once, without a call, and it says so.
    let (status, body, took) = grpc_hello(&app, "").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        assert_envelope(&body, "10004").contains("circuit open"),
        "{body}"
    );
    assert!(
        took < Duration::from_millis(200),
        "short-circuited: {took:?}"
    );
    // The dashboard's breaker panel: 2 open.
    let breaker = r#"go_example_breaker_state{method="/hello.HelloService/SayHello"}"#;
    let (_, text) = crate::helpers::scrape(&app).await;
    assert_eq!(
        crate::helpers::quick_value(&text, breaker),
        Some(2.0),
        "{text}"
    );

    // The gRPC app comes back; after the sleep window one probe goes through and closes it.
    let _grpc = grpc_app_on(port, certs.path()).await;
    let (status, body, _) = grpc_hello(&app, "").await;
    assert!(
        assert_envelope(&body, "10004").contains("circuit open"),
        "{status} {body}"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (status, body, _) = grpc_hello(&app, "").await;
    assert_eq!(status, 200, "the probe: {body}");
    for _ in 0..5 {
        assert_eq!(grpc_hello(&app, "").await.0, 200, "closed again");
    }
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(ready["breakers"]["/hello.HelloService/SayHello"], "closed");
    let (_, text) = crate::helpers::scrape(&app).await;
    assert_eq!(crate::helpers::quick_value(&text, breaker), Some(0.0));
}

/// Issue 22: anonymous `/grpc/hello` floods from one client held the gRPC app's breaker open
/// for everyone. Calls per client address are counted before the gRPC app is called (the
/// rate-limit rule `grpc-hello`, at test scale burst 5): 12 at once from one address → exactly
/// 5 reach the client (503 here: no gRPC app runs), 7 are refused 429 / 10008; another address
/// is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_is_held_to_its_calls_per_address_in_parallel() {
    let port = free_port();
    let app = spawn_app_adjusted(
        &[
            (
                "APP__GRPC_CLIENT__ADDR",
                format!("https://127.0.0.1:{port}"),
            ),
            ("APP__RATE_LIMIT__ENABLED", "true".to_owned()),
            (
                "APP__SERVER__HTTP__TRUSTED_PROXIES__0",
                "127.0.0.1/32".to_owned(),
            ),
        ],
        |config| {
            let calls = config
                .rate_limit
                .rules
                .iter_mut()
                .find(|r| r.name == "grpc-hello")
                .expect("the shipped rule");
            calls.burst = 5;
        },
    )
    .await;
    let call = |client: &'static str| {
        let (http, url) = (app.client.clone(), format!("{}/grpc/hello", app.address));
        async move {
            let res = http
                .get(url)
                .header("X-Forwarded-For", client)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let answers = futures_util::future::join_all((0..12).map(|_| call("198.51.100.7"))).await;
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(refused.len(), 7, "{answers:?}");
    for (_, body) in refused {
        assert_envelope(body, "10008");
    }
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s != 429)
            .all(|(s, _)| *s == 503),
        "{answers:?}"
    );
    let (status, body) = call("198.51.100.8").await;
    assert_eq!(status, 503, "another address is not throttled: {body}");
}

/// `grpc_client.addr: dns:///host:port` (the Kubernetes manifests' headless Service): the name
/// resolved by the system resolver, every address dialled with TLS and the configured name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_hello_answers_through_a_dns_name_resolved_by_the_client() {
    let certs = tempfile::tempdir().unwrap();
    goex_certs::ensure(certs.path(), 1).unwrap();
    let port = free_port();
    let _grpc = grpc_app_on(port, certs.path()).await;
    let app = spawn_app_adjusted(
        &[
            ("APP__GRPC_CLIENT__ADDR", format!("dns:///localhost:{port}")),
            (
                "APP__GRPC_CLIENT__TLS__DIR",
                certs.path().display().to_string(),
            ),
        ],
        |_| {},
    )
    .await;
    let (status, body, _) = grpc_hello(&app, "?id=5").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "hello gRPC");
}

//! Adaptive load shedding wired into the apps (docs/overload.md), with the CPU reading and the
//! clock set by hand (`SheddingSources::Manual` in place of the assembled component): over
//! the threshold with more requests in flight than the capacity estimate, the HTTP app answers
//! 503 / 10015 with `Retry-After` before reading a body and the gRPC app `RESOURCE_EXHAUSTED`
//! with `x-error-code: 10015`, while the probes still answer; off (the test profile) nothing is
//! dropped; the CPU sampler ends with the app; tonic's static backstop answers a call over a
//! connection's limit `RESOURCE_EXHAUSTED`. No test waits on a timing: in-flight requests are
//! held, not slowed.

use std::time::Duration;

use go_example::assembly::{AppModule, Customize};
use go_example::meta::config::AppConfig;
use go_example::proto::hello::HelloRequest;
use go_example::proto::hello::hello_service_client::HelloServiceClient;
use go_example::service::shedding::{
    AdaptiveLoadShedding, Admission, LoadShedding, SheddingSources,
};
use goex_shedding::{ManualClock, ManualCpu};
use shaku::HasComponent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::grpc::{channel, error_code, spawn_grpc_customized, tls, with_password};
use crate::helpers::{
    TestApp, assert_envelope, eventually, quick_value, scrape, spawn_app_customized,
};

/// The hand-set readings every app of a test shares with it.
#[derive(Clone, Default)]
struct Readings {
    cpu: ManualCpu,
    clock: ManualClock,
}

impl Readings {
    /// A module change putting the shedder on these readings, with the section as loaded.
    fn customize(&self) -> impl FnOnce(&AppConfig) -> Customize<'static> {
        let readings = self.clone();
        move |config: &AppConfig| {
            let settings = config.shedding.clone();
            Box::new(move |builder, infra| {
                builder.with_component_override::<dyn LoadShedding>(Box::new(
                    AdaptiveLoadShedding::new(
                        settings,
                        SheddingSources::Manual {
                            cpu: readings.cpu,
                            clock: readings.clock,
                        },
                        infra.metrics.clone(),
                    ),
                ))
            })
        }
    }

    /// Puts the app's shedder over its threshold (95 %) with ten requests held in flight, and
    /// ends requests until one is dropped: the capacity estimate is 10 (no pass yet), scaled
    /// by half at 95 %, and each request that ends moves the smoothed in-flight count towards
    /// the ten held. Answers the held requests; the shedder is then in its cool-off.
    fn overload(&self, module: &AppModule) -> Vec<Admission> {
        let shedding: &dyn LoadShedding = module.resolve_ref();
        let shedder = shedding.shedder("test").unwrap();
        assert!(shedder.is_enabled());
        self.cpu.set(0.95);
        let held: Vec<Admission> = (0..10).map(|_| shedder.admit().unwrap()).collect();
        for ended in 0.. {
            assert!(ended < 20, "no drop after {ended} requests ended");
            match shedder.admit() {
                Ok(admission) => admission.fail(),
                Err(busy) => {
                    assert_eq!(busy.code().code, 10015);
                    break;
                }
            }
        }
        held
    }

    /// Ends the overload: the held requests done, the CPU at 50 %, the cool-off past.
    fn recover(&self, held: Vec<Admission>) {
        drop(held);
        self.cpu.set(0.5);
        self.clock.advance(Duration::from_secs(2));
    }
}

const ON: [(&str, &str); 1] = [("APP__SHEDDING__ENABLED", "true")];

fn vars(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

async fn spawn_http(readings: &Readings, extra: &[(&'static str, &str)]) -> TestApp {
    spawn_app_customized(&vars(extra), |_| {}, readings.customize()).await
}

/// The status line and headers of a request sent as `head`, with no body after it.
async fn raw(app: &TestApp, head: &str) -> String {
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer arrives without the body; a server waiting for it would answer 408 after
    // server.http.body_timeout instead.
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_http_app_sheds_with_503_10015_and_still_answers_its_probes() {
    let readings = Readings::default();
    let app = spawn_http(&readings, &ON).await;
    assert_eq!(
        app.get("/hello").await.status().as_u16(),
        200,
        "admitted at first"
    );
    let held = readings.overload(&app.module);

    let res = app
        .client
        .get(format!("{}/hello", app.address))
        .header("Accept-Language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(res.headers().contains_key("x-request-id"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(assert_envelope(&body, "10015"), "Server busy");
    let (_, zh) = app.get_json("/hello").await;
    assert_eq!(assert_envelope(&zh, "10015"), "服务繁忙");
    // Any route, and before its body is read: the head alone gets the refusal.
    let answer = raw(
        &app,
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 64\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );

    // The probes are never shed.
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);

    // The metrics listener answers, with the decisions and the shedder's readings.
    let (_, text) = scrape(&app).await;
    let dropped = quick_value(
        &text,
        r#"go_example_shedding_decisions_total{app="http",outcome="dropped"}"#,
    );
    assert_eq!(dropped, Some(3.0), "{text}");
    let admitted = quick_value(
        &text,
        r#"go_example_shedding_decisions_total{app="http",outcome="admitted"}"#,
    );
    assert_eq!(admitted, Some(1.0), "{text}");
    assert_eq!(
        quick_value(&text, "go_example_process_cpu_usage"),
        Some(0.95)
    );
    assert_eq!(
        quick_value(&text, "go_example_shedding_capacity"),
        Some(10.0)
    );

    readings.recover(held);
    assert_eq!(
        app.get("/hello").await.status().as_u16(),
        200,
        "admitted again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_as_in_the_test_profile_nothing_is_dropped_or_measured() {
    let readings = Readings::default();
    readings.cpu.set(1.0);
    let app = spawn_http(&readings, &[]).await;
    let shedding: &dyn LoadShedding = app.module.resolve_ref();
    let shedder = shedding.shedder("test").unwrap();
    assert!(!shedder.is_enabled());
    // Held far over any capacity, at 100 % CPU: still admitted.
    let held: Vec<Admission> = (0..100).map(|_| shedder.admit().unwrap()).collect();
    let answers = futures_util::future::join_all((0..50).map(|_| app.get("/hello"))).await;
    assert!(answers.iter().all(|r| r.status().as_u16() == 200));
    drop(held);
    let (_, text) = scrape(&app).await;
    assert!(!text.contains("go_example_process_cpu_usage "), "{text}");
    assert!(
        !text.contains(r#"go_example_shedding_decisions_total{"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_sampler_runs_with_the_app_and_ends_when_it_stops() {
    // nextest runs each test in its own process: no other app samples here.
    let before = goex_shedding::running_samplers();
    let app = crate::helpers::spawn_app_with(&vars(&ON)).await;
    assert_eq!(
        goex_shedding::running_samplers(),
        before + 1,
        "one sampler for the app"
    );
    assert_eq!(app.get("/hello").await.status().as_u16(), 200);
    drop(app);
    assert!(
        eventually(
            Duration::from_secs(10),
            async || goex_shedding::running_samplers() == before
        )
        .await,
        "the sampler outlived the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_grpc_app_answers_resource_exhausted_10015_and_health_serving() {
    let readings = Readings::default();
    let app = spawn_grpc_customized(
        tempfile::tempdir().unwrap(),
        "request",
        &vars(&ON),
        readings.customize(),
    )
    .await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let mut client = HelloServiceClient::new(channel.clone());
    let call = || with_password(HelloRequest { id: 1 }, "root123");
    client.say_hello(call()).await.expect("admitted at first");
    let held = readings.overload(&app.module);

    let status = client.say_hello(call()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_code(&status), "10015");
    assert_eq!(status.message(), "Server busy");
    // Shed before the credentials are looked at.
    let wrong = client
        .say_hello(with_password(HelloRequest { id: 1 }, "wrong-password"))
        .await
        .unwrap_err();
    assert_eq!(error_code(&wrong), "10015");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is never shed")
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The gRPC app's own metrics listener.
    let port = app.metrics_port.expect("metrics.grpc_addr is bound");
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (series, value) in [
        (
            r#"go_example_shedding_decisions_total{app="grpc",outcome="admitted"}"#,
            1.0,
        ),
        (
            r#"go_example_shedding_decisions_total{app="grpc",outcome="dropped"}"#,
            2.0,
        ),
        ("go_example_process_cpu_usage", 0.95),
        ("go_example_shedding_capacity", 10.0),
    ] {
        assert_eq!(
            quick_value(&text, series),
            Some(value),
            "{series} in\n{text}"
        );
    }

    readings.recover(held);
    client.say_hello(call()).await.expect("admitted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_backstop_answers_a_call_over_the_connection_limit_resource_exhausted() {
    let app = spawn_grpc_customized(
        tempfile::tempdir().unwrap(),
        "request",
        &vars(&[("APP__SERVER__GRPC__CONCURRENCY_LIMIT_PER_CONNECTION", "1")]),
        |_| Box::new(|builder, _| builder),
    )
    .await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    // One call on the connection that never sends its message: it holds the only slot. Both
    // calls race for it: when the probe below wins, the holder is the call refused, ends, and
    // is started again.
    let hold = |channel: tonic::transport::Channel| {
        tokio::spawn(async move {
            let mut holder = tonic::client::Grpc::new(channel);
            holder.ready().await.unwrap();
            let never = with_password(futures_util::stream::pending::<HelloRequest>(), "root123");
            let codec = tonic_prost::ProstCodec::<
                HelloRequest,
                go_example::proto::hello::HelloResponse,
            >::default();
            let path = http::uri::PathAndQuery::from_static("/hello.HelloService/SayHello");
            holder.client_streaming(never, path, codec).await
        })
    };
    let mut held = hold(channel.clone());
    let mut client = HelloServiceClient::new(channel.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Time for the holder's headers to reach the server before the probe's.
        tokio::time::sleep(Duration::from_millis(50)).await;
        match client
            .say_hello(with_password(HelloRequest { id: 1 }, "root123"))
            .await
        {
            Err(status) => {
                // A status, not a broken stream.
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                break;
            }
            Ok(_) if held.is_finished() => held = hold(channel.clone()),
            Ok(_) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a second call on the connection was never shed"
        );
    }
    held.abort();
}

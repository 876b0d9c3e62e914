//! OpenTelemetry tracing (docs/tracing.md) against a real OTLP/gRPC receiver, the collector
//! double (tests/otlp/collector_double.py on PyPI's `opentelemetry-proto` and `grpcio`): the
//! server span of a request, its parent when the caller is believed, its status, the trace id
//! in the envelope and in the request's log records, sampling, a collector that never
//! answers, the flush on graceful shutdown, and one trace across the HTTP app and the gRPC app
//! running as another process.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    LoggedApp, ProcessApp, TestApp, eventually, python_venv, spawn_app_with, spawn_double_with,
    spawn_logged, spawn_served, test_config,
};

/// The double's packages, tested together (grpcio as the other Python gRPC peers pin it).
const OTLP_PACKAGES: &[&str] = &[
    "grpcio==1.85.1",
    "protobuf==7.36.2",
    "opentelemetry-proto==1.45.2",
];

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// OTLP's span kinds and status codes, as the double stores them.
const KIND_SERVER: i64 = 2;
const KIND_CLIENT: i64 = 3;
const KIND_PRODUCER: i64 = 4;
const STATUS_UNSET: i64 = 0;
const STATUS_ERROR: i64 = 2;

/// The collector double, stopped when dropped.
struct Collector {
    child: Child,
    endpoint: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collector() -> Collector {
    let python = python_venv("otlp", OTLP_PACKAGES);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spans.jsonl");
    let (child, endpoint) = spawn_double_with(
        python.as_os_str(),
        "tests/otlp/collector_double.py",
        &[OsStr::new("--out"), out.as_os_str()],
    );
    Collector {
        child,
        endpoint,
        out,
        _dir: dir,
    }
}

/// The log records of the request with id `id`, once its access record has been written.
async fn request_records(app: &LoggedApp, id: &str) -> Vec<HashMap<String, String>> {
    let records = || -> Vec<_> {
        app.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.get("request_id").is_some_and(|rid| rid == id))
            .cloned()
            .collect()
    };
    eventually(Duration::from_secs(5), async || {
        records().iter().any(|r| r["msg"] == "request")
    })
    .await;
    records()
}

/// The envelope of `GET /nope` sent from loopback with a traceparent of `trace`, to a traced
/// app whose one trusted proxy is `proxies`; the app is kept serving (its spans are exported
/// while it lives).
async fn behind_proxies(collector: &Collector, proxies: &str, trace: &str) -> (TestApp, Value) {
    let app = spawn_app_with(&traced(
        &collector.endpoint,
        &[("APP__SERVER__HTTP__TRUSTED_PROXIES__0", proxies)],
    ))
    .await;
    let res = get_traced(&app, "/nope", traceparent(trace, PARENT, "01")).await;
    let body = res.json().await.unwrap();
    (app, body)
}

impl Collector {
    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a whole JSON line"))
            .collect()
    }

    /// The spans of `trace_id` once `count` arrived (within 10 s; fewer after that).
    async fn trace_of(&self, trace_id: &str, count: usize) -> Vec<Value> {
        let of_trace = |spans: Vec<Value>| -> Vec<Value> {
            spans
                .into_iter()
                .filter(|s| s["trace_id"] == trace_id)
                .collect()
        };
        eventually(Duration::from_secs(10), async || {
            of_trace(self.spans()).len() >= count
        })
        .await;
        of_trace(self.spans())
    }

    /// The spans of `trace_id`, once at least one arrived (the batch is sent every 100 ms).
    async fn trace(&self, trace_id: &str) -> Vec<Value> {
        let spans = self.trace_of(trace_id, 1).await;
        assert!(
            !spans.is_empty(),
            "no span of trace {trace_id} in {:?}",
            self.spans()
        );
        spans
    }
}

/// The HTTP app traced to `collector`, believing any caller's `traceparent`
/// (`tracing.trust_incoming`), with `extra`.
async fn trusting_app(collector: &Collector, extra: &[(&'static str, &str)]) -> TestApp {
    let mut vars = traced(&collector.endpoint, extra);
    vars.push(("APP__TRACING__TRUST_INCOMING", "true".to_owned()));
    spawn_app_with(&vars).await
}

/// Tracing on, exporting to `endpoint` every 100 ms, with `extra`.
fn traced(endpoint: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("APP__TRACING__ENABLED", "true".to_owned()),
        ("APP__TRACING__ENDPOINT", endpoint.to_owned()),
        ("APP__TRACING__SCHEDULED_DELAY", "100ms".to_owned()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    vars
}

/// `GET path` on `app` with the W3C `traceparent` header `value`.
async fn get_traced(app: &TestApp, path: &str, value: String) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .header("traceparent", value)
        .send()
        .await
        .unwrap()
}

fn traceparent(trace: &str, parent: &str, flags: &str) -> String {
    format!("00-{trace}-{parent}-{flags}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_believed_traceparent_makes_a_server_span_of_that_trace_named_by_route() {
    let collector = collector();
    let app = trusting_app(&collector, &[]).await;
    let res = app
        .client
        .get(format!("{}/excel/import/123", app.address))
        .header("traceparent", traceparent(TRACE, PARENT, "01"))
        .header("user-agent", "tracing-test/1")
        .send()
        .await
        .unwrap();
    // A route that wants a user: a 4xx, the client's failure, not the server's.
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["trace_id"], TRACE, "{body}");

    let spans = collector.trace(TRACE).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    // The template, never the raw path (bounded span names).
    assert_eq!(span["name"], "GET /excel/import/{id}", "{span}");
    assert_eq!(span["kind"], KIND_SERVER);
    assert_eq!(span["parent_span_id"], PARENT);
    assert_eq!(span["status_code"], STATUS_UNSET, "{span}");
    let attributes = &span["attributes"];
    assert_eq!(attributes["http.request.method"], "GET");
    assert_eq!(attributes["http.route"], "/excel/import/{id}");
    assert_eq!(attributes["url.path"], "/excel/import/123");
    assert_eq!(attributes["url.scheme"], "http");
    assert_eq!(attributes["http.response.status_code"], 401);
    assert_eq!(attributes["client.address"], "127.0.0.1");
    assert_eq!(attributes["network.protocol.version"], "1.1");
    assert_eq!(attributes["user_agent.original"], "tracing-test/1");
    assert!(attributes.get("error.type").is_none(), "{span}");
    let resource = &span["resource"];
    assert_eq!(resource["service.name"], "go_example-http");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["deployment.environment.name"], "test");
    assert_eq!(span["scope"], "go_example");

    // A success answers no envelope; its span is there all the same.
    let other = "0af7651916cd43dd8448eb211c80319c";
    let res = app
        .client
        .get(format!("{}/hello", app.address))
        .header("traceparent", traceparent(other, PARENT, "01"))
        .header("user-agent", "u".repeat(600))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let spans = collector.trace(other).await;
    assert_eq!(spans[0]["name"], "GET /hello");
    assert_eq!(spans[0]["attributes"]["http.response.status_code"], 200);
    // The client's text is cut: a queue of held spans stays small.
    assert_eq!(
        spans[0]["attributes"]["user_agent.original"],
        "u".repeat(512).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_span_is_an_error_and_the_envelope_and_logs_carry_its_ids() {
    let collector = collector();
    let vars = traced(&collector.endpoint, &[]);
    let vars: Vec<(&'static str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_logged(&vars).await;
    let res = app
        .client
        .get(format!("{}/debug/panic", app.address))
        .header("x-request-id", "traced-panic-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 500);
    let body: Value = res.json().await.unwrap();
    let trace_id = body["error"]["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_id in {body}"))
        .to_owned();
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    assert_eq!(body["error"]["request_id"], "traced-panic-1");

    let spans = collector.trace(&trace_id).await;
    let span = &spans[0];
    assert_eq!(span["name"], "GET /debug/panic");
    assert_eq!(span["status_code"], STATUS_ERROR, "{span}");
    assert_eq!(span["attributes"]["error.type"], "500");
    assert_eq!(span["attributes"]["http.response.status_code"], 500);
    // No caller trace: a root.
    assert_eq!(span["parent_span_id"], "");
    let span_id = span["span_id"].as_str().unwrap();

    // The error record and the access record of the request carry both ids.
    let records = request_records(&app, "traced-panic-1").await;
    for msg in ["request failed", "request"] {
        let record = records
            .iter()
            .find(|r| r["msg"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?} record in {records:?}"));
        assert_eq!(record.get("trace_id"), Some(&trace_id), "{record:?}");
        assert_eq!(
            record.get("span_id").map(String::as_str),
            Some(span_id),
            "{record:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_is_believed_only_from_trusted_proxies_or_when_configured() {
    let collector = collector();
    // Default: no trusted proxy, trust_incoming off. The client's trace is not continued.
    let app = spawn_app_with(&traced(&collector.endpoint, &[])).await;
    let res = get_traced(&app, "/nope", traceparent(TRACE, PARENT, "01")).await;
    assert_eq!(res.status().as_u16(), 404);
    let body: Value = res.json().await.unwrap();
    let own = body["error"]["trace_id"].as_str().unwrap().to_owned();
    assert_ne!(own, TRACE);
    let spans = collector.trace(&own).await;
    assert_eq!(spans[0]["parent_span_id"], "", "{spans:?}");
    // No route: named by the method alone.
    assert_eq!(spans[0]["name"], "GET");
    assert!(spans[0]["attributes"].get("http.route").is_none());
    drop(app);

    // The same request through a trusted proxy (loopback) continues the caller's trace.
    let trusted = "5bf92f3577b34da6a3ce929d0e0e4736";
    let (app, body) = behind_proxies(&collector, "127.0.0.1/32", trusted).await;
    assert_eq!(body["error"]["trace_id"], trusted, "{body}");
    let spans = collector.trace(trusted).await;
    assert_eq!(spans[0]["parent_span_id"], PARENT);
    drop(app);

    // Trusted proxies configured, but the request comes from elsewhere: not believed.
    let (_app, body) = behind_proxies(&collector, "10.0.0.0/8", trusted).await;
    let own = body["error"]["trace_id"].as_str().unwrap().to_owned();
    assert_ne!(own, trusted, "{body}");
    let spans = collector.trace(&own).await;
    assert_eq!(spans[0]["parent_span_id"], "", "{spans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_ratio_zero_nothing_is_sent_but_ids_are_still_given() {
    let collector = collector();
    let app = trusting_app(&collector, &[("APP__TRACING__SAMPLE_RATIO", "0")]).await;
    let mut unsampled = Vec::new();
    for path in ["/hello", "/nope", "/debug/panic"] {
        for _ in 0..5 {
            let res = app.get(path).await;
            if res.status().as_u16() >= 400 {
                let body: Value = res.json().await.unwrap();
                unsampled.push(body["error"]["trace_id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(unsampled.len(), 10);
    // A caller that sampled its trace is followed (parent-based): this span is sent, after
    // the others were made, through the same queue.
    let res = get_traced(&app, "/hello", traceparent(TRACE, PARENT, "01")).await;
    assert_eq!(res.status().as_u16(), 200);
    collector.trace(TRACE).await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "only the followed trace: {spans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_off_adds_nothing_to_envelopes_or_logs() {
    let app = spawn_logged(&[]).await;
    let res = app
        .client
        .get(format!("{}/debug/panic", app.address))
        .header("x-request-id", "untraced-1")
        .header("traceparent", traceparent(TRACE, PARENT, "01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 500);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].get("trace_id").is_none(), "{body}");
    let records = request_records(&app, "untraced-1").await;
    assert!(
        records.iter().any(|r| r["msg"] == "request failed"),
        "{records:?}"
    );
    for record in &records {
        assert!(
            record.get("trace_id").is_none() && record.get("span_id").is_none(),
            "{record:?}"
        );
    }
    assert!(!test_config(&[]).tracing.enabled, "off by default");
}

/// A collector that accepts connections and never answers (nothing reads them), and a port
/// nobody listens on: neither may slow a request, whatever the queue holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_absent_collector_neither_slows_nor_blocks_requests() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let absent_port = crate::helpers::free_port();
    for endpoint in [
        format!("http://{}", silent.local_addr().unwrap()),
        format!("http://127.0.0.1:{absent_port}"),
    ] {
        // The default export timeout (10 s): a request that waited on the exporter would take
        // seconds; the queue is small so that it is full long before the run ends.
        let app = spawn_app_with(&traced(
            &endpoint,
            &[
                ("APP__TRACING__QUEUE_SIZE", "64"),
                ("APP__TRACING__BATCH_SIZE", "16"),
            ],
        ))
        .await;
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..8 {
            let client = app.client.clone();
            let url = format!("{}/hello", app.address);
            clients.push(tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                for _ in 0..100 {
                    let one = Instant::now();
                    let res = client.get(&url).send().await.unwrap();
                    assert_eq!(res.status().as_u16(), 200);
                    slowest = slowest.max(one.elapsed());
                }
                slowest
            }));
        }
        let mut slowest = Duration::ZERO;
        for client in clients {
            slowest = slowest.max(client.await.unwrap());
        }
        let spent = started.elapsed();
        // 800 requests, 12 times the queue: none waited for an export (10 s).
        assert!(
            slowest < Duration::from_secs(3),
            "{endpoint}: slowest request {slowest:?} ({spent:?} in all)"
        );
        drop(app);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_gave_up_still_exports_its_named_span() {
    let collector = collector();
    let app = trusting_app(&collector, &[]).await;
    // The client gives up long before the answer and closes its connection. actix serves the
    // request to its end all the same (a handler that reads no body is not cancelled): the
    // span ends then, named and described as any other.
    let started = Instant::now();
    let gave_up = app
        .client
        .get(format!("{}/debug/slow?ms=1500", app.address))
        .header("traceparent", traceparent(TRACE, PARENT, "01"))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let spans = collector.trace(TRACE).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span["name"], "GET /debug/slow", "{span}");
    assert_eq!(span["parent_span_id"], PARENT);
    assert_eq!(span["attributes"]["http.route"], "/debug/slow");
    assert_eq!(span["attributes"]["url.path"], "/debug/slow");
    assert_eq!(span["attributes"]["http.response.status_code"], 200);
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_spans_are_flushed_on_graceful_shutdown() {
    let collector = collector();
    // Exports every minute: the span can only arrive through the flush at shutdown.
    let mut vars = traced(&collector.endpoint, &[]);
    vars.push(("APP__TRACING__SCHEDULED_DELAY", "60s".to_owned()));
    let app = spawn_app_with(&vars).await;
    let res = app.get("/nope").await;
    let body: Value = res.json().await.unwrap();
    let trace_id = body["error"]["trace_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.spans().is_empty(), "sent before the stop");
    app.stop().await;
    let spans = collector.trace(&trace_id).await;
    assert_eq!(spans[0]["name"], "GET");
}

/// The binary as deployed: the standard `OTEL_*` variables configure it (the SDK reads none
/// itself: the configuration maps them, and the exporter's headers and compression variables
/// reach nothing), and SIGTERM's graceful stop exports the last span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_otel_variables_and_flushes_on_sigterm() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let collector = collector();
    let app = crate::helpers::spawn_process(&[
        ("APP__TRACING__ENABLED", "true".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone()),
        ("OTEL_SERVICE_NAME", "shop-edge".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=shop".to_owned(),
        ),
        // Every minute: the span can only arrive through the flush at the stop.
        ("APP__TRACING__SCHEDULED_DELAY", "60s".to_owned()),
        // Read by opentelemetry-otlp's exporter whatever it was given; ours reads nothing.
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-leaked=1".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-leaked-traces=1".to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
    ]);
    let res = reqwest::get(format!("{}/nope", app.address)).await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let body: Value = res.json().await.unwrap();
    let trace_id = body["error"]["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_id in {body}"))
        .to_owned();
    kill(Pid::from_raw(app.pid as i32), Signal::SIGTERM).unwrap();
    let spans = collector.trace(&trace_id).await;
    let resource = &spans[0]["resource"];
    assert_eq!(resource["service.name"], "shop-edge", "{resource}");
    assert_eq!(resource["service.namespace"], "shop", "{resource}");
    let metadata = spans[0]["metadata"]
        .as_object()
        .unwrap_or_else(|| panic!("no metadata in {}", spans[0]));
    assert!(
        metadata.contains_key("user-agent"),
        "the double records the call's metadata: {metadata:?}"
    );
    for leaked in ["x-leaked", "x-leaked-traces"] {
        assert!(!metadata.contains_key(leaked), "{leaked} in {metadata:?}");
    }
}

/// The `VmRSS` of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// The binary exporting to a collector that accepts connections and never answers: past the
/// queue every span is dropped (and the drop logged), so the process's memory stays flat
/// however many requests come. An unbounded queue would hold every span (each over 1 KiB with
/// its user agent): tens of MiB here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_keeps_the_binarys_memory_bounded() {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Kills the process however the test ends.
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cmd = crate::helpers::app_command();
    cmd.args(["http", "--env", "test"])
        .env("APP__SERVER__HTTP__ADDR", "127.0.0.1:0")
        .env("APP__SERVER__HTTP__ACCESS_LOG", "false")
        .env("APP__LOG__FORMAT", "json")
        .env("APP__LOG__LEVEL", "info")
        .env("APP__LOG__FILE__ENABLED", "false")
        .env("APP__TRACING__ENABLED", "true")
        .env(
            "APP__TRACING__ENDPOINT",
            format!("http://{}", silent.local_addr().unwrap()),
        )
        .env("APP__TRACING__QUEUE_SIZE", "256")
        .env("APP__TRACING__BATCH_SIZE", "64")
        .env("APP__TRACING__SCHEDULED_DELAY", "100ms")
        .stdout(Stdio::piped());
    let mut child = Killed(cmd.spawn().expect("spawn go_example"));
    let pid = child.0.id();
    let stdout = child.0.stdout.take().unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let seen = dropped.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("http server listening") {
                let record: Value = serde_json::from_str(&line).unwrap();
                let addr = record["addr"].as_str().unwrap().to_owned();
                let _ = port_tx.send(addr.rsplit(':').next().unwrap().to_owned());
            }
            // The SDK's first drop, through the log bridge.
            if line.contains("dropped a Span") {
                seen.store(true, Ordering::SeqCst);
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the process app listens");
    let url = format!("http://127.0.0.1:{port}/nope");
    let agent = "a".repeat(400);
    let load = async |requests: usize| {
        let client = reqwest::Client::new();
        let mut clients = Vec::new();
        for _ in 0..8 {
            let (client, url, agent) = (client.clone(), url.clone(), agent.clone());
            clients.push(tokio::spawn(async move {
                for _ in 0..requests / 8 {
                    let res = client
                        .get(&url)
                        .header("user-agent", &agent)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status().as_u16(), 404);
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
    };
    // Warm: the queue is full and dropping long before the first measure.
    load(2_000).await;
    let before = rss_kib(pid);
    load(18_000).await;
    let after = rss_kib(pid);
    assert!(
        after.saturating_sub(before) < 8 * 1024,
        "VmRSS {before} KiB after 2,000 requests, {after} KiB after 20,000"
    );
    eventually(Duration::from_secs(5), async || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the drop is logged (BatchSpanProcessor dropped a Span)"
    );
    drop(silent);
}

/// The gRPC app as another process, traced to `collector` (every 100 ms), serving over mTLS
/// with the certificates in `certs` and its data in `data`.
fn grpc_process(
    collector: &Collector,
    certs: &std::path::Path,
    data: &std::path::Path,
    extra: &[(&'static str, &str)],
) -> ProcessApp {
    let mut env = traced(&collector.endpoint, extra);
    env.extend([
        ("APP__SERVER__GRPC__TLS__DIR", certs.display().to_string()),
        ("APP__SERVER__GRPC__TLS__CLIENT_AUTH", "require".to_owned()),
        (
            "APP__SQLITE__PATH",
            data.join("grpc.db").display().to_string(),
        ),
        ("APP__CERTS__DIR", data.join("keys").display().to_string()),
    ]);
    spawn_served("grpc", &env)
}

/// A channel to `grpc` over mTLS with the client certificate in `certs`.
async fn grpc_channel(grpc: &ProcessApp, certs: &std::path::Path) -> tonic::transport::Channel {
    let tls = crate::grpc::tls(certs, true);
    tonic::transport::Channel::from_shared(grpc.address.replace("http:", "https:"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `span` is an answered `SayHello` (status OK), child of `parent`.
fn assert_say_hello_answered(span: &Value, parent: &Value) {
    assert_eq!(span["name"], "hello.HelloService/SayHello");
    assert_eq!(&span["parent_span_id"], parent, "{span}");
    assert_eq!(span["status_code"], STATUS_UNSET, "{span}");
    let attributes = &span["attributes"];
    assert_eq!(attributes["rpc.system"], "grpc");
    assert_eq!(attributes["rpc.service"], "hello.HelloService");
    assert_eq!(attributes["rpc.method"], "SayHello");
    assert_eq!(attributes["rpc.grpc.status_code"], 0);
}

/// The one span of `spans` of `service` and `kind`.
fn span_of<'a>(spans: &'a [Value], service: &str, kind: i64) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["resource"]["service.name"] == service && s["kind"] == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {service} span of kind {kind} in {spans:?}"
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_hello_is_one_trace_across_the_http_and_the_grpc_process() {
    let collector = collector();
    let certs = tempfile::tempdir().unwrap();
    goex_certs::ensure(certs.path(), 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let grpc = grpc_process(&collector, certs.path(), data.path(), &[]);
    let port = grpc.address.rsplit(':').next().unwrap().to_owned();
    let app = trusting_app(
        &collector,
        &[
            (
                "APP__GRPC_CLIENT__ADDR",
                &format!("https://127.0.0.1:{port}"),
            ),
            (
                "APP__GRPC_CLIENT__TLS__DIR",
                &certs.path().display().to_string(),
            ),
        ],
    )
    .await;
    let res = get_traced(&app, "/grpc/hello?id=5", traceparent(TRACE, PARENT, "01")).await;
    assert_eq!(res.status().as_u16(), 200);

    let spans = collector.trace_of(TRACE, 3).await;
    assert_eq!(spans.len(), 3, "{spans:?}");
    // The HTTP app's server span continues the caller's trace ...
    let server = span_of(&spans, "go_example-http", KIND_SERVER);
    assert_eq!(server["name"], "GET /grpc/hello");
    assert_eq!(server["parent_span_id"], PARENT);
    // ... its client span is the server span's child, one per try ...
    let client = span_of(&spans, "go_example-http", KIND_CLIENT);
    assert_say_hello_answered(client, &server["span_id"]);
    let attributes = &client["attributes"];
    assert_eq!(attributes["server.address"], "127.0.0.1");
    assert_eq!(attributes["server.port"], port.parse::<i64>().unwrap());
    // ... and the gRPC app, in the other process, continues it from the call's metadata.
    let called = span_of(&spans, "go_example-grpc", KIND_SERVER);
    assert_say_hello_answered(called, &client["span_id"]);
    assert_eq!(called["attributes"]["client.address"], "127.0.0.1");
    assert_eq!(called["resource"]["deployment.environment.name"], "test");

    // The gRPC app down: the client span records the failure, an error, with the envelope's
    // trace id.
    drop(grpc);
    let failed = "0af7651916cd43dd8448eb211c80319c";
    let res = get_traced(&app, "/grpc/hello", traceparent(failed, PARENT, "01")).await;
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["trace_id"], failed, "{body}");
    let spans = collector.trace_of(failed, 2).await;
    let client = span_of(&spans, "go_example-http", KIND_CLIENT);
    assert_eq!(client["status_code"], STATUS_ERROR, "{client}");
    assert_eq!(
        client["attributes"]["rpc.grpc.status_code"], 14,
        "UNAVAILABLE: {client}"
    );
    let server = span_of(&spans, "go_example-http", KIND_SERVER);
    assert_eq!(client["parent_span_id"], server["span_id"]);
    assert_eq!(server["status_code"], STATUS_ERROR, "{server}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_app_believes_a_traceparent_only_from_the_service_credentials() {
    use go_example::proto::hello::HelloRequest;
    use go_example::proto::hello::hello_service_client::HelloServiceClient;
    let collector = collector();
    let certs = tempfile::tempdir().unwrap();
    goex_certs::ensure(certs.path(), 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let grpc = grpc_process(&collector, certs.path(), data.path(), &[]);
    let channel = grpc_channel(&grpc, certs.path()).await;
    let mut client = HelloServiceClient::new(channel.clone());
    let call = |trace: &str, credentials: bool| {
        let mut request = tonic::Request::new(HelloRequest { id: 1 });
        let metadata = request.metadata_mut();
        metadata.insert(
            "traceparent",
            traceparent(trace, PARENT, "01").parse().unwrap(),
        );
        if credentials {
            metadata.insert("user", "root".parse().unwrap());
            metadata.insert("password", "root123".parse().unwrap());
        }
        request
    };
    // The service credentials: the caller's trace is continued.
    let service = "11111111111111111111111111111111";
    client.say_hello(call(service, true)).await.unwrap();
    let spans = collector.trace_of(service, 1).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0]["parent_span_id"], PARENT);

    // A health checker (no credentials): a span, in a trace of its own.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    });
    let anyone = "22222222222222222222222222222222";
    request.metadata_mut().insert(
        "traceparent",
        traceparent(anyone, PARENT, "01").parse().unwrap(),
    );
    health.check(request).await.unwrap();
    // No credentials at all: refused before any span.
    let refused = client.say_hello(call(anyone, false)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let own = eventually(Duration::from_secs(10), async || {
        collector
            .spans()
            .iter()
            .any(|s| s["name"] == "grpc.health.v1.Health/Check")
    })
    .await;
    assert!(own, "the health check's span: {:?}", collector.spans());
    let spans = collector.spans();
    let checks: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "grpc.health.v1.Health/Check")
        .collect();
    assert_eq!(checks.len(), 1, "{spans:?}");
    assert_ne!(checks[0]["trace_id"], anyone, "{spans:?}");
    assert_eq!(checks[0]["parent_span_id"], "", "a root span: {spans:?}");
    assert!(
        spans.iter().all(|s| s["trace_id"] != anyone),
        "nothing of the unbelieved trace: {spans:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_grpc_calls_records_carry_the_callers_request_id_and_the_calls_span() {
    use go_example::proto::user::GetUserRequest;
    use go_example::proto::user::user_service_client::UserServiceClient;
    let collector = collector();
    let certs = tempfile::tempdir().unwrap();
    goex_certs::ensure(certs.path(), 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    // At debug: a refused call's record ("call rejected") is written.
    let grpc = grpc_process(
        &collector,
        certs.path(),
        data.path(),
        &[("APP__LOG__LEVEL", "debug")],
    );
    let mut users = UserServiceClient::new(grpc_channel(&grpc, certs.path()).await);
    // As the HTTP app calls: the service credentials, its request's id and trace context.
    let trace = "33333333333333333333333333333333";
    let mut request = tonic::Request::new(GetUserRequest { id: 987_654 });
    let metadata = request.metadata_mut();
    metadata.insert(
        "traceparent",
        traceparent(trace, PARENT, "01").parse().unwrap(),
    );
    metadata.insert("x-request-id", "http-request-42".parse().unwrap());
    metadata.insert("user", "root".parse().unwrap());
    metadata.insert("password", "root123".parse().unwrap());
    let refused = users.get_user(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    // The id comes back with the answer.
    assert_eq!(
        refused.metadata().get("x-request-id").unwrap(),
        "http-request-42"
    );

    let spans = collector.trace_of(trace, 1).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0]["name"], "user.UserService/GetUser");
    let rejected = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["msg"] == "call rejected")
            .cloned()
            .collect()
    };
    eventually(Duration::from_secs(5), async || {
        !rejected(&grpc.records()).is_empty()
    })
    .await;
    let records = rejected(&grpc.records());
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["request_id"], "http-request-42", "{record}");
    assert_eq!(record["trace_id"], trace, "{record}");
    assert_eq!(record["span_id"], spans[0]["span_id"], "{record}");
    assert_eq!(record["method"], "user.UserService/GetUser", "{record}");
    assert_eq!(record["code"], 5, "{record}");
    assert!(
        record["error_code"].as_str().is_some_and(|c| !c.is_empty()),
        "the envelope code: {record}"
    );

    // Without the service credentials the caller's id is not believed: the call gets its own.
    let mut anyone =
        tonic_health::pb::health_client::HealthClient::new(grpc_channel(&grpc, certs.path()).await);
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: "made.Up".to_owned(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "chosen-by-anyone".parse().unwrap());
    let unknown = anyone.check(request).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let id = unknown
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_ne!(id, "chosen-by-anyone");
    assert!(!id.is_empty());
}

/// Seeds the user `username`, reads it with `GET /hello?id=` in the sampled trace `trace` (the
/// cache keeps nothing: the read reaches the stores), and returns its id and the trace's spans.
async fn hello_of_a_seeded_user(
    app: &TestApp,
    collector: &Collector,
    username: &str,
    trace: &str,
) -> (i64, Vec<Value>) {
    let id = crate::helpers::seed_user(app, username).await;
    let res = get_traced(
        app,
        &format!("/hello?id={id}"),
        traceparent(trace, PARENT, "01"),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    (id, collector.trace_of(trace, 2).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mysql_statement_of_a_sampled_request_is_a_child_span_without_values() {
    let server = crate::helpers::mysql_server_dsn().expect("MariaDB (scripts/services.sh)");
    let dsn = crate::helpers::fresh_mysql_database(&server).await;
    let collector = collector();
    let app = trusting_app(
        &collector,
        &[
            ("APP__DATABASE__DRIVER", "mysql"),
            ("APP__DATABASE__MIGRATE_ON_START", "true"),
            ("APP__MYSQL__DSN", &dsn),
            ("APP__CACHEKEYS__USERINFO__TTL", "1ms"),
        ],
    )
    .await;
    // Seeded outside any request: no span (a statement never starts a trace of its own).
    let (id, spans) = hello_of_a_seeded_user(&app, &collector, "traced01", TRACE).await;
    let server_span = span_of(&spans, "go_example-http", KIND_SERVER);
    let selects: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == KIND_CLIENT && s["name"] == "SELECT users")
        .collect();
    assert!(!selects.is_empty(), "{spans:?}");
    let select = selects[0];
    assert_eq!(select["parent_span_id"], server_span["span_id"], "{select}");
    let attributes = &select["attributes"];
    assert_eq!(attributes["db.system.name"], "mysql");
    assert_eq!(attributes["db.operation.name"], "SELECT");
    assert_eq!(attributes["db.collection.name"], "users");
    assert_eq!(attributes["server.address"], "127.0.0.1", "{select}");
    assert!(attributes["server.port"].as_i64().is_some(), "{select}");
    // Never the statement or a value: the user's id or name appears nowhere.
    let text = serde_json::to_string(&spans).unwrap();
    assert!(
        !text.contains("traced01") && !text.contains("binds"),
        "{text}"
    );

    // A sampled-out request's statements make no span.
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    let res = get_traced(
        &app,
        &format!("/hello?id={id}"),
        traceparent(unsampled, PARENT, "00"),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    // The sampled one again, so the export after the unsampled one is known to have run.
    let later = "6bf92f3577b34da6a3ce929d0e0e4736";
    get_traced(&app, "/hello", traceparent(later, PARENT, "01")).await;
    collector.trace_of(later, 1).await;
    assert!(
        collector.spans().iter().all(|s| s["trace_id"] != unsampled),
        "{:?}",
        collector.spans()
    );
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| s["parent_span_id"] != "" || s["kind"] == KIND_SERVER),
        "no statement span without a parent: {:?}",
        collector.spans()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_redis_command_of_a_sampled_request_is_a_child_span_named_by_the_command_alone() {
    let addr =
        crate::helpers::service_env("APP__REDIS__ADDRS__0").expect("Redis (scripts/services.sh)");
    let collector = collector();
    let mut vars = traced(
        &collector.endpoint,
        &[
            ("APP__TRACING__TRUST_INCOMING", "true"),
            ("APP__CACHEKEYS__USERINFO__TTL", "1ms"),
        ],
    );
    vars.extend(crate::helpers::redis_overrides("single", &addr));
    let app = spawn_app_with(&vars).await;
    let trace = "7bf92f3577b34da6a3ce929d0e0e4736";
    let (_, spans) = hello_of_a_seeded_user(&app, &collector, "redistraced", trace).await;
    let server_span = span_of(&spans, "go_example-http", KIND_SERVER);
    let commands: Vec<&Value> = spans
        .iter()
        .filter(|s| s["attributes"]["db.system.name"] == "redis")
        .collect();
    assert!(!commands.is_empty(), "{spans:?}");
    let (host, port) = addr.rsplit_once(':').unwrap();
    for command in commands {
        assert_eq!(command["kind"], KIND_CLIENT, "{command}");
        assert_eq!(
            command["parent_span_id"], server_span["span_id"],
            "{command}"
        );
        let name = command["name"].as_str().unwrap();
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()),
            "a command's name alone: {command}"
        );
        assert_eq!(command["attributes"]["db.operation.name"], name);
        assert_eq!(command["attributes"]["server.address"], host);
        assert_eq!(
            command["attributes"]["server.port"],
            port.parse::<i64>().unwrap()
        );
    }
    // No key or value: the user's name and the cache's key prefix appear nowhere.
    let text = serde_json::to_string(&spans).unwrap();
    assert!(
        !text.contains("redistraced") && !text.contains("userinfo"),
        "{text}"
    );
}

/// The spans received so far whose links include the span `span_id`, once `count` arrived
/// (within 10 s; fewer after that).
async fn linked_to(collector: &Collector, span_id: &str, count: usize) -> Vec<Value> {
    let linked = || -> Vec<Value> {
        collector
            .spans()
            .into_iter()
            .filter(|s| {
                s["links"]
                    .as_array()
                    .is_some_and(|links| links.iter().any(|l| l["span_id"] == span_id))
            })
            .collect()
    };
    eventually(Duration::from_secs(10), async || linked().len() >= count).await;
    linked()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_apps_upgrade_is_a_span_and_each_message_one_linked_to_it() {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let collector = collector();
    let socket = crate::socket::spawn_socket(&traced(
        &collector.endpoint,
        &[("APP__TRACING__TRUST_INCOMING", "true")],
    ))
    .await;
    let header = traceparent(TRACE, PARENT, "01");
    let mut ws = crate::socket::connect_with(&socket.url(), &[("traceparent", &header)])
        .await
        .expect("upgraded");
    // An echo, a refused request (a join without its room) and a binary echo.
    ws.send(Message::text("hello")).await.unwrap();
    crate::socket::next_data(&mut ws).await;
    ws.send(Message::text(r#"{"type":"join"}"#)).await.unwrap();
    let refused = crate::socket::next_json(&mut ws).await;
    assert_eq!(refused["type"], "error", "{refused}");
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    crate::socket::next_data(&mut ws).await;

    let upgrade = &collector.trace(TRACE).await[0];
    assert_eq!(upgrade["resource"]["service.name"], "go_example-socket");
    assert_eq!(upgrade["kind"], KIND_SERVER);
    assert_eq!(upgrade["name"], "GET /socket_server");
    assert_eq!(upgrade["parent_span_id"], PARENT);
    assert_eq!(upgrade["attributes"]["http.response.status_code"], 101);
    let upgrade_id = upgrade["span_id"].as_str().unwrap();

    let messages = linked_to(&collector, upgrade_id, 3).await;
    let names: Vec<&str> = messages
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["socket text", "socket text", "socket binary"],
        "{messages:?}"
    );
    for (message, (size, status)) in
        messages
            .iter()
            .zip([(5, STATUS_UNSET), (15, STATUS_ERROR), (3, STATUS_UNSET)])
    {
        // A trace of its own, linked to the upgrade (a long connection is not one trace).
        assert_ne!(message["trace_id"], TRACE, "{message}");
        assert_eq!(message["parent_span_id"], "", "{message}");
        assert_eq!(message["links"][0]["trace_id"], TRACE, "{message}");
        assert_eq!(message["kind"], KIND_SERVER, "{message}");
        assert_eq!(message["resource"]["service.name"], "go_example-socket");
        assert_eq!(
            message["attributes"]["websocket.message.size"], size,
            "{message}"
        );
        assert_eq!(message["status_code"], status, "{message}");
    }
    assert_eq!(
        messages[1]["attributes"]["error.type"], "10000",
        "{:?}",
        messages[1]
    );
    assert_eq!(messages[1]["attributes"]["websocket.message.type"], "text");
    assert_eq!(
        messages[2]["attributes"]["websocket.message.type"],
        "binary"
    );
    // Never the message itself.
    assert!(!serde_json::to_string(&messages).unwrap().contains("hello"));
    drop(ws);
    socket.shut_down().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imports_progress_pushes_are_spans_linked_to_the_request_that_started_it() {
    let collector = collector();
    // The HTTP app and the socket app share a database and keys, as two processes of one
    // deployment do.
    let shared = tempfile::tempdir().unwrap();
    let path = |name: &str| shared.path().join(name).display().to_string();
    let (db, certs) = (path("app.db"), path("certs"));
    let common = [
        ("APP__SQLITE__PATH", db.as_str()),
        ("APP__CERTS__DIR", certs.as_str()),
    ];
    let mut http = common.to_vec();
    http.extend([
        ("APP__EXCEL__ASYNC_ROWS", "50"),
        ("APP__EXCEL__IMPORT_BATCH_SIZE", "20"),
    ]);
    let app = trusting_app(&collector, &http).await;
    let mut socket = common.to_vec();
    socket.push(("APP__EXCEL__PROGRESS_POLL_INTERVAL", "100ms"));
    let socket = crate::socket::spawn_socket(&traced(&collector.endpoint, &socket)).await;
    let token = crate::excel_import::token(&app, "traceimport").await;
    let mut ws = crate::socket::connect_with(&socket.url(), &[("authorization", &token)])
        .await
        .expect("the socket app takes the HTTP app's token");

    let names: Vec<String> = (0..400).map(|i| format!("traced{i:03}")).collect();
    let rows: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str(), "2"]).collect();
    let book = crate::excel_import::workbook(&["用户名", "性别"], &rows);
    let part = reqwest::multipart::Part::bytes(book)
        .file_name("users.xlsx")
        .mime_str(crate::excel_import::XLSX)
        .unwrap();
    let res = app
        .client
        .post(format!("{}/excel/import", app.address))
        .header("Authorization", &token)
        .header("traceparent", traceparent(TRACE, PARENT, "01"))
        .multipart(reqwest::multipart::Form::new().part("uploadFile", part))
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert_eq!(status, 202, "{}", res.text().await.unwrap());
    // The pushes until the job's end.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let frame = crate::socket::next_json(&mut ws).await;
            if frame["type"] == "import" && frame["job"]["status"] != "running" {
                return;
            }
        }
    })
    .await
    .expect("the job's end is pushed");

    let request = span_of(
        &collector.trace(TRACE).await,
        "go_example-http",
        KIND_SERVER,
    )
    .clone();
    assert_eq!(request["name"], "POST /excel/import");
    let request_id = request["span_id"].as_str().unwrap();
    // The push of the job's end is exported with the next batch.
    eventually(Duration::from_secs(10), async || {
        let pushes = linked_to(&collector, request_id, 1).await;
        pushes
            .iter()
            .any(|p| p["attributes"]["import.status"] == "done")
    })
    .await;
    let pushes = linked_to(&collector, request_id, 1).await;
    assert!(!pushes.is_empty(), "{:?}", collector.spans());
    let last = pushes.last().unwrap();
    for push in &pushes {
        assert_eq!(push["name"], "import progress", "{push}");
        assert_eq!(push["kind"], KIND_PRODUCER, "{push}");
        assert_eq!(push["resource"]["service.name"], "go_example-socket");
        assert_eq!(push["links"][0]["trace_id"], TRACE, "{push}");
        assert_ne!(push["trace_id"], TRACE, "{push}");
        assert_eq!(push["attributes"]["import.delivered_to"], 1, "{push}");
    }
    assert_eq!(last["attributes"]["import.status"], "done", "{last}");
    assert_eq!(last["attributes"]["import.rows_read"], 400, "{last}");
    drop(ws);
    socket.shut_down().await.unwrap();
}

/// Sends `request` in the sampled trace `trace`; its status, and the trace's spans once `count`
/// arrived.
async fn traced_call(
    collector: &Collector,
    request: reqwest::RequestBuilder,
    trace: &str,
    count: usize,
) -> (u16, Vec<Value>) {
    let res = request
        .header("traceparent", traceparent(trace, PARENT, "01"))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        collector.trace_of(trace, count).await,
    )
}

/// The client spans of `spans` whose `attribute` is `value`, each checked to be a child of the
/// request's server span.
fn children_with<'a>(spans: &'a [Value], attribute: &str, value: &str) -> Vec<&'a Value> {
    let server = span_of(spans, "go_example-http", KIND_SERVER);
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["attributes"][attribute] == value)
        .collect();
    assert!(
        !children.is_empty(),
        "no {attribute}={value} span in {spans:?}"
    );
    for child in &children {
        assert_eq!(child["kind"], KIND_CLIENT, "{child}");
        assert_eq!(child["parent_span_id"], server["span_id"], "{child}");
    }
    children
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mongodb_operation_of_a_sampled_request_is_a_child_span_without_documents() {
    let addr =
        crate::helpers::service_env("APP__MONGODB__ADDR").expect("MongoDB (scripts/services.sh)");
    let database = crate::helpers::unique_name("go_example_t");
    let collector = collector();
    let app = trusting_app(
        &collector,
        &[
            ("APP__MONGODB__ENABLED", "true"),
            ("APP__MONGODB__ADDR", &addr),
            ("APP__MONGODB__DATABASE", &database),
            ("APP__CACHEKEYS__USERINFO__TTL", "1ms"),
        ],
    )
    .await;
    let trace = "8bf92f3577b34da6a3ce929d0e0e4736";
    let (_, spans) = hello_of_a_seeded_user(&app, &collector, "mongotraced", trace).await;
    let finds = children_with(&spans, "db.system.name", "mongodb");
    let find = finds[0];
    assert_eq!(find["name"], "find_one user_info", "{find}");
    assert_eq!(find["attributes"]["db.operation.name"], "find_one");
    assert_eq!(find["attributes"]["db.collection.name"], "user_info");
    assert_eq!(find["attributes"]["db.namespace"], database.as_str());
    // No filter or document: the user's name appears nowhere.
    assert!(
        !serde_json::to_string(&spans)
            .unwrap()
            .contains("mongotraced")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_jenkins_call_of_a_sampled_request_is_a_child_span_named_by_its_operation() {
    use crate::jenkins::{ADMIN, JenkinsDouble, TOKEN, jenkins_overrides, sign_in};
    let double = JenkinsDouble::start(&[]);
    let collector = collector();
    let mut vars = traced(
        &collector.endpoint,
        &[("APP__TRACING__TRUST_INCOMING", "true")],
    );
    vars.extend(jenkins_overrides(&double.url, TOKEN));
    let app = spawn_app_with(&vars).await;
    let admin = sign_in(&app, ADMIN).await;
    let trace = "9bf92f3577b34da6a3ce929d0e0e4736";
    let request = app
        .client
        .get(format!("{}/jenkins/index", app.address))
        .header("Authorization", &admin);
    let (status, spans) = traced_call(&collector, request, trace, 2).await;
    assert_eq!(status, 200);
    let calls = children_with(&spans, "server.address", "127.0.0.1");
    let port: i64 = double.url.rsplit(':').next().unwrap().parse().unwrap();
    for call in &calls {
        let operation = call["attributes"]["jenkins.operation"].as_str().unwrap();
        assert_eq!(call["name"], format!("jenkins {operation}"), "{call}");
        assert_eq!(call["attributes"]["server.port"], port, "{call}");
        assert_eq!(call["status_code"], STATUS_UNSET, "{call}");
    }
    // Never the credentials.
    let text = serde_json::to_string(&spans).unwrap();
    assert!(
        !text.contains(TOKEN) && !text.contains("goexample"),
        "{text}"
    );

    // A call Jenkins refuses is a failed span with the error's kind.
    let failing = "abf92f3577b34da6a3ce929d0e0e4736";
    let request = app
        .client
        .get(format!("{}/jenkins/job?name=no-such-job", app.address))
        .header("Authorization", &admin);
    let (status, spans) = traced_call(&collector, request, failing, 2).await;
    assert_eq!(status, 404, "{spans:?}");
    let failed = children_with(&spans, "server.address", "127.0.0.1");
    assert_eq!(failed[0]["status_code"], STATUS_ERROR, "{:?}", failed[0]);
    assert!(
        failed[0]["attributes"]["error.type"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_send_of_a_sampled_request_is_a_child_span_without_the_number_or_code() {
    use crate::sms::{SmsDouble, fresh_phone, sms_overrides};
    let double = SmsDouble::start();
    let collector = collector();
    let mut vars = traced(
        &collector.endpoint,
        &[("APP__TRACING__TRUST_INCOMING", "true")],
    );
    vars.extend(sms_overrides(&double));
    let app = spawn_app_with(&vars).await;
    let phone = fresh_phone();
    let trace = "bbf92f3577b34da6a3ce929d0e0e4736";
    let request = app
        .client
        .post(format!("{}/sms/send-code", app.address))
        .header("X-Forwarded-For", "203.0.113.7")
        .json(&serde_json::json!({ "phone": phone }));
    let (status, spans) = traced_call(&collector, request, trace, 2).await;
    assert_eq!(status, 200, "{spans:?}");
    let sends = children_with(&spans, "rpc.method", "SendSms");
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0]["name"], "alibaba_sms SendSms");
    assert_eq!(sends[0]["attributes"]["server.address"], "127.0.0.1");
    double.last_code(&phone).await;
    // What the span holds: never the number or the code.
    let mut keys: Vec<&str> = sends[0]["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "rpc.method",
            "rpc.service",
            "rpc.system",
            "server.address",
            "server.port"
        ]
    );
}

/// The exemplars of an OpenMetrics scrape, read by `prometheus_client`'s OpenMetrics parser
/// (which refuses what is not OpenMetrics): sample name, its labels, the exemplar's labels.
fn exemplars_of(text: &str) -> Vec<Value> {
    const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        if s.exemplar:
            out.append({"name": s.name, "labels": s.labels, "exemplar": s.exemplar.labels,
                        "value": s.exemplar.value})
print(json.dumps(out))
"#;
    crate::metrics::parse_with(PARSE, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_requests_ids_are_its_latency_buckets_exemplar_in_openmetrics() {
    let collector = collector();
    let app = trusting_app(&collector, &[]).await;
    let unsampled = "cbf92f3577b34da6a3ce929d0e0e4736";
    get_traced(&app, "/hello", traceparent(unsampled, PARENT, "00")).await;
    let res = get_traced(&app, "/hello", traceparent(TRACE, PARENT, "01")).await;
    assert_eq!(res.status().as_u16(), 200);
    let server = span_of(
        &collector.trace(TRACE).await,
        "go_example-http",
        KIND_SERVER,
    )
    .clone();

    let port = app.metrics_port.expect("metrics on");
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let exemplars = exemplars_of(&res.text().await.unwrap());
    assert_eq!(
        exemplars.len(),
        1,
        "only the sampled request: {exemplars:?}"
    );
    let exemplar = &exemplars[0];
    assert_eq!(
        exemplar["name"],
        "go_example_http_request_duration_seconds_bucket"
    );
    assert_eq!(exemplar["labels"]["route"], "/hello");
    assert_eq!(exemplar["exemplar"]["trace_id"], TRACE);
    assert_eq!(exemplar["exemplar"]["span_id"], server["span_id"]);
    let seconds = exemplar["value"].as_f64().unwrap();
    let le = exemplar["labels"]["le"].as_str().unwrap();
    assert!(
        le == "+Inf" || seconds <= le.parse::<f64>().unwrap(),
        "{exemplar}"
    );

    // The Prometheus text format is unchanged: no exemplar, no `# EOF`.
    let (content_type, text) = crate::helpers::scrape(&app).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains(TRACE) && !text.contains("# EOF"));
}

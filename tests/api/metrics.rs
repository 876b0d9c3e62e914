//! `GET /metrics` on its own listener: HTTP requests by route template and status, latency,
//! in-flight, login outcomes, throttle hits, cache lookups and process metrics, in a text
//! format a real Prometheus parser (the `prometheus-client` package from PyPI) reads.

use std::collections::HashMap;
use std::process::Command;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

async fn scrape(app: &TestApp) -> (String, String) {
    let port = app
        .metrics_port
        .expect("the metrics listener is on in the test profile");
    let res = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, res.text().await.unwrap())
}

/// A venv with `prometheus-client`, made once per machine (like the MongoDB server's).
fn parser_python() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    let venv = std::path::Path::new(&home).join(".cache/go_example-rs/prometheus-venv");
    let python = venv.join("bin/python");
    let ready = |p: &std::path::Path| {
        Command::new(p)
            .args(["-c", "import prometheus_client"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(made.success(), "python3 -m venv {venv:?}");
        let installed = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "prometheus-client",
            ])
            .status()
            .expect("pip install prometheus-client");
        assert!(installed.success(), "pip install prometheus-client");
    }
    python
}

/// Parses `text` with `prometheus_client.parser` and returns `name{labels}` → value.
fn parse_with_prometheus_client(text: &str) -> HashMap<String, f64> {
    const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = Command::new(parser_python())
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the parser");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused:\n{text}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_status_and_parse_with_prometheus_client() {
    let app = spawn_app_with(&[("APP__AUTH__MAX_FAILURES", "2".to_owned())]).await;
    for _ in 0..3 {
        assert_eq!(app.get("/hello").await.status().as_u16(), 200);
    }
    assert_eq!(app.get("/hello?id=abc").await.status().as_u16(), 400);
    assert_eq!(app.get("/no/such/path/42").await.status().as_u16(), 404);
    for expected in [401, 401, 429] {
        let res = app
            .client
            .post(format!("{}/auth/login", app.address))
            .json(&json!({"username": "nobody01", "password": "wrong123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), expected);
    }

    let (content_type, text) = scrape(&app).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let samples = parse_with_prometheus_client(&text);
    let value = |key: &str| {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
    };
    assert_eq!(
        value(r#"go_example_http_requests_total{method="GET",route="/hello",status="200"}"#),
        3.0
    );
    assert_eq!(
        value(r#"go_example_http_requests_total{method="GET",route="/hello",status="400"}"#),
        1.0
    );
    assert_eq!(
        value(r#"go_example_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0,
        "raw paths never become labels"
    );
    assert!(!text.contains("/no/such/path"), "{text}");
    assert_eq!(
        value(r#"go_example_http_request_duration_seconds_count{method="GET",route="/hello"}"#),
        4.0
    );
    assert_eq!(
        value(r#"go_example_auth_logins_total{outcome="failure"}"#),
        2.0
    );
    assert_eq!(
        value(r#"go_example_auth_logins_total{outcome="throttled"}"#),
        1.0
    );
    assert_eq!(
        value(r#"go_example_auth_throttled_total{throttle="login"}"#),
        1.0
    );
    // The scrape itself is not an application request; nothing else is in flight.
    assert_eq!(value("go_example_http_requests_in_flight{}"), 0.0);
    assert!(value("go_example_process_resident_memory_bytes{}") > 1e6);
    assert!(value("go_example_process_open_fds{}") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let app = spawn_app_with(&[("APP__METRICS__ENABLED", "false".to_owned())]).await;
    assert!(app.metrics_port.is_none());
    assert_eq!(app.get("/hello").await.status().as_u16(), 200);
}

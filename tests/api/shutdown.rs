//! Graceful shutdown of the real binary: SIGTERM or SIGINT during a slow request lets it finish,
//! refuses new connections, and the process exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::app_command;

struct Running {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Starts `go_example http --env test` on a free port and waits for its listening line.
fn start(extra: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = app_command();
    cmd.args(["http", "--env", "test"])
        .env("APP__SERVER__HTTP__ADDR", "127.0.0.1:0")
        .env("APP__SQLITE__PATH", dir.path().join("app.db"))
        .env("APP__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn go_example");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("http server listening") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let addr = v["addr"].as_str().unwrap().to_owned();
                let _ = tx.send(addr.rsplit(':').next().unwrap().parse::<u16>().unwrap());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server reports its port");
    Running {
        child,
        port,
        _dir: dir,
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

async fn drains_in_flight_request_on(signal: Signal) {
    let mut app = start(&[]);
    let base = format!("http://127.0.0.1:{}", app.port);
    let client = reqwest::Client::new();
    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/debug/slow?ms=1500");
        async move { client.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(Pid::from_raw(app.child.id() as i32), signal).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // New connections are refused while the slow request drains.
    let fresh = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(fresh.is_err(), "accepting stopped after {signal}");

    let res = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["slept_ms"], 1500);

    let code =
        tokio::task::spawn_blocking(move || wait_exit(&mut app.child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "clean exit after {signal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_slow_request_finish_and_exits_zero() {
    drains_in_flight_request_on(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_too() {
    drains_in_flight_request_on(Signal::SIGINT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_longer_than_the_shutdown_timeout_are_cut_and_the_process_still_exits() {
    let mut app = start(&[("APP__SERVER__HTTP__SHUTDOWN_TIMEOUT", "1s")]);
    let url = format!("http://127.0.0.1:{}/debug/slow?ms=20000", app.port);
    let slow = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    kill(Pid::from_raw(app.child.id() as i32), Signal::SIGTERM).unwrap();
    let code =
        tokio::task::spawn_blocking(move || wait_exit(&mut app.child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by shutdown_timeout"
    );
    assert!(
        slow.await.unwrap().is_err(),
        "the over-long request was cut"
    );
}

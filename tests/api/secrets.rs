//! Secrets never reach the logs: DSNs and passwords of dependencies that fail, at debug level.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::{binary, manifest_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_dependencies_do_not_leak_their_passwords_into_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary())
        .args(["http", "--env", "test"])
        .current_dir(manifest_dir())
        .env("APP__SERVER__HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("APP__LOG__LEVEL", "trace")
        .env("APP__LOG__FORMAT", "json")
        .env("APP__SQLITE__PATH", dir.path().join("app.db"))
        .env("APP__DATABASE__DRIVER", "mysql")
        .env("APP__DATABASE__MIGRATE_ON_START", "false")
        .env(
            "APP__MYSQL__DSN",
            "mysql://root:mysql-s3cret@127.0.0.1:1/go_example",
        )
        .env("APP__MYSQL__IS_DEBUG", "true")
        .env("APP__MYSQL__CONNECT_TIMEOUT", "300ms")
        .env(
            "APP__MYSQL__REPLICAS__0__DSN",
            "mysql://app:replica-s3cret@127.0.0.1:1/go_example",
        )
        .env("APP__REDIS__ENABLED", "true")
        .env("APP__REDIS__MODE", "single")
        .env("APP__REDIS__ADDRS__0", "127.0.0.1:1")
        .env("APP__REDIS__PASSWORD", "redis-s3cret")
        .env("APP__MONGODB__ENABLED", "true")
        .env(
            "APP__MONGODB__ADDR",
            "mongodb://u:mongo-s3cret@127.0.0.1:1/?directConnection=true",
        )
        .env("APP__MONGODB__CONNECT_TIMEOUT", "300ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn go_example");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut answered = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "the app starts although every dependency is down");
    for path in ["/hello?id=1", "/readyz", "/hello?id=2"] {
        let res = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 503, "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("s3cret"), "{body}");
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (status, out)
    })
    .await
    .unwrap();
    let (status, logs) = status;
    assert!(status.success());
    assert!(
        logs.contains("request failed"),
        "the failures were logged: {logs}"
    );
    for secret in [
        "mysql-s3cret",
        "replica-s3cret",
        "redis-s3cret",
        "mongo-s3cret",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

//! `GET /metrics` on its own listener: HTTP requests by route template and status, latency,
//! in-flight, login outcomes, throttle hits, cache lookups, process metrics, database pools per
//! node (SQLite, and a real MariaDB primary with its replica), Redis commands and MongoDB
//! operations against the real servers of `scripts/services.sh up` and against closed ports, in
//! a text format a real Prometheus parser (the `prometheus-client` package from PyPI) reads.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use go_example::repository::client::DatabaseClient;
use go_example::repository::mongodb::user::{UserDocument, UserDocumentRepository};
use go_example::repository::mysql::user::UserRepository;
use go_example::repository::redis::token::TokenRepository;
use go_example::repository::redis::value::ValueRepository;
use goex_database::DbPool;
use serde_json::json;
use shaku::HasComponent;

use crate::helpers::{
    TestApp, eventually, free_port, fresh_replicated_database, quick_value, redis_overrides,
    scrape, seed_user, service_env, spawn_app_with, unique_name,
};

/// A venv with `prometheus-client`, made once per machine (`scripts/python-venv.sh`).
fn parser_python() -> std::path::PathBuf {
    crate::helpers::python_venv("prometheus", &["prometheus-client"])
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
    parse_with(PARSE, text)
}

/// Runs the Python `script` with `prometheus-client` on `text` (its standard input) and reads
/// the JSON it prints; fails with the parser's complaint when it refuses the text.
pub(crate) fn parse_with<T: serde::de::DeserializeOwned>(script: &str, text: &str) -> T {
    use std::io::Write;
    let mut child = Command::new(parser_python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
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
        "the parser refused ({}):\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The scrape parsed by `prometheus-client`, and a lookup that fails naming the missing series.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let (_, text) = scrape(app).await;
        let samples = parse_with_prometheus_client(&text);
        Self { text, samples }
    }

    /// The value of `series` (`name{labels sorted by name}`).
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing in\n{}", self.text))
    }
}

fn rand_id() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (nanos % 1_000_000_000) as i64 + 1
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

    // The embedded SQLite pool: one node, `primary`, read at the scrape.
    let pool = |name: &str| value(&format!(r#"{name}{{backend="sqlite",node="primary"}}"#));
    assert_eq!(
        pool("go_example_database_pool_max_connections"),
        4.0,
        "sqlite.max_open of the test profile"
    );
    assert!(pool("go_example_database_pool_connections") >= 1.0);
    assert_eq!(pool("go_example_database_pool_connections_in_use"), 0.0);
    assert_eq!(pool("go_example_database_pool_waiting"), 0.0);
    // The start-up ping and the two failed logins' user lookups at least.
    assert!(pool("go_example_database_pool_acquire_duration_seconds_count") >= 3.0);
    for kind in ["timeout", "connect", "closed"] {
        assert_eq!(
            value(&format!(
                r#"go_example_database_pool_acquire_errors_total{{backend="sqlite",kind="{kind}",node="primary"}}"#
            )),
            0.0
        );
    }
    // The in-process store and no MongoDB: no client series at all.
    assert!(!text.contains("go_example_redis_command"), "{text}");
    assert!(!text.contains("go_example_mongodb_operation"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_gauges_show_checkouts_and_waiters_and_timeouts_are_counted() {
    let app = spawn_app_with(&[
        ("APP__SQLITE__MAX_OPEN", "1".to_owned()),
        // Long enough to see the waiter on a loaded machine.
        ("APP__DATABASE__ACQUIRE_TIMEOUT", "3s".to_owned()),
        // Every /hello?id= reaches the database.
        ("APP__CACHEKEYS__USERINFO__TTL", "1ms".to_owned()),
    ])
    .await;
    let series = |name: &str| format!(r#"{name}{{backend="sqlite",node="primary"}}"#);
    let db: &dyn DatabaseClient = app.module.resolve_ref();
    let DbPool::Sqlite(pool) = db.database().pool() else {
        panic!("the embedded default is SQLite")
    };
    // The only connection, held by the test.
    let held = pool.get().await.unwrap();
    let before = Scrape::of(&app).await;
    assert_eq!(
        before.value(&series("go_example_database_pool_connections_in_use")),
        1.0
    );
    assert_eq!(
        before.value(&series("go_example_database_pool_max_connections")),
        1.0
    );

    let request = tokio::spawn({
        let (client, url) = (app.client.clone(), format!("{}/hello?id=1", app.address));
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    });
    let waiting = series("go_example_database_pool_waiting");
    assert!(
        eventually(Duration::from_millis(2500), async || {
            quick_value(&scrape(&app).await.1, &waiting) == Some(1.0)
        })
        .await,
        "the request waits for the held connection"
    );
    assert_eq!(request.await.unwrap(), 503, "acquire_timeout passed");
    drop(held);

    let after = Scrape::of(&app).await;
    let timeouts = r#"go_example_database_pool_acquire_errors_total{backend="sqlite",kind="timeout",node="primary"}"#;
    assert_eq!(before.value(timeouts), 0.0);
    assert_eq!(after.value(timeouts), 1.0);
    assert_eq!(after.value(&waiting), 0.0);
    assert_eq!(
        after.value(&series("go_example_database_pool_connections_in_use")),
        0.0
    );
    // The failed checkout is observed too: it took the whole acquire_timeout.
    let slow = |s: &Scrape| {
        let count = s.value(&series(
            "go_example_database_pool_acquire_duration_seconds_count",
        ));
        let fast = s.value(
            r#"go_example_database_pool_acquire_duration_seconds_bucket{backend="sqlite",le="1",node="primary"}"#,
        );
        count - fast
    };
    assert_eq!(slow(&after) - slow(&before), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_pool_gauges_cover_the_primary_and_the_replica() {
    // Replica tests may stop the replica for a few seconds meanwhile (they run apart from each
    // other, not from these): a longer wait.
    let Some((primary_dsn, replica_dsn)) = fresh_replicated_database(Duration::from_secs(20)).await
    else {
        return;
    };
    let app = spawn_app_with(&[
        ("APP__DATABASE__DRIVER", "mysql".into()),
        ("APP__DATABASE__MIGRATE_ON_START", "true".into()),
        ("APP__MYSQL__DSN", primary_dsn),
        ("APP__MYSQL__REPLICAS__0__DSN", replica_dsn.clone()),
        ("APP__MYSQL__MAX_OPEN", "7".into()),
        ("APP__MYSQL__HEALTH_CHECK_INTERVAL", "200ms".into()),
        ("APP__MYSQL__CONNECT_TIMEOUT", "1s".into()),
        ("APP__MYSQL__READ_YOUR_WRITES", "0s".into()),
    ])
    .await;
    let replica_node = goex_database::node_label(&replica_dsn);
    let labels = |node: &str| format!(r#"{{backend="mysql",node="{node}"}}"#);
    let id = seed_user(&app, "metrics01").await;
    let users: &dyn UserRepository = app.module.resolve_ref();
    let replica_checkouts = format!(
        "go_example_database_pool_acquire_duration_seconds_count{}",
        labels(&replica_node)
    );
    assert!(
        eventually(Duration::from_secs(20), async || {
            // A read goes to the replica once the row has replicated and the replica is healthy.
            let found = users.find(id).await.ok().flatten().is_some();
            found && quick_value(&scrape(&app).await.1, &replica_checkouts) >= Some(1.0)
        })
        .await,
        "reads are checked out of the replica's pool"
    );

    let db: &dyn DatabaseClient = app.module.resolve_ref();
    let DbPool::Mysql(pool) = db.database().pool() else {
        panic!("mysql")
    };
    let held = pool.get().await.unwrap();
    // A replica test may stop the replica meanwhile, and the health check then empties its pool:
    // the test holds one replica connection too, taken once the replica is back.
    let mut held_replica = None;
    assert!(
        eventually(Duration::from_secs(20), async || {
            if let Some(replica) = db.database().pick_replica() {
                held_replica = replica.pool().get().await.ok();
            }
            held_replica.is_some()
        })
        .await,
        "a replica connection"
    );
    let s = Scrape::of(&app).await;
    drop((held, held_replica));
    for node in ["primary", replica_node.as_str()] {
        let value = |name: &str| s.value(&format!("{name}{}", labels(node)));
        assert_eq!(
            value("go_example_database_pool_max_connections"),
            7.0,
            "{node}"
        );
        assert!(
            value("go_example_database_pool_connections") >= 1.0,
            "{node}"
        );
        assert_eq!(value("go_example_database_pool_waiting"), 0.0, "{node}");
        assert!(
            value("go_example_database_pool_acquire_duration_seconds_count") >= 1.0,
            "{node}"
        );
    }
    let primary = |name: &str| s.value(&format!("{name}{}", labels("primary")));
    assert_eq!(
        primary("go_example_database_pool_connections_in_use"),
        1.0,
        "the connection the test holds"
    );
    // The start-up ping and the seeding insert went to the primary.
    assert!(primary("go_example_database_pool_acquire_duration_seconds_count") >= 2.0);
    assert!(
        !s.text
            .contains("go_example_database_pool_connections{backend=\"sqlite\""),
        "{}",
        s.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_commands_are_timed_and_refused_ones_counted() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    let mut overrides = redis_overrides("single", &addr);
    overrides.push((
        "APP__CACHEKEYS__HELLOVALUE__KEY",
        unique_name("it:metrics:hello:"),
    ));
    let app = spawn_app_with(&overrides).await;
    for _ in 0..2 {
        assert_eq!(app.get("/hello").await.status().as_u16(), 200);
    }
    let res = app
        .client
        .post(format!("{}/auth/login", app.address))
        .json(&json!({"username": "nobody02", "password": "wrong123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // A string where the login record (a hash) is looked for: Redis refuses HGETALL (WRONGTYPE).
    let user_id = rand_id();
    let values: &dyn ValueRepository = app.module.resolve_ref();
    values
        .set(
            &format!("auth:token:{{{user_id}}}"),
            "not a hash",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let tokens: &dyn TokenRepository = app.module.resolve_ref();
    assert!(tokens.get(user_id).await.is_err(), "WRONGTYPE");

    let s = Scrape::of(&app).await;
    let count = |command: &str| {
        s.value(&format!(
            r#"go_example_redis_command_duration_seconds_count{{command="{command}"}}"#
        ))
    };
    let errors = |command: &str, kind: &str| {
        s.value(&format!(
            r#"go_example_redis_command_errors_total{{command="{command}",kind="{kind}"}}"#
        ))
    };
    assert_eq!(count("get"), 2.0, "one GET per /hello");
    assert_eq!(
        s.value(r#"go_example_redis_command_duration_seconds_bucket{command="get",le="+Inf"}"#),
        2.0
    );
    assert!(
        count("incr") >= 1.0,
        "the login reserved its throttle slots"
    );
    assert_eq!(count("set"), 1.0);
    assert_eq!(count("hgetall"), 1.0);
    assert_eq!(errors("hgetall", "command"), 1.0);
    assert_eq!(errors("hgetall", "unavailable"), 0.0);
    assert_eq!(errors("get", "command"), 0.0);
    assert_eq!(errors("get", "unavailable"), 0.0);
    // Commands not sent yet are exported at 0, never keys as labels.
    assert_eq!(count("hash_cas"), 0.0);
    assert!(!s.text.contains("it:metrics"), "{}", s.text);
    assert!(!s.text.contains("auth:token"), "{}", s.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_is_down_counts_unavailable_commands() {
    let mut overrides = redis_overrides("single", &format!("127.0.0.1:{}", free_port()));
    overrides.push(("APP__REDIS__CONNECT_TIMEOUT", "300ms".into()));
    overrides.push(("APP__REDIS__COMMAND_TIMEOUT", "500ms".into()));
    let app = spawn_app_with(&overrides).await;
    let errors = r#"go_example_redis_command_errors_total{command="get",kind="unavailable"}"#;
    assert_eq!(Scrape::of(&app).await.value(errors), 0.0);
    assert_eq!(app.get("/hello").await.status().as_u16(), 503);
    assert_eq!(app.get("/readyz").await.status().as_u16(), 503);
    let s = Scrape::of(&app).await;
    assert_eq!(s.value(errors), 1.0);
    assert_eq!(
        s.value(r#"go_example_redis_command_duration_seconds_count{command="get"}"#),
        1.0
    );
    assert_eq!(
        s.value(r#"go_example_redis_command_errors_total{command="ping",kind="unavailable"}"#),
        1.0,
        "the readiness ping"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_operations_are_timed_by_operation() {
    let Some(addr) = service_env("APP__MONGODB__ADDR") else {
        return;
    };
    let app = spawn_app_with(&[
        ("APP__MONGODB__ENABLED", "true".into()),
        ("APP__MONGODB__ADDR", addr),
        ("APP__MONGODB__DATABASE", unique_name("go_example_t")),
    ])
    .await;
    let id = seed_user(&app, "mongometrics").await;
    let docs: &dyn UserDocumentRepository = app.module.resolve_ref();
    docs.set_user_info(&UserDocument {
        user_id: id,
        username: "mongometrics".into(),
        gender: 1,
        bio: "counted".into(),
    })
    .await
    .unwrap();
    let (status, body) = app.get_json(&format!("/hello?id={id}")).await;
    assert_eq!(
        (status, body["document"]["bio"].as_str()),
        (200, Some("counted"))
    );
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);

    let s = Scrape::of(&app).await;
    let count = |op: &str| {
        s.value(&format!(
            r#"go_example_mongodb_operation_duration_seconds_count{{operation="{op}"}}"#
        ))
    };
    assert_eq!(count("create_index"), 1.0, "the start-up index");
    assert_eq!(count("replace_one"), 1.0);
    assert_eq!(count("find_one"), 1.0);
    assert_eq!(count("ping"), 1.0);
    for op in ["create_index", "replace_one", "find_one", "ping"] {
        for kind in ["unavailable", "duplicate", "operation"] {
            assert_eq!(
                s.value(&format!(
                    r#"go_example_mongodb_operation_errors_total{{kind="{kind}",operation="{op}"}}"#
                )),
                0.0,
                "{op} {kind}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mongodb_that_is_down_counts_unavailable_operations() {
    let app = spawn_app_with(&[
        ("APP__MONGODB__ENABLED", "true".into()),
        (
            "APP__MONGODB__ADDR",
            format!("mongodb://127.0.0.1:{}/?directConnection=true", free_port()),
        ),
        ("APP__MONGODB__CONNECT_TIMEOUT", "300ms".into()),
        ("APP__MONGODB__COMMAND_TIMEOUT", "800ms".into()),
    ])
    .await;
    assert_eq!(app.get("/hello?id=3").await.status().as_u16(), 503);
    let s = Scrape::of(&app).await;
    let errors = |op: &str| {
        s.value(&format!(
            r#"go_example_mongodb_operation_errors_total{{kind="unavailable",operation="{op}"}}"#
        ))
    };
    assert_eq!(errors("find_one"), 1.0);
    assert_eq!(errors("create_index"), 1.0, "the start-up index");
    assert_eq!(errors("replace_one"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let app = spawn_app_with(&[("APP__METRICS__ENABLED", "false".to_owned())]).await;
    assert!(app.metrics_port.is_none());
    assert_eq!(app.get("/hello").await.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_stopped_through_its_handle_stops_its_metrics_listener() {
    let app = spawn_app_with(&[]).await;
    let port = app.metrics_port.expect("metrics on in the test profile");
    let (text, _) = scrape(&app).await;
    assert!(!text.is_empty(), "serving before the stop");
    app.stop().await;
    // The side listener is stopped after the server ended: its port refuses within 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics listener on {port} still accepts after the app stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

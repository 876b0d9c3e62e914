//! The single sign-on check of protected requests is answered from a per-process cache of login
//! records (`auth.login_cache_*`, docs/auth.md). Whatever one process does to a login (log out,
//! sign in again, reuse a refresh token), every other process sharing the store follows: on its
//! very next request on SQLite and MySQL, within `auth.login_cache_ttl` (≤ 1 s) on Redis. Each
//! test pairs an app in this process with `go_example http` in a process of its own.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    ProcessApp, TestApp, assert_envelope, fresh_mysql_database, mysql_server_dsn, quick_value,
    redis_overrides, scrape, service_env, spawn_app_with, spawn_process, tokens,
};

/// Either app: the in-process one or the one in its own process.
trait Peer {
    fn base(&self) -> &str;
}

impl Peer for TestApp {
    fn base(&self) -> &str {
        &self.address
    }
}

impl Peer for ProcessApp {
    fn base(&self) -> &str {
        &self.address
    }
}

async fn call(
    app: &impl Peer,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", app.base());
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn home(app: &impl Peer, access: &str) -> (u16, Value) {
    call(app, "GET", "/home", Some(access), None).await
}

async fn register(app: &impl Peer, name: &str) {
    let form = json!({ "username": name, "password": "abc123" });
    let (status, body) = call(app, "POST", "/auth/register", None, Some(form)).await;
    assert_eq!(status, 201, "{body}");
}

/// Signs `name` in through `app`: the access and refresh tokens.
async fn sign_in(app: &impl Peer, name: &str) -> (String, String) {
    let form = json!({ "username": name, "password": "abc123" });
    let (status, body) = call(app, "POST", "/auth/login", None, Some(form)).await;
    assert_eq!(status, 200, "{body}");
    tokens(&body)
}

async fn log_out(app: &impl Peer, access: &str) {
    let (status, body) = call(app, "POST", "/auth/logout", Some(access), None).await;
    assert_eq!(status, 200, "{body}");
}

/// `cache_requests_total{cache="logins",result="hit"}` of the in-process app.
async fn login_cache_hits(app: &TestApp) -> f64 {
    let (_, text) = scrape(app).await;
    quick_value(
        &text,
        r#"go_example_cache_requests_total{cache="logins",result="hit"}"#,
    )
    .unwrap_or(0.0)
}

/// Two processes on one store (`env`, shared keys): each change made through one is seen by
/// the other on its next request. Returns the in-process app's cache hits, so the caller can
/// tell that the check was answered from the cache at all.
async fn every_change_is_seen_on_the_next_request(mut env: Vec<(&'static str, String)>) -> f64 {
    let keys = tempfile::tempdir().unwrap();
    env.push(("APP__CERTS__DIR", keys.path().display().to_string()));
    let here = spawn_app_with(&env).await;
    let there = spawn_process(&env);
    let name = "ssoproc01".to_owned();
    register(&here, &name).await;

    // A login made here, checked there (twice: the second from its cache).
    let (first, _) = sign_in(&here, &name).await;
    for _ in 0..2 {
        assert_eq!(home(&there, &first).await.0, 200);
        assert_eq!(home(&here, &first).await.0, 200);
    }
    // A newer login here: the first is refused there at once, the newer let through.
    let (second, _) = sign_in(&here, &name).await;
    let (status, body) = home(&there, &first).await;
    assert_eq!(status, 401);
    assert_envelope(&body, "20001");
    assert_eq!(home(&there, &second).await.0, 200);
    // A logout here ends it there on the next request.
    log_out(&here, &second).await;
    assert_eq!(home(&there, &second).await.0, 401);

    // A refresh token reused here (a stolen copy) ends the login there.
    let (third, refresh) = sign_in(&here, &name).await;
    assert_eq!(home(&there, &third).await.0, 200);
    let (status, body) = call(&here, "GET", "/auth/refresh_token", Some(&refresh), None).await;
    assert_eq!(status, 200);
    let (fourth, _) = tokens(&body);
    assert_eq!(home(&there, &fourth).await.0, 200);
    let (status, _) = call(&here, "GET", "/auth/refresh_token", Some(&refresh), None).await;
    assert_eq!(status, 401, "the spent refresh token");
    assert_eq!(home(&there, &fourth).await.0, 401);

    // The other way round: a login and a logout made there, seen here.
    let (fifth, _) = sign_in(&there, &name).await;
    assert_eq!(home(&here, &fifth).await.0, 200);
    assert_eq!(home(&here, &fifth).await.0, 200);
    log_out(&there, &fifth).await;
    assert_eq!(home(&here, &fifth).await.0, 401);
    login_cache_hits(&here).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_process_sees_a_change_on_its_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db").display().to_string();
    let hits = every_change_is_seen_on_the_next_request(vec![("APP__SQLITE__PATH", db)]).await;
    assert!(
        hits >= 2.0,
        "repeated checks come from the cache ({hits} hits)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_every_process_sees_a_change_on_its_next_request() {
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let dsn = fresh_mysql_database(&server).await;
    let hits = every_change_is_seen_on_the_next_request(vec![
        ("APP__DATABASE__DRIVER", "mysql".to_owned()),
        ("APP__DATABASE__MIGRATE_ON_START", "true".to_owned()),
        ("APP__MYSQL__DSN", dsn),
    ])
    .await;
    assert_eq!(hits, 0.0, "MySQL's login records are read on every request");
}

/// Redis says nothing when another process changes a record: a logout made elsewhere is seen
/// within `auth.login_cache_ttl` (1 s here, its longest), while this process's own changes and
/// a newer login made elsewhere are seen at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_logout_elsewhere_is_seen_within_the_cache_ttl() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let mut env = redis_overrides("single", &addr);
    env.push(("APP__CERTS__DIR", keys.path().display().to_string()));
    env.push(("APP__AUTH__LOGIN_CACHE_TTL", "1s".to_owned()));
    // The users, in one SQLite file for both; the login records in Redis.
    env.push((
        "APP__SQLITE__PATH",
        keys.path().join("app.db").display().to_string(),
    ));
    let here = spawn_app_with(&env).await;
    let there = spawn_process(&env);
    let name = format!("ssor{:06}", std::process::id() % 1_000_000);
    register(&here, &name).await;

    let (first, _) = sign_in(&there, &name).await;
    assert_eq!(home(&here, &first).await.0, 200);
    assert_eq!(home(&here, &first).await.0, 200);
    assert!(
        login_cache_hits(&here).await >= 1.0,
        "the second check is answered in process"
    );

    // A newer login elsewhere is let through here at once, never refused on an old record.
    let (second, _) = sign_in(&there, &name).await;
    assert_eq!(home(&here, &second).await.0, 200);
    // A logout elsewhere: refused here within the TTL, and from then on.
    log_out(&there, &second).await;
    let out = Instant::now();
    while home(&here, &second).await.0 == 200 {
        assert!(
            out.elapsed() < Duration::from_millis(1_100),
            "still let through after {:?}",
            out.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        assert_eq!(home(&here, &second).await.0, 401);
    }

    // This process's own logout takes effect on its next request.
    let (third, _) = sign_in(&here, &name).await;
    assert_eq!(home(&here, &third).await.0, 200);
    assert_eq!(home(&here, &third).await.0, 200);
    log_out(&here, &third).await;
    assert_eq!(home(&here, &third).await.0, 401);
}

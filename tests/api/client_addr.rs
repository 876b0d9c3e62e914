//! The client address behind trusted proxies: login throttling buckets by it, and the access
//! record names it (with the authenticated user).

use goex_config::Profile;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_envelope, manifest_dir, spawn_app_with, spawn_logged, test_config,
};

const TRUST_LOCALHOST: (&str, &str) = ("APP__SERVER__HTTP__TRUSTED_PROXIES__0", "127.0.0.1/32");

fn overrides(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut all = vec![("APP__AUTH__MAX_FAILURES", "5".to_owned())];
    all.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    all
}

/// A wrong-password login for `username` (unknown: it counts against the address only once
/// per name) sent with `X-Forwarded-For: xff`.
async fn failed_login(app: &TestApp, username: &str, xff: Option<&str>) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}/auth/login", app.address))
        .form(&[("username", username), ("password", "wrong123")]);
    if let Some(xff) = xff {
        req = req.header("X-Forwarded-For", xff);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Fails five logins from `xff` (each with a new username), then asserts the sixth is 429.
async fn exhaust(app: &TestApp, tag: &str, xff: &str) {
    for i in 0..5 {
        let (status, body) = failed_login(app, &format!("{tag}{i:04}"), Some(xff)).await;
        assert_eq!(status, 401, "failure {i} from {xff}: {body}");
    }
    let (status, body) = failed_login(app, &format!("{tag}9999"), Some(xff)).await;
    assert_eq!(status, 429, "sixth failure from {xff}: {body}");
    assert_envelope(&body, "10008");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addr_behind_a_trusted_proxy_buckets_login_throttling_by_the_forwarded_address() {
    let app = spawn_app_with(&overrides(&[TRUST_LOCALHOST])).await;
    exhaust(&app, "alpha", "198.51.100.1").await;

    // Another forwarded client has its own bucket.
    let (status, body) = failed_login(&app, "bravo0001", Some("198.51.100.2")).await;
    assert_eq!(status, 401, "{body}");

    // Spoofed left-most hops do not move a client out of its bucket: the proxy appended the
    // real address last.
    for xff in [
        "203.0.113.77, 198.51.100.1",
        "198.51.100.2, 198.51.100.1",
        "unknown, 198.51.100.1",
    ] {
        let (status, body) = failed_login(&app, "charlie01", Some(xff)).await;
        assert_eq!(status, 429, "{xff}: {body}");
    }

    // IPv6 clients are bucketed by /64: another host of the same /64 is throttled, the next
    // /64 is not.
    exhaust(&app, "delta", "2001:db8:1:2::1").await;
    let (status, _) = failed_login(&app, "delta0100", Some("2001:db8:1:2:ffff::9")).await;
    assert_eq!(status, 429);
    let (status, _) = failed_login(&app, "delta0101", Some("2001:db8:1:3::1")).await;
    assert_eq!(status, 401);

    // No header: the proxy itself is the client, a bucket of its own.
    let (status, _) = failed_login(&app, "echo00001", None).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addr_without_trusted_proxies_ignores_x_forwarded_for() {
    let app = spawn_app_with(&overrides(&[])).await;
    for i in 0..5 {
        let xff = format!("198.51.100.{}", i + 1);
        let (status, body) = failed_login(&app, &format!("golf{i:04}"), Some(&xff)).await;
        assert_eq!(status, 401, "{body}");
    }
    // A new forwarded address each time, but one peer: the sixth failure is throttled.
    let (status, body) = failed_login(&app, "golf9999", Some("198.51.100.99")).await;
    assert_eq!(status, 429, "{body}");
    assert_envelope(&body, "10008");
}

#[test]
fn client_addr_config_refuses_bad_trusted_proxies_naming_the_key() {
    for bad in ["not-an-ip", "10.0.0.0/33", "0.0.0.0/0"] {
        let vars = vec![(TRUST_LOCALHOST.0.to_owned(), bad.to_owned())];
        let err = goex_config::load_with_vars::<go_example::meta::config::AppConfig>(
            &manifest_dir().join("configs"),
            Profile::Test,
            vars,
        )
        .expect_err(bad)
        .to_string();
        assert!(
            err.contains("server.http.trusted_proxies") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    let ok = test_config(&[
        (TRUST_LOCALHOST.0, "10.0.0.0/8".to_owned()),
        ("APP__SERVER__HTTP__TRUSTED_PROXIES__1", "::1".to_owned()),
    ]);
    assert!(!ok.server.http.trusted_proxies.is_empty());
}

// ---- the access record ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addr_and_user_id_are_in_the_access_record() {
    let app = spawn_logged(&[TRUST_LOCALHOST]).await;
    let res = app
        .client
        .post(format!("{}/auth/register", app.address))
        .json(&json!({"username": "logged001", "password": "abc123", "gender": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let id = res.json::<Value>().await.unwrap()["data"]["id"]
        .as_i64()
        .expect("user id");
    let res = app
        .client
        .post(format!("{}/auth/login", app.address))
        .form(&[("username", "logged001"), ("password", "abc123")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let access = res.json::<Value>().await.unwrap()["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .get(format!("{}/home", app.address))
        .header("Authorization", &access)
        .header("X-Forwarded-For", "203.0.113.5, 198.51.100.42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // An unauthenticated request records no user.
    let res = app
        .client
        .get(format!("{}/home", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    // The record is written after the response is built: give the worker a moment.
    let mut records = Vec::new();
    for _ in 0..50 {
        records = app.access_records("/home");
        if records.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["client"], "198.51.100.42", "{records:?}");
    assert_eq!(records[0]["user_id"], id.to_string(), "{records:?}");
    assert_eq!(records[0]["status"], "200");
    assert_eq!(records[1]["client"], "127.0.0.1", "{records:?}");
    assert_eq!(records[1]["user_id"], "null", "{records:?}");
    assert_eq!(records[1]["status"], "401");
    let register = app.access_records("/auth/register");
    assert_eq!(register[0]["client"], "127.0.0.1", "{register:?}");
}

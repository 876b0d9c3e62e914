//! Registration, login, tokens, single sign-on and the attacks on them, over the wire.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_envelope, get_with, redis_overrides, service_env, spawn_app_with, tokens,
};

async fn register(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/auth/register", app.address))
        .json(&json!({"username": username, "password": password, "gender": 1}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn login(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/auth/login", app.address))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn signed_in(app: &TestApp, username: &str) -> (String, String) {
    assert_eq!(register(app, username, "abc123").await.0, 201);
    let (status, body) = login(app, username, "abc123").await;
    assert_eq!(status, 200, "{body}");
    tokens(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_register_login_home_refresh_and_single_sign_on() {
    let app = spawn_app_with(&[]).await;
    let (status, body) = register(&app, "alice001", "abc123").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["username"], "alice001");
    assert!(
        body.to_string().find("abc123").is_none(),
        "no password in the answer"
    );

    let (status, body) = login(&app, "alice001", "abc123").await;
    assert_eq!(status, 200, "{body}");
    let (access, refresh) = tokens(&body);
    assert!(
        access.starts_with("Bearer ") && refresh.starts_with("Bearer "),
        "the original's format"
    );
    let header = jsonwebtoken::decode_header(access.trim_start_matches("Bearer ")).unwrap();
    assert!(header.kid.is_some());

    let (status, body) = get_with(&app, "/home", &access).await;
    assert_eq!(
        (status, body["data"]["userInfo"]["username"].as_str()),
        (200, Some("alice001")),
        "{body}"
    );

    let (status, body) = get_with(&app, "/auth/refresh_token", &refresh).await;
    assert_eq!(status, 200, "{body}");
    let (access2, refresh2) = tokens(&body);
    assert_eq!(get_with(&app, "/home", &access2).await.0, 200);

    // Signing in elsewhere supersedes this login: its tokens now answer 20001.
    let (_, body) = login(&app, "alice001", "abc123").await;
    let (access3, _) = tokens(&body);
    let (status, body) = get_with(&app, "/home", &access2).await;
    assert_eq!(status, 401);
    assert_eq!(assert_envelope(&body, "20001"), "账号已在其他设备登录");
    assert_eq!(
        get_with(&app, "/auth/refresh_token", &refresh2).await.0,
        401
    );
    assert_eq!(get_with(&app, "/home", &access3).await.0, 200);

    // Logout ends the login.
    let res = app
        .client
        .post(format!("{}/auth/logout", app.address))
        .header("Authorization", &access3)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (status, body) = get_with(&app, "/home", &access3).await;
    assert_eq!(status, 401);
    assert_envelope(&body, "10010");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_ends_the_login() {
    let app = spawn_app_with(&[]).await;
    let (_, refresh) = signed_in(&app, "bob00001").await;
    let (status, body) = get_with(&app, "/auth/refresh_token", &refresh).await;
    assert_eq!(status, 200);
    let (access2, refresh2) = tokens(&body);
    // The spent token comes back (stolen copy): 20003, and the legitimate pair dies with it.
    let (status, body) = get_with(&app, "/auth/refresh_token", &refresh).await;
    assert_eq!(status, 401);
    assert_envelope(&body, "20003");
    assert_eq!(get_with(&app, "/home", &access2).await.0, 401);
    assert_eq!(
        get_with(&app, "/auth/refresh_token", &refresh2).await.0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_registration_and_headers_get_their_codes() {
    let app = spawn_app_with(&[]).await;
    let (access, refresh) = signed_in(&app, "carol001").await;
    let (status, body) = login(&app, "carol001", "wrong123").await;
    assert_eq!(status, 401);
    assert_eq!(assert_envelope(&body, "20000"), "用户名或密码不正确");
    assert_eq!(login(&app, "nobody01", "abc123").await.0, 401);

    let (status, body) = register(&app, "carol001", "abc123").await;
    assert_eq!(status, 409);
    assert!(assert_envelope(&body, "10013").contains("username"));
    let (status, body) = register(&app, "weak0001", "abcdef").await;
    assert_eq!(status, 400);
    assert!(assert_envelope(&body, "10000").contains("password"));

    // Refresh tokens are not access tokens, and the reverse.
    let (status, body) = get_with(&app, "/home", &refresh).await;
    assert_eq!(status, 401);
    assert_envelope(&body, "10010");
    let (status, body) = get_with(&app, "/auth/refresh_token", &access).await;
    assert_eq!(status, 401);
    assert_envelope(&body, "20003");

    let token = access.trim_start_matches("Bearer ");
    let long = format!("Bearer {}", "a".repeat(10_000));
    let tampered = format!("Bearer {}x", &token[..token.len() - 1]);
    for header in [
        "",
        "Bearer",
        "Bearer ",
        "Basic abc",
        token,
        "Bearer not.a.jwt",
        &long,
        &tampered,
    ] {
        let (status, body) = get_with(&app, "/home", header).await;
        assert_eq!(status, 401, "{header:.40}");
        assert_envelope(&body, "10010");
    }
    let res = app
        .client
        .get(format!("{}/home", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_points_to_the_refresh_url() {
    let app = spawn_app_with(&[
        ("APP__AUTH__ACCESS_TTL", "1s".into()),
        ("APP__AUTH__LEEWAY", "0s".into()),
    ])
    .await;
    let (access, refresh) = signed_in(&app, "dave0001").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = get_with(&app, "/home", &access).await;
    assert_eq!(status, 401);
    assert_envelope(&body, "20002");
    assert_eq!(body["error"]["refresh_url"], "/auth/refresh_token");
    let (status, body) = get_with(&app, "/auth/refresh_token", &refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_with(&app, "/home", &tokens(&body).0).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_are_throttled_with_429() {
    let app = spawn_app_with(&[("APP__AUTH__MAX_FAILURES", "3".into())]).await;
    signed_in(&app, "erin0001").await;
    for _ in 0..3 {
        assert_eq!(login(&app, "erin0001", "wrong123").await.0, 401);
    }
    let (status, body) = login(&app, "erin0001", "abc123").await;
    assert_eq!(status, 429, "even the right password waits out the window");
    assert_envelope(&body, "10008");
    // The address is throttled too: another username from the same client.
    let (status, _) = login(&app, "frank001", "abc123").await;
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_keys_logs_nobody_out_and_removing_a_key_does() {
    // Two app instances share Redis (the login records) and the key folder, as two deploys.
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().display().to_string();
    let base = |cur: &str, keys: &str| {
        let mut o = redis_overrides("single", &addr);
        o.extend([
            ("APP__CERTS__DIR", dir.clone()),
            ("APP__CERTS__CURKEY", cur.to_owned()),
            (
                "APP__CERTS__KEYS__0",
                keys.split(',').next().unwrap().to_owned(),
            ),
        ]);
        if let Some(second) = keys.split(',').nth(1) {
            o.push(("APP__CERTS__KEYS__1", second.to_owned()));
        }
        o
    };
    let mut first = base("k1", "k1");
    first.push((
        "APP__SQLITE__PATH",
        certs.path().join("shared.db").display().to_string(),
    ));
    let old = spawn_app_with(&first).await;
    // Letters and digits only (the username rule).
    let username = crate::helpers::unique_name("rot").replace('_', "");
    let (access, _) = signed_in(&old, &username).await;

    let mut rotated = base("k2", "k1,k2");
    rotated.push((
        "APP__SQLITE__PATH",
        certs.path().join("shared.db").display().to_string(),
    ));
    let new = spawn_app_with(&rotated).await;
    assert_eq!(
        get_with(&new, "/home", &access).await.0,
        200,
        "a k1 token still verifies"
    );

    let mut retired = base("k2", "k2");
    retired.push((
        "APP__SQLITE__PATH",
        certs.path().join("shared.db").display().to_string(),
    ));
    let newest = spawn_app_with(&retired).await;
    let (status, body) = get_with(&newest, "/home", &access).await;
    assert_eq!(status, 401);
    assert_envelope(&body, "10010");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_take_as_long_as_known_ones() {
    let app = spawn_app_with(&[("APP__AUTH__MAX_FAILURES", "1000".into())]).await;
    signed_in(&app, "timing01").await;
    let mean =
        |durations: Vec<Duration>| durations.iter().sum::<Duration>() / durations.len() as u32;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..6 {
        let started = std::time::Instant::now();
        assert_eq!(login(&app, "timing01", "wrong123").await.0, 401);
        known.push(started.elapsed());
        let started = std::time::Instant::now();
        assert_eq!(login(&app, "nosuch01", "wrong123").await.0, 401);
        unknown.push(started.elapsed());
    }
    let (known, unknown) = (mean(known), mean(unknown));
    // Both pay for one argon2id verification; without the dummy hash an unknown user would
    // answer in well under a tenth of the time.
    assert!(
        unknown * 2 > known,
        "unknown {unknown:?} vs known {known:?}"
    );
}

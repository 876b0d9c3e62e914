//! Roles (issue 22): admin rights come from `user_roles`, travel in the access token and are
//! checked by one extractor; a role change or a password reset ends the user's logins; the
//! `go_example users` command grants them; admin requests leave audit records. Attacks at test
//! scale, fired in parallel where they count.

use go_example::model::role::Role;
use go_example::service::account::AccountService;
use go_example::service::audit::Actor;
use serde_json::{Value, json};
use shaku::HasComponent;

use crate::helpers::{
    TestApp, app_command, assert_envelope, get_with, grant_admin, seed_user_in, sign_in,
    spawn_app_adjusted, spawn_app_with, spawn_logged, tokens,
};

/// Signs `name` in over HTTP: its access token (`Bearer ...`).
async fn login(
    address: &str,
    client: &reqwest::Client,
    name: &str,
    password: &str,
) -> (u16, Value) {
    let res = client
        .post(format!("{address}/auth/login"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// A one-row users workbook.
fn workbook(name: &str, password: &str) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (col, value) in ["用户名", "性别", "密码"].into_iter().enumerate() {
        sheet.write_string(0, col as u16, value).unwrap();
    }
    for (col, value) in [name, "1", password].into_iter().enumerate() {
        sheet.write_string(1, col as u16, value).unwrap();
    }
    book.save_to_buffer().unwrap()
}

async fn import(app: &TestApp, token: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "uploadFile",
        reqwest::multipart::Part::bytes(bytes).file_name("users.xlsx"),
    );
    let res = app
        .client
        .post(format!("{}/excel/import?on_existing=update", app.address))
        .header("Authorization", token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// Issue 22, attack 1: any signed-in user imported a workbook with a victim's name and a
/// password of their choosing, and signed in as the victim. Every Excel route is an admin's
/// now (a lower role: 403 / 10011), and an admin's import never changes a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_take_over_an_account_through_excel() {
    let app = spawn_app_with(&[]).await;
    seed_user_in(&app.module, "victim01", "victim123").await;
    seed_user_in(&app.module, "attacker1", "attack123").await;
    let attacker = sign_in(&app, "attacker1", "attack123").await;

    let (status, body) = import(&app, &attacker, workbook("victim01", "owned12345")).await;
    assert_eq!(status, 403, "{body}");
    assert_envelope(&body, "10011");
    for path in [
        "/excel/export",
        "/excel/import/0123456789abcdef0123456789abcdef",
    ] {
        let (status, body) = get_with(&app, path, &attacker).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_envelope(&body, "10011");
    }
    let (status, _) = login(&app.address, &app.client, "victim01", "owned12345").await;
    assert_eq!(status, 401, "the victim's password is unchanged");

    // Even an admin's import leaves passwords alone.
    seed_user_in(&app.module, "importer01", "import123").await;
    grant_admin(&app.module, "importer01").await;
    let admin = sign_in(&app, "importer01", "import123").await;
    let (status, body) = import(&app, &admin, workbook("victim01", "owned12345")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["updated"], 1, "{body}");
    let (status, _) = login(&app.address, &app.client, "victim01", "owned12345").await;
    assert_eq!(status, 401, "an import never sets a password");
    let (status, _) = login(&app.address, &app.client, "victim01", "victim123").await;
    assert_eq!(status, 200);
}

/// A role lives in the database and the token; granting or revoking it ends the user's logins,
/// so a token never carries a role that was taken away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_ends_the_users_logins_and_the_next_login_carries_it() {
    let app = spawn_app_with(&[]).await;
    seed_user_in(&app.module, "promoted1", "abc12345").await;
    let before = sign_in(&app, "promoted1", "abc12345").await;
    let (status, body) = get_with(&app, "/home", &before).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["userInfo"]["roles"], json!([]));
    let (status, _) = get_with(&app, "/excel/export", &before).await;
    assert_eq!(status, 403);

    grant_admin(&app.module, "promoted1").await;
    let (status, body) = get_with(&app, "/home", &before).await;
    assert_eq!(status, 401, "the grant ended the login: {body}");
    let admin = sign_in(&app, "promoted1", "abc12345").await;
    let (status, body) = get_with(&app, "/home", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["userInfo"]["roles"], json!(["admin"]));
    let res = app
        .client
        .get(format!("{}/excel/export", app.address))
        .header("Authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let accounts: &dyn AccountService = app.module.resolve_ref();
    assert!(
        accounts
            .revoke(&Actor::cli(), "promoted1", Role::Admin)
            .await
            .unwrap()
    );
    let (status, _) = get_with(&app, "/excel/export", &admin).await;
    assert_eq!(status, 401, "the revocation ended the admin's login");
    let demoted = sign_in(&app, "promoted1", "abc12345").await;
    let (status, body) = get_with(&app, "/excel/export", &demoted).await;
    assert_eq!(status, 403, "{body}");
}

/// Parallel grants of one role make one row and end the logins once; the others learn it was
/// there already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_grants_change_the_role_once() {
    let app = spawn_app_with(&[]).await;
    seed_user_in(&app.module, "granted01", "abc12345").await;
    let accounts: std::sync::Arc<dyn AccountService> = app.module.resolve();
    let grants = (0..12).map(|_| {
        let accounts = accounts.clone();
        async move {
            accounts
                .grant(&Actor::cli(), "granted01", Role::Admin)
                .await
                .unwrap()
        }
    });
    let changed = futures_util::future::join_all(grants).await;
    assert_eq!(changed.iter().filter(|c| **c).count(), 1, "{changed:?}");
    let page = accounts.list(0, 10).await.unwrap();
    let user = page.iter().find(|u| u.username == "granted01").unwrap();
    assert_eq!(user.roles, vec!["admin"]);
    let missing = accounts
        .grant(&Actor::cli(), "nobody0001", Role::Admin)
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        go_example::service::error::ServiceError::NotFound
    ));
}

/// `reset-password` sets a password (the registration rule holds) and ends the user's logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_ends_the_logins_and_only_the_new_password_works() {
    let app = spawn_app_with(&[]).await;
    seed_user_in(&app.module, "forgetful1", "abc12345").await;
    let token = sign_in(&app, "forgetful1", "abc12345").await;
    let accounts: &dyn AccountService = app.module.resolve_ref();
    let weak = accounts
        .reset_password(&Actor::cli(), "forgetful1", "short".into())
        .await
        .unwrap_err();
    assert_eq!(weak.code().code, 10000);
    accounts
        .reset_password(&Actor::cli(), "forgetful1", "newpass99".into())
        .await
        .unwrap();
    let (status, _) = get_with(&app, "/home", &token).await;
    assert_eq!(status, 401);
    let (status, _) = login(&app.address, &app.client, "forgetful1", "abc12345").await;
    assert_eq!(status, 401);
    sign_in(&app, "forgetful1", "newpass99").await;
}

/// `n` exports by `token` at once: each answer's status and body.
async fn exports_at_once(app: &TestApp, token: &str, n: usize) -> Vec<(u16, Vec<u8>)> {
    let calls = (0..n).map(|_| {
        let request = app
            .client
            .get(format!("{}/excel/export", app.address))
            .header("Authorization", token);
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.bytes().await.unwrap().to_vec())
        }
    });
    futures_util::future::join_all(calls).await
}

/// Issue 22, attack 2 at test scale: 8 parallel exports by one admin with the rate-limit rule
/// `excel-export` (keyed by user) at burst 3 → exactly 3 answered, 5 refused with 429 / 10008;
/// another admin on the same address has exports of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_bounded_per_admin_in_parallel() {
    let app = spawn_app_adjusted(
        &[
            ("APP__RATE_LIMIT__ENABLED", "true".to_owned()),
            ("APP__EXCEL__MAX_RUNNING_EXPORTS", "16".to_owned()),
        ],
        |config| {
            let exports = config
                .rate_limit
                .rules
                .iter_mut()
                .find(|r| r.name == "excel-export")
                .expect("the shipped rule");
            exports.burst = 3;
        },
    )
    .await;
    seed_user_in(&app.module, "exporter01", "abc12345").await;
    grant_admin(&app.module, "exporter01").await;
    seed_user_in(&app.module, "exporter03", "abc12345").await;
    grant_admin(&app.module, "exporter03").await;
    let token = sign_in(&app, "exporter01", "abc12345").await;
    let answers = exports_at_once(&app, &token, 8).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 3);
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(refused.len(), 5);
    for (_, body) in refused {
        assert_envelope(&serde_json::from_slice(body).unwrap(), "10008");
    }
    let other = sign_in(&app, "exporter03", "abc12345").await;
    let answers = exports_at_once(&app, &other, 1).await;
    assert_eq!(answers[0].0, 200, "another admin's own bucket");
}

/// `excel.max_running_exports` at test scale (1): while one export is being written, the others
/// answer 503 / 10009 at once instead of queuing (every answer is one of the two, and the
/// place is free again afterwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_running_at_once_are_bounded() {
    let app = spawn_app_with(&[
        ("APP__EXCEL__MAX_RUNNING_EXPORTS", "1".to_owned()),
        ("APP__EXCEL__EXPORT_PAGE_SIZE", "1".to_owned()),
    ])
    .await;
    // 400 users read one a query: an export takes long enough for the others to meet it.
    crate::excel::seed_users(&app, 400).await;
    seed_user_in(&app.module, "exporter02", "abc12345").await;
    grant_admin(&app.module, "exporter02").await;
    let token = sign_in(&app, "exporter02", "abc12345").await;
    let statuses: Vec<u16> = exports_at_once(&app, &token, 6)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    let (status, _) = get_with(&app, "/excel/export?gender=9", &token).await;
    assert_eq!(
        status, 400,
        "the place was given back (a bad filter gets past it)"
    );
}

/// Every admin request leaves an audit record: who, what, to what, from where, how it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_leave_audit_records() {
    let app = spawn_logged(&[]).await;
    seed_user_in(&app.module, "auditor01", "abc12345").await;
    grant_admin(&app.module, "auditor01").await;
    let (status, body) = login(&app.address, &app.client, "auditor01", "abc12345").await;
    assert_eq!(status, 200);
    let token = tokens(&body).0;
    let res = app
        .client
        .get(format!("{}/excel/export?gender=1", app.address))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.bytes().await;
    let records = app.records.lock().unwrap().clone();
    let audits: Vec<_> = records.iter().filter(|r| r["msg"] == "audit").collect();
    let grant = audits
        .iter()
        .find(|r| r["action"] == "grant-admin")
        .expect("the grant is audited");
    assert_eq!(
        (grant["actor_id"].as_str(), grant["target"].as_str()),
        ("cli", "auditor01")
    );
    let export = audits
        .iter()
        .find(|r| r["action"] == "GET /excel/export")
        .expect("the export is audited");
    assert_eq!(export["target"], "/excel/export?gender=1");
    assert_eq!(export["client"], "127.0.0.1");
    assert_eq!(export["outcome"], "200");
    assert!(export["actor_id"].parse::<i64>().is_ok(), "{export:?}");
}

/// `go_example users` makes the first admin on the configured database; `jenkins.admins` is
/// refused at start with the command to use instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_command_grants_lists_and_signs_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db").display().to_string();
    let app = spawn_app_with(&[("APP__SQLITE__PATH", db.clone())]).await;
    seed_user_in(&app.module, "firstadmin", "abc12345").await;
    let token = sign_in(&app, "firstadmin", "abc12345").await;
    let users = |args: &[&str]| {
        let out = app_command()
            .arg("users")
            .args(args)
            .args(["--env", "test"])
            .env("APP__SQLITE__PATH", &db)
            .env("APP__LOG__FILE__ENABLED", "false")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = users(&["grant-admin", "firstadmin"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("admin granted"), "{stdout}");
    let (status, _) = get_with(&app, "/home", &token).await;
    assert_eq!(
        status, 401,
        "the grant from another process ended the login"
    );
    let admin = sign_in(&app, "firstadmin", "abc12345").await;
    let (status, _) = get_with(&app, "/excel/export?gender=9", &admin).await;
    assert_eq!(status, 400, "an admin gets past the role check");
    let (code, stdout, _) = users(&["list"]);
    assert_eq!(code, Some(0));
    let line = stdout.lines().find(|l| l.contains("firstadmin")).unwrap();
    assert!(line.contains("admin"), "{stdout}");
    let (code, stdout, _) = users(&["sign-out", "firstadmin"]);
    assert_eq!(code, Some(0), "{stdout}");
    let (status, _) = get_with(&app, "/home", &admin).await;
    assert_eq!(status, 401, "signed out everywhere");
    let (code, _, stderr) = users(&["grant-admin", "nobody0001"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("no user is named nobody0001"), "{stderr}");

    let out = app_command()
        .args(["http", "--env", "test"])
        .env("APP__JENKINS__ADMINS__0", "firstadmin")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jenkins.admins") && stderr.contains("go_example users grant-admin"),
        "{stderr}"
    );
}

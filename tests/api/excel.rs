//! `GET /excel/export` (docs/excel.md) over HTTP: every user in keyset pages, the columns and
//! types checked with calamine and with Python's openpyxl, filters, limits and refusals.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use go_example::model::user::NewUser;
use go_example::repository::mysql::user::UserRepository;
use go_example::service::auth::AuthService;
use shaku::HasComponent;

use crate::helpers::{
    TestApp, assert_envelope, grant_admin, manifest_dir, python_venv, seed_user_in, spawn_app_with,
};

/// `count` users (`export0000`, ...) with genders 0, 1, 2 in turn.
pub async fn seed_users(app: &TestApp, count: usize) {
    let users: &dyn UserRepository = app.module.resolve_ref();
    for i in 0..count {
        let name = format!("export{i:04}");
        users
            .create(NewUser {
                username: &name,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                gender: (i % 3) as i16,
            })
            .await
            .expect("seed");
    }
}

/// `count` users with genders 0, 1, 2 in turn, and an admin who signs in: its `Authorization`.
async fn seed(app: &TestApp, count: usize) -> String {
    seed_users(app, count).await;
    seed_user_in(&app.module, "exporter", "Passw0rd!export").await;
    // The export is an admin capability (issue 22).
    grant_admin(&app.module, "exporter").await;
    let auth: &dyn AuthService = app.module.resolve_ref();
    let form = serde_json::from_value(serde_json::json!({
        "username": "exporter", "password": "Passw0rd!export"
    }))
    .unwrap();
    auth.login(form, "127.0.0.1")
        .await
        .expect("login")
        .access_token
}

async fn export(app: &TestApp, query: &str, authorization: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/excel/export{query}", app.address))
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap()
}

/// The first sheet's rows.
fn rows(bytes: &[u8]) -> Vec<Vec<Data>> {
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("an xlsx");
    let sheet = book
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    sheet.rows().map(<[Data]>::to_vec).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_every_user_in_pages_without_passwords() {
    // Pages of 7: 50 + 1 users take eight queries, the last one short.
    let app = spawn_app_with(&[("APP__EXCEL__EXPORT_PAGE_SIZE", "7".to_owned())]).await;
    let token = seed(&app, 50).await;
    let res = export(&app, "", &token).await;
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(
        headers["content-disposition"],
        r#"attachment; filename="hello.xlsx""#
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-rows"], "51");
    let bytes = res.bytes().await.unwrap();
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    let rows = rows(&bytes);
    let header: Vec<String> = rows[0].iter().map(ToString::to_string).collect();
    assert_eq!(header, ["用户Id", "用户名", "性别", "创建时间"]);
    assert_eq!(rows.len(), 52);
    let users: &dyn UserRepository = app.module.resolve_ref();
    let mut previous = 0.0;
    for row in &rows[1..] {
        let Data::Float(id) = row[0] else {
            panic!("{row:?}")
        };
        assert!(id > previous, "ids ascend: {row:?}");
        previous = id;
        let stored = users.find(id as i64).await.unwrap().expect("a user");
        assert_eq!(row[1], Data::String(stored.username.clone()));
        assert_eq!(row[2], Data::Float(f64::from(stored.gender)));
        assert!(matches!(row[3], Data::DateTime(_)), "{row:?}");
        assert!(
            row.iter().all(|c| !c.to_string().contains("argon2")),
            "{row:?}"
        );
    }
    // Python's openpyxl reads it with the right types.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.xlsx");
    std::fs::write(&file, &bytes).unwrap();
    let python = python_venv("excel", crate::excel_import::EXCEL_PYTHON);
    let out = std::process::Command::new(python)
        .arg(manifest_dir().join("tests/clients/excel_check.py"))
        .arg(&file)
        .arg("51")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_export_and_bad_ones_are_refused() {
    let app = spawn_app_with(&[
        ("APP__EXCEL__EXPORT_PAGE_SIZE", "4".to_owned()),
        ("APP__EXCEL__EXPORT_FILE_NAME", "用户.xlsx".to_owned()),
    ])
    .await;
    let token = seed(&app, 12).await;
    let res = export(&app, "?gender=2", &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        r#"attachment; filename="__.xlsx"; filename*=UTF-8''%E7%94%A8%E6%88%B7.xlsx"#
    );
    let rows = rows(&res.bytes().await.unwrap());
    assert_eq!(rows.len(), 1 + 4, "users 2, 5, 8, 11 have gender 2");
    assert!(rows[1..].iter().all(|r| r[2] == Data::Float(2.0)));
    // Every user was created today (UTC): a range that ends before today has none.
    let today = chrono::Utc::now().date_naive();
    let res = export(
        &app,
        &format!("?created_from={today}&created_to={today}"),
        &token,
    )
    .await;
    assert_eq!(rows_in(res).await, 13);
    let res = export(&app, "?created_to=2000-01-01", &token).await;
    assert_eq!(rows_in(res).await, 0, "the header alone");
    let res = export(
        &app,
        "?created_from=2026-02-01&created_to=2026-01-01",
        &token,
    )
    .await;
    assert_eq!(rows_in(res).await, 0, "a range ending before it starts");
    for bad in ["?gender=5", "?created_from=yesterday", "?password=1"] {
        let res = export(&app, bad, &token).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_envelope(&res.json().await.unwrap(), "10000");
    }
}

async fn rows_in(res: reqwest::Response) -> usize {
    assert_eq!(res.status(), 200);
    rows(&res.bytes().await.unwrap()).len() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_needs_a_token_and_stays_within_its_row_limit() {
    let app = spawn_app_with(&[
        ("APP__EXCEL__EXPORT_PAGE_SIZE", "3".to_owned()),
        ("APP__EXCEL__MAX_EXPORT_ROWS", "10".to_owned()),
    ])
    .await;
    let res = app.get("/excel/export").await;
    assert_eq!(res.status(), 401);
    assert_envelope(&res.json().await.unwrap(), "10010");
    let token = seed(&app, 9).await;
    // 10 users (9 and the exporter): exactly the limit.
    let res = export(&app, "", &token).await;
    assert_eq!(rows_in(res).await, 10);
    seed_user_in(&app.module, "onemore", "Passw0rd!export").await;
    let res = export(&app, "", &token).await;
    assert_eq!(res.status(), 400);
    let message = assert_envelope(&res.json().await.unwrap(), "10000");
    assert!(message.contains("excel.max_export_rows"), "{message}");
}

//! `POST /excel/import` (docs/excel.md) over HTTP: our own export imported back, files written
//! by openpyxl, XlsxWriter and LibreOffice, the modes, concurrent imports, and hostile uploads
//! refused with nothing written.

use std::io::Write;

use go_example::model::excel::NO_PASSWORD;
use go_example::model::user::{User, UserFilter, UserListing};
use go_example::repository::mysql::user::UserRepository;
use go_example::service::auth::AuthService;
use serde_json::Value;
use shaku::HasComponent;

use crate::helpers::{
    TestApp, assert_envelope, fresh_mysql_database, grant_admin, manifest_dir, mysql_server_dsn,
    python_venv, seed_user_in, spawn_app_with,
};

/// The Excel tests' Python packages from PyPI, pinned (one venv for all of them).
pub const EXCEL_PYTHON: &[&str] = &["openpyxl==3.1.5", "XlsxWriter==3.2.9"];

pub(crate) const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Signs `name` up as an admin (imports are an admin capability) and in: its access token.
pub(crate) async fn token(app: &TestApp, name: &str) -> String {
    seed_user_in(&app.module, name, "Passw0rd1").await;
    grant_admin(&app.module, name).await;
    login(app, name, "Passw0rd1").await.expect("login")
}

async fn login(app: &TestApp, name: &str, password: &str) -> Option<String> {
    let auth: &dyn AuthService = app.module.resolve_ref();
    let form = serde_json::from_value(serde_json::json!({"username": name, "password": password}))
        .unwrap();
    auth.login(form, "127.0.0.1")
        .await
        .ok()
        .map(|t| t.access_token)
}

async fn upload(app: &TestApp, token: &str, query: &str, bytes: Vec<u8>) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("users.xlsx")
        .mime_str(XLSX)
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("note", "a field before the file")
        .part("uploadFile", part);
    app.client
        .post(format!("{}/excel/import{query}", app.address))
        .header("Authorization", token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn all_users(app: &TestApp) -> Vec<UserListing> {
    let users: &dyn UserRepository = app.module.resolve_ref();
    users
        .page(&UserFilter::default(), 0, 1_000_000)
        .await
        .unwrap()
}

async fn user(app: &TestApp, name: &str) -> User {
    let users: &dyn UserRepository = app.module.resolve_ref();
    users
        .find_by_username(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} was imported"))
}

/// A workbook written by rust_xlsxwriter: `header`, then `rows` of text cells.
pub(crate) fn workbook(header: &[&str], rows: &[Vec<&str>]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, name) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *name).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            if !value.is_empty() {
                sheet.write_string(r as u32 + 1, c as u16, *value).unwrap();
            }
        }
    }
    book.save_to_buffer().unwrap()
}

async fn ok_report(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["committed"], true, "{body}");
    body["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_export_imports_back_and_users_without_a_password_cannot_sign_in() {
    let source = spawn_app_with(&[]).await;
    let token_a = token(&source, "exporter1").await;
    let users: &dyn UserRepository = source.module.resolve_ref();
    for (i, gender) in [0, 1, 2, 1].into_iter().enumerate() {
        let name = format!("roundtrip{i}");
        users
            .create(go_example::model::user::NewUser {
                username: &name,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                gender,
            })
            .await
            .unwrap();
    }
    let exported = source
        .client
        .get(format!("{}/excel/export", source.address))
        .header("Authorization", &token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), 200);
    let bytes = exported.bytes().await.unwrap().to_vec();

    let target = spawn_app_with(&[]).await;
    let token_b = token(&target, "importer1").await;
    let report = ok_report(upload(&target, &token_b, "", bytes.clone()).await).await;
    assert_eq!(report["rows"], 5, "{report}");
    assert_eq!(report["inserted"], 5, "{report}");
    assert_eq!(report["invalid"], 0, "{report}");
    for original in all_users(&source).await {
        let copy = user(&target, &original.username).await;
        assert_eq!(copy.gender, original.gender);
        // The sheet keeps milliseconds.
        let drift = (copy.created_at - original.created_at)
            .num_milliseconds()
            .abs();
        assert!(drift <= 1, "{} vs {}", copy.created_at, original.created_at);
        assert_eq!(copy.password_hash, NO_PASSWORD, "no password came with it");
        assert!(
            login(&target, &original.username, "Passw0rd1")
                .await
                .is_none()
        );
    }
    // Again: every name exists now, so every row is skipped.
    let report = ok_report(upload(&target, &token_b, "", bytes).await).await;
    assert_eq!(
        (report["inserted"].as_u64(), report["skipped"].as_u64()),
        (Some(0), Some(5))
    );
    assert_eq!(all_users(&target).await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_from_openpyxl_xlsxwriter_and_libreoffice_import() {
    let dir = tempfile::tempdir().unwrap();
    let python = python_venv("excel", EXCEL_PYTHON);
    let out = std::process::Command::new(python)
        .arg(manifest_dir().join("tests/clients/excel_make.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let soffice = std::process::Command::new(manifest_dir().join("scripts/office.sh"))
        .output()
        .unwrap();
    assert!(
        soffice.status.success(),
        "{}",
        String::from_utf8_lossy(&soffice.stderr)
    );
    let soffice = String::from_utf8(soffice.stdout).unwrap().trim().to_owned();
    let profile = dir.path().join("lo-profile");
    let converted = std::process::Command::new(soffice)
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        // The CSV is UTF-8 (filter options: comma, double quote, UTF-8, from line 1).
        .args([
            "--headless",
            "--infilter=CSV:44,34,76,1",
            "--convert-to",
            "xlsx",
        ])
        .arg("--outdir")
        .arg(dir.path())
        .arg(dir.path().join("libreoffice.csv"))
        .output()
        .unwrap();
    assert!(
        converted.status.success() && dir.path().join("libreoffice.xlsx").exists(),
        "{}{}",
        String::from_utf8_lossy(&converted.stdout),
        String::from_utf8_lossy(&converted.stderr)
    );

    let app = spawn_app_with(&[]).await;
    let token = token(&app, "importer2").await;
    let started = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(5);
    for (file, prefix, number) in [
        ("openpyxl.xlsx", "oxl", "12345671"),
        ("xlsxwriter.xlsx", "xws", "12345672"),
        ("xlsxwriter-inline.xlsx", "xwi", "12345673"),
        ("libreoffice.xlsx", "lo", "12345674"),
    ] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        let report = ok_report(upload(&app, &token, "", bytes).await).await;
        assert_eq!(
            report["rows"], 4,
            "{file}: the blank row is not one: {report}"
        );
        assert_eq!(report["inserted"], 4, "{file}: {report}");

        let first = user(&app, &format!("{prefix}user01")).await;
        assert_eq!(first.gender, 1, "{file}");
        assert_eq!(
            first.created_at.to_string(),
            "2025-03-04 05:06:07",
            "{file}"
        );
        assert!(
            login(&app, &first.username, "abc12345").await.is_some(),
            "{file}: its 密码 was hashed and works"
        );
        let second = user(&app, &format!("{prefix}user02")).await;
        assert_eq!(second.gender, 2, "{file}: a number stored as text");
        assert_eq!(
            second.created_at.to_string(),
            "2025-03-04 00:00:00",
            "{file}"
        );
        assert_eq!(second.password_hash, NO_PASSWORD, "{file}");
        let third = user(&app, &format!("{prefix}user03")).await;
        assert_eq!(third.gender, 0, "{file}: an empty gender");
        assert!(third.created_at >= started, "{file}: no 创建时间 is now");
        assert_eq!(
            user(&app, number).await.gender,
            1,
            "{file}: 男, a numeric name"
        );
        assert!(
            all_users(&app).await.iter().all(|u| u.id < 900),
            "{file}: 用户Id never becomes the row's id"
        );
    }
    assert_eq!(
        all_users(&app).await.len(),
        1 + 16,
        "the extra sheets were not read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_refuse_the_whole_file_or_are_left_out() {
    let app = spawn_app_with(&[]).await;
    let token = token(&app, "importer3").await;
    let header = ["用户名", "性别", "密码", "创建时间"];
    let rows = vec![
        vec!["gooduser1", "1", "", ""],
        vec!["bad", "1", "", ""],
        vec!["gooduser2", "7", "short", "yesterday"],
        vec!["gooduser3", "2", "", "2999-01-01"],
        vec!["GoodUser1", "0", "", ""],
        vec!["gooduser4", "0", "abc12345", "2024-02-29 12:00:00"],
        // White space only: a blank row, not counted.
        vec!["   ", " ", "", ""],
    ];
    let bytes = workbook(&header, &rows);

    let res = upload(&app, &token, "", bytes.clone()).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_envelope(&body, "30001");
    let report = &body["error"]["details"];
    assert_eq!(report["committed"], false, "{body}");
    assert_eq!(
        (report["rows"].as_u64(), report["invalid"].as_u64()),
        (Some(6), Some(4))
    );
    assert_eq!(report["inserted"], 0);
    let errors: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = [
        (3, "用户名"),
        (4, "密码"),
        (4, "性别"),
        (4, "创建时间"),
        (5, "创建时间"),
        (6, "用户名"),
    ]
    .iter()
    .map(|(r, c)| (*r, (*c).to_owned()))
    .collect();
    assert_eq!(errors, expected, "{body}");
    assert_eq!(all_users(&app).await.len(), 1, "nothing was written");

    // English clients get the same report.
    let res = app
        .client
        .post(format!("{}/excel/import", app.address))
        .header("Authorization", &token)
        .header("Accept-Language", "en")
        .multipart(reqwest::multipart::Form::new().part(
            "uploadFile",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("u.xlsx"),
        ))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Import failed"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["invalid"], 4);

    let report = ok_report(upload(&app, &token, "?mode=skip_invalid", bytes).await).await;
    assert_eq!(
        (report["inserted"].as_u64(), report["invalid"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(
        user(&app, "gooduser4").await.created_at.to_string(),
        "2024-02-29 12:00:00"
    );
    assert!(login(&app, "gooduser4", "abc12345").await.is_some());
    assert_eq!(all_users(&app).await.len(), 3);

    // Existing names: skipped by default, updated on request: the gender, never the password
    // (issue 22: an import that set passwords took over accounts; `users reset-password`
    // sets them).
    let hash_before = user(&app, "gooduser1").await.password_hash;
    let again = workbook(&header, &[vec!["gooduser1", "2", "newpass99", ""]]);
    let report = ok_report(upload(&app, &token, "", again.clone()).await).await;
    assert_eq!(report["skipped"], 1);
    assert_eq!(user(&app, "gooduser1").await.gender, 1);
    let report = ok_report(upload(&app, &token, "?on_existing=update", again).await).await;
    assert_eq!(report["updated"], 1);
    assert_eq!(user(&app, "gooduser1").await.gender, 2);
    assert_eq!(
        user(&app, "gooduser1").await.password_hash,
        hash_before,
        "an import never changes a password"
    );
    assert!(
        login(&app, "gooduser1", "newpass99").await.is_none(),
        "the imported password was not set"
    );

    let res = upload(&app, &token, "?mode=sometimes", workbook(&header, &[])).await;
    assert_eq!(res.status(), 400);
    assert_envelope(&res.json().await.unwrap(), "10000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_malformed_uploads_are_refused_with_nothing_written() {
    let app = spawn_app_with(&[
        ("APP__EXCEL__MAX_UPLOAD_SIZE", (256 * 1024).to_string()),
        ("APP__EXCEL__MAX_IMPORT_ROWS", "3".to_owned()),
        ("APP__EXCEL__MAX_ZIP_ENTRIES", "40".to_owned()),
    ])
    .await;
    let res = app
        .client
        .post(format!("{}/excel/import", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a token first");
    let token = token(&app, "importer4").await;
    let good = workbook(&["用户名", "性别"], &[vec!["someone1", "1"]]);

    // No file: another field only, or not multipart at all.
    let res = app
        .client
        .post(format!("{}/excel/import", app.address))
        .header("Authorization", &token)
        .multipart(reqwest::multipart::Form::new().text("file", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_envelope(&res.json().await.unwrap(), "30001");
    let res = app
        .client
        .post(format!("{}/excel/import", app.address))
        .header("Authorization", &token)
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_envelope(&res.json().await.unwrap(), "30001");

    let refused = |bytes: Vec<u8>, code: &'static str, what: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            let res = upload(app, token, "", bytes).await;
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            let expected = if code == "10007" { 413 } else { 400 };
            assert_eq!(status, expected, "{what}: {body}");
            let message = assert_envelope(&body, code);
            (message, what)
        }
    };
    refused(b"user,gender\nabc,1\n".to_vec(), "30002", "a CSV").await;
    refused(Vec::new(), "30002", "an empty file").await;
    refused(
        good[..good.len() / 2].to_vec(),
        "30002",
        "a truncated workbook",
    )
    .await;
    let mut corrupt = good.clone();
    // Every entry's data garbled, the zip directory at the end left whole.
    let end = corrupt.len() * 7 / 10;
    for byte in &mut corrupt[100..end] {
        *byte ^= 0x5a;
    }
    refused(corrupt, "30002", "a corrupted workbook").await;
    let (message, _) = refused(
        workbook(&["name", "性别"], &[vec!["someone1", "1"]]),
        "30002",
        "a header without 用户名",
    )
    .await;
    assert!(message.contains("用户名"), "{message}");
    let (message, _) = refused(zip_bomb(), "30002", "a zip bomb").await;
    assert!(message.contains("excel.max_compression_ratio"), "{message}");
    refused(many_entries(50), "30002", "too many zip entries").await;
    refused(vec![b'x'; 300 * 1024], "10007", "an oversize upload").await;
    let rows: Vec<Vec<&str>> = (0..4).map(|_| vec!["someone9", "1"]).collect();
    let (message, _) = refused(workbook(&["用户名", "性别"], &rows), "10000", "4 rows").await;
    assert!(message.contains("excel.max_import_rows"), "{message}");

    // A body that declares no length is counted as it streams.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'y'; 16 * 1024])).collect();
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(
        futures_util::stream::iter(chunks),
    ))
    .file_name("big.xlsx");
    let res = app
        .client
        .post(format!("{}/excel/import", app.address))
        .header("Authorization", &token)
        .multipart(reqwest::multipart::Form::new().part("uploadFile", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_envelope(&res.json().await.unwrap(), "10007");

    assert_eq!(all_users(&app).await.len(), 1, "nothing was written");
    // And a good file still goes in.
    let report = ok_report(upload(&app, &token, "", good).await).await;
    assert_eq!(report["inserted"], 1);
}

/// A workbook whose sheet is 200 MiB of spaces, deflated to some 200 KiB: a thousandfold,
/// past excel.max_compression_ratio (the other limits have unit tests: service::excel::sheet).
fn zip_bomb() -> Vec<u8> {
    let good = workbook(&["用户名", "性别"], &[vec!["someone1", "1"]]);
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(good)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for i in 0..source.len() {
        let entry = source.by_index_raw(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        drop(entry);
        if name == "xl/worksheets/sheet1.xml" {
            out.start_file(name, options).unwrap();
            let spaces = vec![b' '; 1 << 20];
            for _ in 0..200 {
                out.write_all(&spaces).unwrap();
            }
        } else {
            out.raw_copy_file(source.by_index_raw(i).unwrap()).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

/// A workbook with `extra` empty entries added.
fn many_entries(extra: usize) -> Vec<u8> {
    let good = workbook(&["用户名", "性别"], &[vec!["someone1", "1"]]);
    let mut out = zip::ZipWriter::new_append(std::io::Cursor::new(good)).unwrap();
    for i in 0..extra {
        out.start_file(
            format!("extra/{i}.txt"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// Concurrent imports of one file: every name is inserted once, by one of them; the others
/// skip it (a race on a name restarts the loser's transaction, which then sees it).
async fn concurrent_imports_insert_each_name_once(app: &TestApp) {
    let token = token(app, "importer5").await;
    let names: Vec<String> = (0..300).map(|i| format!("parallel{i:03}")).collect();
    let rows: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str(), "1"]).collect();
    let bytes = workbook(&["用户名", "性别"], &rows);
    let imports = (0..4).map(|_| upload(app, &token, "", bytes.clone()));
    let mut inserted = 0;
    for res in futures_util::future::join_all(imports).await {
        let report = ok_report(res).await;
        let (i, s) = (
            report["inserted"].as_u64().unwrap(),
            report["skipped"].as_u64().unwrap(),
        );
        assert_eq!(i + s, 300, "{report}");
        inserted += i;
    }
    assert_eq!(inserted, 300, "each name inserted by exactly one import");
    assert_eq!(all_users(app).await.len(), 301);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_on_sqlite() {
    let app = spawn_app_with(&[
        ("APP__EXCEL__IMPORT_BATCH_SIZE", "50".to_owned()),
        ("APP__EXCEL__MAX_RUNNING_IMPORTS", "4".to_owned()),
    ])
    .await;
    concurrent_imports_insert_each_name_once(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_on_mariadb_are_transactional_and_concurrent_safe() {
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let dsn = fresh_mysql_database(&server).await;
    let app = spawn_app_with(&[
        ("APP__DATABASE__DRIVER", "mysql".into()),
        ("APP__DATABASE__MIGRATE_ON_START", "true".into()),
        ("APP__MYSQL__DSN", dsn),
        ("APP__EXCEL__IMPORT_BATCH_SIZE", "50".to_owned()),
        ("APP__EXCEL__MAX_RUNNING_IMPORTS", "4".to_owned()),
    ])
    .await;
    concurrent_imports_insert_each_name_once(&app).await;
    // A bad last row rolls back the batches already written.
    let names: Vec<String> = (0..120).map(|i| format!("rollback{i:03}")).collect();
    let mut rows: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str(), "2"]).collect();
    rows.push(vec!["rollback999", "9"]);
    let res = upload(
        &app,
        &token(&app, "importer6").await,
        "",
        workbook(&["用户名", "性别"], &rows),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        all_users(&app).await.len(),
        302,
        "the written batches were rolled back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_runs_in_the_background_and_its_progress_reaches_the_socket_app() {
    // The HTTP app and the socket app share a database and keys, as two processes of one
    // deployment do.
    let shared = tempfile::tempdir().unwrap();
    let common = [
        (
            "APP__SQLITE__PATH",
            shared.path().join("app.db").display().to_string(),
        ),
        (
            "APP__CERTS__DIR",
            shared.path().join("certs").display().to_string(),
        ),
    ];
    let mut http = common.to_vec();
    http.extend([
        ("APP__EXCEL__ASYNC_ROWS", "50".to_owned()),
        ("APP__EXCEL__IMPORT_BATCH_SIZE", "20".to_owned()),
    ]);
    let app = spawn_app_with(&http).await;
    let mut socket = common.to_vec();
    socket.push(("APP__EXCEL__PROGRESS_POLL_INTERVAL", "100ms".to_owned()));
    let socket = crate::socket::spawn_socket(&socket).await;
    let token = token(&app, "importer7").await;
    let mut ws = crate::socket::connect_with(&socket.url(), &[("authorization", &token)])
        .await
        .expect("the socket app takes the HTTP app's token");

    let names: Vec<String> = (0..400).map(|i| format!("background{i:03}")).collect();
    let rows: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str(), "2"]).collect();
    let res = upload(&app, &token, "", workbook(&["用户名", "性别"], &rows)).await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/excel/import/{id}"));
    assert_eq!(body["data"]["status"], "running", "{body}");
    assert!(body["data"]["rows"].as_u64().unwrap() > 50, "{body}");

    // The socket app pushes the job's progress, then its end.
    let mut frames = 0;
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let frame = crate::socket::next_json(&mut ws).await;
            if frame["type"] != "import" {
                continue;
            }
            assert_eq!(frame["job"]["id"], id.as_str(), "{frame}");
            frames += 1;
            if frame["job"]["status"] != "running" {
                return frame;
            }
        }
    })
    .await
    .expect("the job's end is pushed");
    assert_eq!(done["job"]["status"], "done", "{done}");
    assert_eq!(done["job"]["report"]["inserted"], 400, "{done}");
    assert!(frames >= 1);

    let (status, job) = crate::helpers::get_with(&app, &location, &token).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["data"]["status"], "done");
    assert_eq!(
        (
            job["data"]["rows"].as_u64(),
            job["data"]["written"].as_u64()
        ),
        (Some(400), Some(400))
    );
    assert_eq!(all_users(&app).await.len(), 401);
    // The dashboard's import panel: one job ended done, none running (counted as the job's
    // task ends, just after its row says done).
    let metrics_port = app.metrics_port.unwrap();
    assert!(
        crate::helpers::eventually(std::time::Duration::from_secs(5), async || {
            let text = crate::helpers::scrape_port(metrics_port).await;
            let value = |series| crate::helpers::quick_value(&text, series);
            value(r#"go_example_import_jobs_total{outcome="done"}"#) == Some(1.0)
                && value(r#"go_example_import_jobs_total{outcome="failed"}"#) == Some(0.0)
                && value("go_example_import_jobs_running") == Some(0.0)
        })
        .await,
        "go_example_import_jobs_* after one job"
    );

    // Only its owner sees it.
    let other = self::token(&app, "importer8").await;
    let (status, body) = crate::helpers::get_with(&app, &location, &other).await;
    assert_eq!(status, 404, "{body}");
    assert_envelope(&body, "10005");
    let (status, _) = crate::helpers::get_with(
        &app,
        "/excel/import/00000000000000000000000000000000",
        &token,
    )
    .await;
    assert_eq!(status, 404);
    drop(ws);
    socket.shut_down().await.unwrap();
}

#[test]
fn the_cli_imports_and_exports_with_progress() {
    use crate::helpers::app_command;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db").display().to_string();
    let run = |args: &[&str]| {
        let out = app_command()
            .args(args)
            .args(["--env", "test"])
            .env("APP__SQLITE__PATH", &db)
            .env("APP__CERTS__DIR", dir.path().join("certs"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&["migrate"]);
    assert!(ok, "{err}");
    let file = dir.path().join("in.xlsx");
    let rows = vec![
        vec!["cliuser01", "1", "abc12345"],
        vec!["cliuser02", "2", ""],
        vec!["bad", "0", ""],
    ];
    std::fs::write(&file, workbook(&["用户名", "性别", "密码"], &rows)).unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = run(&["excel", "import", path]);
    assert!(!ok, "a bad row refuses the file: {out}{err}");
    assert!(err.contains("1 of 3 rows are invalid"), "{err}");
    assert!(out.contains(r#""committed": false"#), "{out}");
    let (ok, out, err) = run(&["excel", "import", path, "--mode", "skip_invalid"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(r#""inserted": 2"#), "{out}");
    let (ok, _, err) = run(&["excel", "import", path, "--mode", "sometimes"]);
    assert!(
        !ok && err.contains("expected all_or_nothing or skip_invalid"),
        "{err}"
    );

    let exported = dir.path().join("out.xlsx");
    let (ok, out, err) = run(&["excel", "export", "--out", exported.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("exported 2 users"), "{err}");
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&exported).unwrap();
    use calamine::Reader;
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let names: Vec<String> = sheet.rows().skip(1).map(|r| r[1].to_string()).collect();
    assert_eq!(names, ["cliuser01", "cliuser02"]);
}

/// The upload page in Debian's headless Chromium: sign in, pick a workbook, import it, export
/// (scripts/excel-page-check.py drives it over the DevTools protocol with real clicks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_page_imports_and_exports_in_a_browser() {
    let app = spawn_app_with(&[]).await;
    seed_user_in(&app.module, "pagecheck1", "abc12345").await;
    grant_admin(&app.module, "pagecheck1").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.xlsx");
    let rows = vec![
        vec!["pageuser01", "1"],
        vec!["pageuser02", "2"],
        vec!["pageuser03", "0"],
    ];
    std::fs::write(&file, workbook(&["用户名", "性别"], &rows)).unwrap();
    let chromium = crate::helpers::browser();
    let python = python_venv("socket", &[crate::helpers::WEBSOCKETS_PIN]);
    let page = format!("{}/excel/import_index", app.address);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(manifest_dir().join("scripts/excel-page-check.py"))
            .arg(page)
            .args(["pagecheck1", "abc12345"])
            .arg(&file)
            .arg("3")
            .env("CHROMIUM", chromium)
            .output()
            .expect("the page check runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "excel-page-check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all_users(&app).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_count_against_the_running_imports_limit() {
    let app = spawn_app_with(&[("APP__EXCEL__MAX_RUNNING_IMPORTS", "1".to_owned())]).await;
    let token = token(&app, "importer9").await;
    // An upload that sends its start and then stalls holds the one place while it arrives.
    let start_slow = || {
        let (gate, stalled) = tokio::sync::oneshot::channel::<()>();
        let head = futures_util::stream::once(async { Ok::<_, std::io::Error>(vec![b'P'; 1024]) });
        let rest = futures_util::stream::once(async move {
            let _ = stalled.await;
            Err::<Vec<u8>, _>(std::io::Error::other("the client gave up"))
        });
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(
            futures_util::StreamExt::chain(head, rest),
        ))
        .file_name("slow.xlsx");
        let request = app
            .client
            .post(format!("{}/excel/import", app.address))
            .header("Authorization", &token)
            .multipart(reqwest::multipart::Form::new().part("uploadFile", part));
        (gate, tokio::spawn(async move { request.send().await }))
    };
    let good = workbook(&["用户名", "性别"], &[vec!["someone1", "1"]]);
    let (mut gate, mut slow) = start_slow();
    let mut refused = None;
    for _ in 0..100 {
        // Give the slow upload time to reach the handler and take the place; one that met a
        // probe below holding it was refused itself and ended: start another.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if slow.is_finished() {
            (gate, slow) = start_slow();
            continue;
        }
        let res = upload(&app, &token, "", good.clone()).await;
        if res.status() == 503 {
            refused = Some(res.json::<Value>().await.unwrap());
            break;
        }
        assert_eq!(res.status(), 200, "before the slow upload took the place");
    }
    let body = refused.expect("the second upload is refused while the first arrives");
    let message = assert_envelope(&body, "10009");
    assert!(message.contains("excel.max_running_imports"), "{message}");
    // The stalled client gives up: its place comes back.
    drop(gate);
    let _ = slow.await;
    let mut answered = 0;
    for _ in 0..100 {
        answered = upload(&app, &token, "", good.clone())
            .await
            .status()
            .as_u16();
        if answered == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(answered, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_lists_at_most_max_reported_errors_and_counts_all() {
    let app = spawn_app_with(&[("APP__EXCEL__MAX_REPORTED_ERRORS", "2".to_owned())]).await;
    let token = token(&app, "importer10").await;
    let rows: Vec<Vec<&str>> = vec![
        vec!["bad1", "1"],
        vec!["fineuser1", "1"],
        vec!["bad2", "1"],
        vec!["bad3", "9"],
        vec!["bad4", "1"],
    ];
    let report = ok_report(
        upload(
            &app,
            &token,
            "?mode=skip_invalid",
            workbook(&["用户名", "性别"], &rows),
        )
        .await,
    )
    .await;
    assert_eq!(report["invalid"], 4, "{report}");
    assert_eq!(report["inserted"], 1, "{report}");
    assert_eq!(report["errors"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["errors_truncated"], true, "{report}");
    assert_eq!(report["errors"][0]["row"], 2);
    assert_eq!(report["errors"][1]["row"], 4);
}

/// On MariaDB a running job's progress is stored as it goes: the socket app (on the same
/// database) pushes `running` frames with rows read before the `done` one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb_a_background_jobs_progress_is_pushed_while_it_runs() {
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let dsn = fresh_mysql_database(&server).await;
    let shared = tempfile::tempdir().unwrap();
    let common = [
        ("APP__DATABASE__DRIVER", "mysql".to_owned()),
        ("APP__DATABASE__MIGRATE_ON_START", "true".to_owned()),
        ("APP__MYSQL__DSN", dsn),
        (
            "APP__CERTS__DIR",
            shared.path().join("certs").display().to_string(),
        ),
    ];
    let mut http = common.to_vec();
    http.push(("APP__EXCEL__ASYNC_ROWS", "1000".to_owned()));
    // 150,000 new users: past the default hourly allowance of one admin.
    http.push(("APP__EXCEL__MAX_CREATED_PER_HOUR", "1000000".to_owned()));
    let app = spawn_app_with(&http).await;
    let mut socket = common.to_vec();
    socket.push(("APP__EXCEL__PROGRESS_POLL_INTERVAL", "100ms".to_owned()));
    let socket = crate::socket::spawn_socket(&socket).await;
    let token = token(&app, "importer11").await;
    let mut ws = crate::socket::connect_with(&socket.url(), &[("authorization", &token)])
        .await
        .unwrap();
    let names: Vec<String> = (0..150_000).map(|i| format!("progress{i:06}")).collect();
    let rows: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str(), "1"]).collect();
    let res = upload(&app, &token, "", workbook(&["用户名", "性别"], &rows)).await;
    assert_eq!(res.status(), 202);
    let mut progressed = 0;
    let done = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let frame = crate::socket::next_json(&mut ws).await;
            if frame["type"] != "import" {
                continue;
            }
            let job = &frame["job"];
            if job["status"] == "running" {
                if job["rows"].as_u64().unwrap_or(0) > 0 {
                    progressed += 1;
                }
                continue;
            }
            return frame;
        }
    })
    .await
    .expect("the end is pushed");
    assert_eq!(done["job"]["status"], "done", "{done}");
    assert_eq!(done["job"]["report"]["inserted"], 150_000);
    assert!(progressed >= 1, "progress was pushed while the job ran");
    drop(ws);
    socket.shut_down().await.unwrap();
}

/// Issue 22, attack 3 at test scale: an import's passwords were hashed on the login slots inside
/// its transaction: every core busy and SQLite's write lock held, so logins answered 503.
/// 100,000 rows, 100 of them with a 密码 (at the OWASP argon2 cost, seconds of hashing on
/// `excel.password_hash_slots` 1), and logins on one slot of their own (`auth.hash_concurrency`
/// 1): logins fired all along succeed; some start and end within the hashing phase (no lock is
/// held then), and those of the write phase wait for SQLite's one writer and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_succeed_while_a_large_import_hashes_and_writes() {
    let app = spawn_app_with(&[
        ("APP__AUTH__HASH_CONCURRENCY", "1".to_owned()),
        ("APP__EXCEL__ASYNC_ROWS", "1000".to_owned()),
        // SQLite has one writer: a login's write waits for the import's write phase to end
        // (4-10 s in a debug build on a loaded machine). The wait is what the abuse benchmark
        // measures; here it must not be a failure.
        ("APP__SQLITE__BUSY_TIMEOUT", "60s".to_owned()),
        ("APP__DATABASE__QUERY_TIMEOUT", "60s".to_owned()),
    ])
    .await;
    let token = token(&app, "importer12").await;
    seed_user_in(&app.module, "loginduring", "abc12345").await;
    let names: Vec<String> = (0..100_000).map(|i| format!("bulk{i:07}")).collect();
    let rows: Vec<Vec<&str>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let password = if i % 1000 == 0 { "abc12345" } else { "" };
            vec![name.as_str(), "1", password]
        })
        .collect();
    let file = workbook(&["用户名", "性别", "密码"], &rows);
    let res = upload(&app, &token, "", file).await;
    assert_eq!(res.status(), 202, "a background job");
    let job: Value = res.json().await.unwrap();
    let id = job["data"]["id"].as_str().unwrap().to_owned();

    // Logins, one after another, all along; each with when it started and ended.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins = {
        let (module, stop) = (app.module.clone(), stop.clone());
        tokio::spawn(async move {
            let auth: &dyn AuthService = module.resolve_ref();
            let mut made = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let form = serde_json::from_value(
                    serde_json::json!({"username": "loginduring", "password": "abc12345"}),
                )
                .unwrap();
                let start = std::time::Instant::now();
                let outcome = auth.login(form, "127.0.0.1").await;
                made.push((
                    start,
                    std::time::Instant::now(),
                    outcome.map(drop).map_err(|e| e.to_string()),
                ));
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            made
        })
    };
    // The phases as the job shows them: hashing (every row read, none written), writing.
    let started = std::time::Instant::now();
    let (mut hashing, mut writing) = (None, None);
    let done = loop {
        let (status, view) =
            crate::helpers::get_with(&app, &format!("/excel/import/{id}"), &token).await;
        assert_eq!(status, 200, "{view}");
        let view = &view["data"];
        let now = std::time::Instant::now();
        match (
            view["status"].as_str(),
            view["rows"].as_u64(),
            view["written"].as_u64(),
        ) {
            (Some("running"), Some(100_000), Some(0)) => {
                hashing.get_or_insert(now);
            }
            (Some("running"), _, Some(w)) if w > 0 => {
                writing.get_or_insert(now);
            }
            (Some("running"), _, _) => {}
            (Some("done"), _, _) => break now,
            other => panic!("the import failed: {other:?} {view}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the import ends"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = logins.await.unwrap();
    let (hashing, writing) = (
        hashing.expect("the hashing phase was seen"),
        writing.expect("the write phase was seen"),
    );
    eprintln!(
        "check {:?}, hashing {:?}, writing {:?}",
        hashing - started,
        writing - hashing,
        done - writing
    );
    assert!(
        made.iter().all(|(_, _, outcome)| outcome.is_ok()),
        "every login succeeded: {made:?}"
    );
    let overlapping = |from: std::time::Instant, to: std::time::Instant| {
        made.iter()
            .filter(|(start, end, _)| *start < to && *end > from)
            .count()
    };
    let within_hashing = made
        .iter()
        .filter(|(start, end, _)| *start >= hashing && *end <= writing)
        .count();
    assert!(
        within_hashing > 0,
        "logins start and end while the import hashes (the write lock is not held)"
    );
    assert!(overlapping(writing, done) > 0, "logins while writing");
    assert_eq!(all_users(&app).await.len(), 100_000 + 2);
    assert!(
        login(&app, "bulk0001000", "abc12345").await.is_some(),
        "an imported password works"
    );
}

/// New users count against the importing admin's `excel.max_created_per_hour` (test scale: 10):
/// two imports of 6 new names each, at once → exactly one is written, the other refused with
/// 429 / 10008 and nothing of it written; existing names (updates) cost nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_are_held_to_the_admins_hourly_creations_in_parallel() {
    let app = spawn_app_with(&[("APP__EXCEL__MAX_CREATED_PER_HOUR", "10".to_owned())]).await;
    let token = token(&app, "importer13").await;
    let batch = |prefix: &str| {
        let names: Vec<String> = (0..6).map(|i| format!("{prefix}{i:04}")).collect();
        let rows: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str(), "1"]).collect();
        workbook(&["用户名", "性别"], &rows)
    };
    let (a, b) = tokio::join!(
        upload(&app, &token, "", batch("budgeta")),
        upload(&app, &token, "", batch("budgetb"))
    );
    let mut statuses = vec![a.status().as_u16(), b.status().as_u16()];
    let bodies: Vec<Value> = vec![a.json().await.unwrap(), b.json().await.unwrap()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429], "{bodies:?}");
    let refused = bodies.iter().find(|b| b.get("error").is_some()).unwrap();
    assert_envelope(refused, "10008");
    // The importer and the 6 of the import that went in.
    assert_eq!(all_users(&app).await.len(), 7);
    // Updating the same 6 creates nobody: allowed; 5 new ones would make 11: refused.
    let written = if bodies[0].get("error").is_none() {
        "budgeta"
    } else {
        "budgetb"
    };
    let report = ok_report(upload(&app, &token, "?on_existing=update", batch(written)).await).await;
    assert_eq!(report["updated"], 6);
    let names: Vec<String> = (0..5).map(|i| format!("budgetc{i:04}")).collect();
    let rows: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str(), "1"]).collect();
    let res = upload(&app, &token, "", workbook(&["用户名", "性别"], &rows)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(all_users(&app).await.len(), 7);
}

//! The request id reaches everything a user could quote: every error envelope (`request_id`,
//! equal to the `X-Request-Id` header) and every log record made while the request is served,
//! the services' own included.

use serde_json::{Value, json};

use crate::helpers::{assert_envelope, spawn_app, spawn_logged};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_envelope_carries_the_request_id() {
    let app = spawn_app().await;
    let cases = [
        app.get("/nope").await,
        app.get("/hello?id=abc").await,
        app.get("/home").await,
        app.client
            .delete(format!("{}/hello", app.address))
            .send()
            .await
            .unwrap(),
        app.client
            .post(format!("{}/auth/login", app.address))
            .header("X-Request-Id", "quote-me-42")
            .json(&json!({"username": "nobody01", "password": "wrong123"}))
            .send()
            .await
            .unwrap(),
    ];
    for res in cases {
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert!(status >= 400, "{body}");
        assert_eq!(
            body["error"]["request_id"],
            header.as_str(),
            "{status}: {body}"
        );
    }
    // A client's own id is kept and quoted back.
    let res = app
        .client
        .get(format!("{}/nope", app.address))
        .header("X-Request-Id", "mine-7")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_envelope(&body, "10005");
    assert_eq!(body["error"]["request_id"], "mine-7");
    // Successes are unchanged.
    let (status, body) = app.get_json("/hello").await;
    assert_eq!(status, 200);
    assert!(body.get("request_id").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_record_of_a_request_carries_its_id() {
    let app = spawn_logged(&[]).await;
    let res = app
        .client
        .post(format!("{}/auth/login", app.address))
        .header("X-Request-Id", "trace-me-1")
        .json(&json!({"username": "nobody01", "password": "wrong123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // The access record is written after the response: wait for it.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let records = loop {
        let records: Vec<_> = app
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.get("request_id").is_some_and(|id| id == "trace-me-1"))
            .cloned()
            .collect();
        if records.iter().any(|r| r["msg"] == "request") || std::time::Instant::now() > until {
            break records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let messages: Vec<&str> = records.iter().map(|r| r["msg"].as_str()).collect();
    // The service's warning, the rejected request and the access record: one id throughout.
    for expected in ["login failed", "request rejected", "request"] {
        assert!(
            messages.contains(&expected),
            "{expected} missing: {records:?}"
        );
    }
    // Records made outside any request carry none.
    let all = app.records.lock().unwrap();
    let startup = all
        .iter()
        .find(|r| r["msg"] == "http server listening")
        .expect("the start-up record");
    assert!(startup.get("request_id").is_none(), "{startup:?}");
}

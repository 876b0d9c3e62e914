//! Body and query binding with the original's validation rules, over the wire.

use serde_json::json;

use crate::helpers::{assert_envelope, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_json_and_form_bodies_pass() {
    let app = spawn_app().await;
    let url = format!("{}/debug/validate", app.address);
    let res = app
        .client
        .post(&url)
        .json(&json!({"username": "alice01", "password": "abc123", "gender": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, json!({"username": "alice01", "gender": 2}));
    let res = app
        .client
        .post(&url)
        .form(&[("username", "alice01"), ("password", "abc123")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fields_are_400_with_code_10000_naming_the_field() {
    let app = spawn_app().await;
    let url = format!("{}/debug/validate", app.address);
    let cases = [
        (json!({"username": "al", "password": "abc123"}), "username"),
        (
            json!({"username": "alice01", "password": "abcdef"}),
            "password",
        ),
        (
            json!({"username": "alice01", "password": "abc123", "gender": 9}),
            "gender",
        ),
        (json!({"username": "alice01"}), "password"),
        (json!({"username": 5, "password": "abc123"}), "username"),
    ];
    for (body, field) in cases {
        let res = app.client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 400, "{body}");
        let message = assert_envelope(&res.json().await.unwrap(), "10000");
        assert!(message.starts_with("参数错误: "), "{message}");
        assert!(message.contains(field), "{body} -> {message}");
    }
    let res = app
        .client
        .post(&url)
        .header("Content-Type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_envelope(&res.json().await.unwrap(), "10000");

    let (status, body) = app.get_json("/hello?id=abc").await;
    assert_eq!(status, 400);
    assert!(assert_envelope(&body, "10000").contains("id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_with_code_10007() {
    let app = spawn_app_with(&[("APP__SERVER__HTTP__MAX_BODY_SIZE", "64".into())]).await;
    let url = format!("{}/debug/validate", app.address);
    let big = json!({"username": "alice01", "password": "abc123", "pad": "x".repeat(200)});
    let res = app.client.post(&url).json(&big).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 413);
    assert_envelope(&res.json().await.unwrap(), "10007");
}

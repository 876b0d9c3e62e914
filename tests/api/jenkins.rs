//! `/jenkins/*` (docs/jenkins.md) against the Jenkins API double (`tests/jenkins/jenkins_double.py`,
//! which enforces basic auth and CSRF crumbs as Jenkins does), and with Jenkins down or not
//! configured.

use std::process::Child;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_envelope, eventually, free_port, grant_admin, manifest_dir, seed_user_in,
    spawn_app_with, spawn_double, tokens,
};

const USER: &str = "goexample";
pub(crate) const TOKEN: &str = "11a1b2c3d4e5f60718293a4b5c6d7e8f90";
pub(crate) const ADMIN: &str = "jenkinsadmin01";

/// The double, stopped when dropped.
pub struct JenkinsDouble {
    child: Child,
    pub url: String,
}

impl Drop for JenkinsDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl JenkinsDouble {
    pub fn start(extra: &[&str]) -> Self {
        let mut args = vec!["--port", "0", "--user", USER, "--token", TOKEN];
        args.extend(["--seed-job", "go-test", "--exit-on-stdin-eof"]);
        args.extend(extra);
        let (child, url) = spawn_double("tests/jenkins/jenkins_double.py", &args);
        Self { child, url }
    }
}

/// The app on the double (`ADMIN` is made an admin by [`sign_in`]).
pub fn jenkins_overrides(host: &str, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("APP__JENKINS__HOST", host.to_owned()),
        ("APP__JENKINS__USERNAME", USER.to_owned()),
        ("APP__JENKINS__PASSWORD", token.to_owned()),
        ("APP__JENKINS__CONNECT_TIMEOUT", "500ms".to_owned()),
        ("APP__JENKINS__REQUEST_TIMEOUT", "3s".to_owned()),
    ]
}

/// A signed-in user's access token (`Bearer ...`); `ADMIN` gets the admin role first.
pub(crate) async fn sign_in(app: &TestApp, name: &str) -> String {
    seed_user_in(&app.module, name, "abc123").await;
    if name == ADMIN {
        grant_admin(&app.module, name).await;
    }
    let res = app
        .client
        .post(format!("{}/auth/login", app.address))
        .json(&json!({"username": name, "password": "abc123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    tokens(&res.json().await.unwrap()).0
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header("Authorization", token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    call(app, reqwest::Method::GET, path, token, None).await
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(app, reqwest::Method::POST, path, token, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_shows_go_tests_last_build_log_to_admins_only() {
    let double = JenkinsDouble::start(&[]);
    let app = spawn_app_with(&jenkins_overrides(&double.url, TOKEN)).await;
    let admin = sign_in(&app, ADMIN).await;
    let (status, body) = get(&app, "/jenkins/index", &admin).await;
    assert_eq!(status, 200, "{body}");
    let log = body["data"]["log"].as_str().unwrap();
    assert!(log.contains("hello go_example"), "{log}");
    assert!(log.contains("Finished: SUCCESS"), "{log}");
    assert_eq!(
        body["data"].as_object().unwrap().len(),
        1,
        "the original's shape"
    );

    // Not an admin, on every route with valid input: 403 / 10011; no token: 401 / 10010.
    // Neither reaches Jenkins.
    let other = sign_in(&app, "jenkinsuser01").await;
    use reqwest::Method;
    let routes: [(Method, &str, Option<Value>); 11] = [
        (Method::GET, "/jenkins/index", None),
        (Method::GET, "/jenkins/log?job=go-test", None),
        (Method::GET, "/jenkins/queue", None),
        (Method::DELETE, "/jenkins/queue/1", None),
        (Method::DELETE, "/jenkins/queue", None),
        (Method::GET, "/jenkins/jobs", None),
        (Method::GET, "/jenkins/job?name=go-test", None),
        (
            Method::POST,
            "/jenkins/folders",
            Some(json!({"name": "team"})),
        ),
        (
            Method::POST,
            "/jenkins/jobs",
            Some(json!({"folder": "team", "name": "deploy"})),
        ),
        (
            Method::POST,
            "/jenkins/job/rename",
            Some(json!({"name": "go-test", "new_name": "go-test2"})),
        ),
        (
            Method::POST,
            "/jenkins/job/build",
            Some(json!({"name": "go-test"})),
        ),
    ];
    for (method, path, body) in routes {
        let (status, answer) = call(&app, method.clone(), path, &other, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_envelope(&answer, "10011");
    }
    let res = app
        .client
        .get(format!("{}/jenkins/index", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_envelope(&res.json().await.unwrap(), "10010");

    // The same log in pages: the paged route says where the next one starts.
    let (status, page) = get(&app, "/jenkins/log?job=go-test", &admin).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"]["log"], log);
    assert_eq!(page["data"]["build"], 1);
    assert_eq!(page["data"]["more"], false);
    let next = page["data"]["next_start"].as_u64().unwrap();
    assert_eq!(next as usize, log.len());
    let (_, rest) = get(
        &app,
        &format!("/jenkins/log?job=go-test&start={next}"),
        &admin,
    )
    .await;
    assert_eq!(rest["data"]["log"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_queue_cancel_status_and_console_paging() {
    let double = JenkinsDouble::start(&["--build-duration", "0.6"]);
    let app = spawn_app_with(&jenkins_overrides(&double.url, TOKEN)).await;
    let admin = sign_in(&app, ADMIN).await;

    // The seeded job: last build #1 succeeded.
    let (status, body) = get(&app, "/jenkins/job?name=go-test", &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], 1);
    assert_eq!(body["data"]["next_build_number"], 2);
    assert_eq!(body["data"]["last_build"], 1);

    // Two builds held in the queue (Jenkins's `delay`), listed, one cancelled, then the rest.
    let mut queued = Vec::new();
    for value in ["a", "b"] {
        let (status, body) = post(
            &app,
            "/jenkins/job/build",
            &admin,
            json!({"name": "go-test", "params": {"params1": value, "delay": "60sec"}}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        queued.push(body["data"]["queue_id"].as_u64().unwrap());
    }
    let (_, body) = get(&app, "/jenkins/queue", &admin).await;
    let ids: Vec<u64> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, queued, "{body}");
    assert_eq!(body["data"]["items"][0]["job"], "go-test");
    let (status, body) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/jenkins/queue/{}", queued[0]),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["cancelled"], json!([queued[0]]));
    let (status, body) = call(
        &app,
        reqwest::Method::DELETE,
        "/jenkins/queue",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["cancelled"], json!([queued[1]]));
    let (_, body) = get(&app, "/jenkins/queue", &admin).await;
    assert_eq!(body["data"]["items"], json!([]));
    // Cancelling what is gone: Jenkins's 404 is ours.
    let (status, body) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/jenkins/queue/{}", queued[0] + 1000),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_envelope(&body, "10005");

    // A build whose console is followed page by page while it runs.
    let (status, body) = post(
        &app,
        "/jenkins/job/build",
        &admin,
        json!({"name": "go-test", "params": {"params1": "c", "log_lines": "6"}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        eventually(Duration::from_secs(10), async || {
            let (_, body) = get(&app, "/jenkins/job?name=go-test", &admin).await;
            body["data"]["last_build"] == 2
        })
        .await,
        "build #2 started"
    );

    let mut text = String::new();
    let mut start = 0;
    let mut pages = 0;
    loop {
        let (status, page) = get(
            &app,
            &format!("/jenkins/log?job=go-test&build=2&start={start}"),
            &admin,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        text.push_str(page["data"]["log"].as_str().unwrap());
        start = page["data"]["next_start"].as_u64().unwrap();
        pages += 1;
        if page["data"]["more"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.ends_with("Finished: SUCCESS\n"),
        "{pages} pages: {text}"
    );
    assert!(pages > 1, "the running build was read in pages: {text}");

    // Status 2 for a job whose last build failed, 0 for one never built (jobs made with the
    // client itself: the app creates only the template's job).
    let client = goex_jenkins::JenkinsClient::new(&goex_jenkins::JenkinsSettings::new(
        &double.url,
        USER,
        TOKEN,
    ))
    .unwrap();
    let failing = std::fs::read_to_string(manifest_dir().join("assets/jenkins/job.xml"))
        .unwrap()
        .replace("echo \"hello go_example, params1=$params1\"", "exit 1");
    client.create_job("broken", &failing).await.unwrap();
    client.create_job("idle", &failing).await.unwrap();
    let (status, _) = post(
        &app,
        "/jenkins/job/build",
        &admin,
        json!({"name": "broken"}),
    )
    .await;
    assert_eq!(status, 202);
    assert!(
        eventually(Duration::from_secs(10), async || {
            let (_, body) = get(&app, "/jenkins/job?name=broken", &admin).await;
            body["data"]["status"] == 2
        })
        .await,
        "the failed build is status 2"
    );
    let (_, body) = get(&app, "/jenkins/jobs", &admin).await;
    let mut jobs = body["data"]["jobs"].as_array().unwrap().clone();
    jobs.sort_by_key(|j| j["name"].as_str().unwrap().to_owned());
    assert_eq!(
        jobs,
        [
            json!({"name": "broken", "status": 2}),
            json!({"name": "go-test", "status": 1}),
            json!({"name": "idle", "status": 0}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_jobs_from_the_template_renames_and_what_jenkins_said() {
    let double = JenkinsDouble::start(&["--build-duration", "0.2"]);
    let app = spawn_app_with(&jenkins_overrides(&double.url, TOKEN)).await;
    let admin = sign_in(&app, ADMIN).await;

    let (status, body) = post(
        &app,
        "/jenkins/folders",
        &admin,
        json!({"name": "team/service"}),
    )
    .await;
    assert_eq!(status, 201, "parents made too: {body}");
    let (status, body) = post(
        &app,
        "/jenkins/folders",
        &admin,
        json!({"name": "team/service"}),
    )
    .await;
    assert_eq!(status, 400, "Jenkins refused the caller's request: {body}");
    let message = assert_envelope(&body, "10000");
    assert!(
        message.contains("jenkins: ") && message.contains("already exists"),
        "{message}"
    );

    let (status, body) = post(
        &app,
        "/jenkins/jobs",
        &admin,
        json!({"folder": "team/service", "name": "deploy"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["name"], "team/service/deploy");
    // The original's rename by full path.
    let (status, body) = post(
        &app,
        "/jenkins/job/rename",
        &admin,
        json!({"name": "team/job/service/job/deploy", "new_name": "deploy2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "team/service/deploy2");
    let (status, body) = get(&app, "/jenkins/job?name=team/service/deploy", &admin).await;
    assert_eq!(status, 404, "the old name is gone: {body}");
    assert_envelope(&body, "10005");

    // The template's parameter reaches the build.
    let (status, body) = post(
        &app,
        "/jenkins/job/build",
        &admin,
        json!({"name": "team/service/deploy2", "params": {"params1": "from-the-test"}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        eventually(Duration::from_secs(10), async || {
            let (_, body) = get(&app, "/jenkins/job?name=team/service/deploy2", &admin).await;
            body["data"]["status"] == 1
        })
        .await
    );
    let (_, page) = get(&app, "/jenkins/log?job=team/service/deploy2", &admin).await;
    let log = page["data"]["log"].as_str().unwrap();
    assert!(
        log.contains("hello go_example, params1="),
        "the template's step: {log}"
    );
    // The build got the parameter (read from Jenkins itself).
    let build: Value = reqwest::Client::new()
        .get(format!(
            "{}/job/team/job/service/job/deploy2/1/api/json",
            double.url
        ))
        .basic_auth(USER, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parameters = build["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.get("parameters"))
        .unwrap();
    assert!(
        parameters
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "params1" && p["value"] == "from-the-test"),
        "{parameters}"
    );
    // A never-built job has no last build log.
    post(
        &app,
        "/jenkins/jobs",
        &admin,
        json!({"folder": "team", "name": "idle"}),
    )
    .await;
    let (status, body) = get(&app, "/jenkins/index?job=team/idle", &admin).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_down_unconfigured_or_refusing_is_an_error_code_never_an_empty_log() {
    // Down: the app starts anyway and answers 503 / 10004 quickly.
    let down = spawn_app_with(&jenkins_overrides(
        &format!("http://127.0.0.1:{}", free_port()),
        TOKEN,
    ))
    .await;
    let admin = sign_in(&down, ADMIN).await;
    let started = std::time::Instant::now();
    let (status, body) = get(&down, "/jenkins/index", &admin).await;
    assert_eq!(status, 503, "{body}");
    assert!(assert_envelope(&body, "10004").contains("jenkins"));
    assert!(started.elapsed() < Duration::from_secs(3));

    // Not configured (the default): the same.
    let mut o = jenkins_overrides("", TOKEN);
    o.retain(|(k, _)| *k != "APP__JENKINS__HOST");
    let none = spawn_app_with(&o).await;
    let admin = sign_in(&none, ADMIN).await;
    let (status, body) = get(&none, "/jenkins/jobs", &admin).await;
    assert_eq!(status, 503, "{body}");
    assert_envelope(&body, "10004");

    // The wrong token: Jenkins's 401 is the app's 502 / 10003, saying so.
    let double = JenkinsDouble::start(&[]);
    let refused = spawn_app_with(&jenkins_overrides(&double.url, "not-the-token")).await;
    let admin = sign_in(&refused, ADMIN).await;
    let (status, body) = get(&refused, "/jenkins/index", &admin).await;
    assert_eq!(status, 502, "{body}");
    assert!(assert_envelope(&body, "10003").contains("credentials"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_10000_before_jenkins_is_asked() {
    let double = JenkinsDouble::start(&[]);
    let app = spawn_app_with(&jenkins_overrides(&double.url, TOKEN)).await;
    let admin = sign_in(&app, ADMIN).await;
    for path in [
        "/jenkins/log?build=0",
        "/jenkins/log?start=-1",
        "/jenkins/job",
        "/jenkins/job?name=",
        "/jenkins/index?job=a%0Ab",
        "/jenkins/index?nope=1",
    ] {
        let (status, body) = get(&app, path, &admin).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_envelope(&body, "10000");
    }
    for (path, body) in [
        ("/jenkins/folders", json!({"name": ""})),
        ("/jenkins/jobs", json!({"folder": "a"})),
        (
            "/jenkins/job/rename",
            json!({"name": "a", "new_name": "x\u{7}"}),
        ),
        (
            "/jenkins/job/build",
            json!({"name": "go-test", "params": {"a": 1}}),
        ),
        ("/jenkins/folders", json!({"name": "a/../b"})),
    ] {
        let (status, answer) = post(&app, path, &admin, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_envelope(&answer, "10000");
    }
    let (status, body) = call(
        &app,
        reqwest::Method::DELETE,
        "/jenkins/queue/abc",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

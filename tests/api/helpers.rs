//! `spawn_app` and friends (zero2prod style).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
use go_example::assembly::AppModule;
use go_example::cmd::http::Application;
use go_example::meta::config::AppConfig;
use goex_config::Profile;
use serde_json::Value;
use tempfile::TempDir;

/// A running application and what tests need to talk to it.
pub struct TestApp {
    pub address: String,
    pub module: Arc<AppModule>,
    pub client: reqwest::Client,
    pub pprof_port: Option<u16>,
    pub metrics_port: Option<u16>,
    handle: ServerHandle,
    _dir: TempDir,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }
}

impl TestApp {
    /// Stops the server through its handle, as `Drop` does, and waits for it to stop.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop without waiting: the runtime of the test is going away.
        drop(handle.stop(false));
    }
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test profile with `overrides` (dotted-key-free env form, e.g. `APP__SERVER__MODE`).
pub fn test_config(overrides: &[(&str, String)]) -> AppConfig {
    let vars: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let loaded = goex_config::load_with_vars::<AppConfig>(
        &manifest_dir().join("configs"),
        Profile::Test,
        vars,
    )
    .expect("test config loads");
    loaded
        .settings
        .check(Profile::Test)
        .expect("test config is valid");
    loaded.settings
}

/// The application on the embedded default (a fresh SQLite file).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// The application with extra overrides, on a free port and a fresh SQLite file.
pub async fn spawn_app_with(extra: &[(&str, String)]) -> TestApp {
    spawn_app_adjusted(extra, |_| {}).await
}

/// [`spawn_app_with`], with the loaded configuration adjusted by `adjust` before the app is
/// built (for settings an environment variable cannot spell, such as map keys' case).
pub async fn spawn_app_adjusted(
    extra: &[(&str, String)],
    adjust: impl FnOnce(&mut AppConfig),
) -> TestApp {
    spawn_app_customized(extra, adjust, |_| Box::new(|builder, _| builder)).await
}

/// [`spawn_app_adjusted`], with the module changed before it is built by what `customize`
/// makes of the final configuration (a component in place of the assembled one).
pub async fn spawn_app_customized(
    extra: &[(&str, String)],
    adjust: impl FnOnce(&mut AppConfig),
    customize: impl FnOnce(&AppConfig) -> go_example::assembly::Customize<'static>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut overrides = vec![
        ("APP__SERVER__HTTP__ADDR", "127.0.0.1:0".to_owned()),
        (
            "APP__SQLITE__PATH",
            dir.path().join("app.db").display().to_string(),
        ),
        ("APP__SERVER__HTTP__WORKERS", "2".to_owned()),
        (
            "APP__CERTS__DIR",
            dir.path().join("certs").display().to_string(),
        ),
        (
            "APP__GRPC_CLIENT__TLS__DIR",
            dir.path().join("grpc-certs").display().to_string(),
        ),
    ];
    overrides.extend(extra.iter().cloned());
    let mut config = test_config(&overrides);
    adjust(&mut config);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let app = Application::build_customized(&config, Profile::Test, &logger, customize(&config))
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let module = app.module();
    let handle = app.handle();
    let pprof_port = app.pprof_port();
    let metrics_port = app.metrics_port();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        module,
        client: reqwest::Client::new(),
        pprof_port,
        metrics_port,
        handle,
        _dir: dir,
    }
}

/// The MariaDB primary from `scripts/services.sh up` (`APP__MYSQL__DSN`), or `None` with the
/// reason printed. Under `make test` (`GOEX_REQUIRE_SERVICES=1`) a missing server fails.
pub fn mysql_server_dsn() -> Option<String> {
    service_env("APP__MYSQL__DSN")
}

/// A name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// A fresh database on the MariaDB server; returns its DSN.
pub async fn fresh_mysql_database(server_dsn: &str) -> String {
    let name = unique_name("go_example_t");
    let mut conn = AsyncMysqlConnection::establish(server_dsn)
        .await
        .expect("connect to MariaDB");
    conn.batch_execute(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        .await
        .expect("create database");
    let base = server_dsn.rsplit_once('/').map_or(server_dsn, |(b, _)| b);
    format!("{base}/{name}")
}

/// The replica the services script started (`APP__MYSQL__REPLICAS__0__DSN`).
pub fn mysql_replica_dsn() -> Option<String> {
    service_env("APP__MYSQL__REPLICAS__0__DSN")
}

/// A server address the services script exported, or `None` with the reason printed (a failure
/// under `make test`).
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let why = format!(
                "{var} is not set: start the servers with `eval \"$(scripts/services.sh up)\"`"
            );
            assert!(std::env::var_os("GOEX_REQUIRE_SERVICES").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Overrides that put the app on Redis in `mode` with comma-separated `addrs`.
pub fn redis_overrides(mode: &str, addrs: &str) -> Vec<(&'static str, String)> {
    const KEYS: [&str; 6] = [
        "APP__REDIS__ADDRS__0",
        "APP__REDIS__ADDRS__1",
        "APP__REDIS__ADDRS__2",
        "APP__REDIS__ADDRS__3",
        "APP__REDIS__ADDRS__4",
        "APP__REDIS__ADDRS__5",
    ];
    let mut out = vec![
        ("APP__REDIS__ENABLED", "true".to_owned()),
        ("APP__REDIS__MODE", mode.to_owned()),
    ];
    out.extend(
        KEYS.iter()
            .zip(addrs.split(','))
            .map(|(k, a)| (*k, a.to_owned())),
    );
    out
}

/// `dsn` pointing at database `name` instead.
pub fn with_database(dsn: &str, name: &str) -> String {
    let base = dsn.rsplit_once('/').map_or(dsn, |(b, _)| b);
    format!("{base}/{name}")
}

/// Runs `scripts/services.sh <args>` (stop/start a server for failure tests).
pub fn services(args: &[&str]) {
    let status = std::process::Command::new(manifest_dir().join("scripts/services.sh"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run scripts/services.sh");
    assert!(status.success(), "scripts/services.sh {args:?}");
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check().await
}

/// The test binary's path.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_go_example"))
}

/// A command running the binary in the project folder with none of the caller's `APP__`
/// variables (`scripts/services.sh` exports them for the real servers): only what a test sets
/// configures the app it starts.
pub fn app_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(binary());
    for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("APP__")) {
        cmd.env_remove(var);
    }
    cmd.env_remove("APP_ENV").current_dir(manifest_dir());
    cmd
}

/// A user row through the repository (the registration feature comes later).
pub async fn seed_user(app: &TestApp, username: &str) -> i64 {
    use go_example::model::user::NewUser;
    use go_example::repository::mysql::user::UserRepository;
    use shaku::HasComponent;
    let users: &dyn UserRepository = app.module.resolve_ref();
    users
        .create(NewUser {
            username,
            password_hash: "$argon2id$placeholder",
            gender: 1,
        })
        .await
        .expect("seed user")
        .id
}

/// A fresh database on the MariaDB primary and its DSN on the replica, once the replica has it
/// (within `wait`), or `None` with the reason printed when the servers are not running.
pub async fn fresh_replicated_database(wait: std::time::Duration) -> Option<(String, String)> {
    let (server, replica) = (mysql_server_dsn()?, mysql_replica_dsn()?);
    let primary_dsn = fresh_mysql_database(&server).await;
    let name = primary_dsn.rsplit('/').next().unwrap().to_owned();
    let replica_dsn = with_database(&replica, &name);
    // The database reaches the replica through the binlog.
    assert!(
        eventually(wait, async || {
            AsyncMysqlConnection::establish(&replica_dsn).await.is_ok()
        })
        .await,
        "the fresh database replicates"
    );
    Some((primary_dsn, replica_dsn))
}

/// A port nothing listens on now (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The python of a venv holding `packages` from PyPI, made once per machine by
/// `scripts/python-venv.sh` (parallel tests wait for one build).
pub fn python_venv(name: &str, packages: &[&str]) -> PathBuf {
    let out = std::process::Command::new(manifest_dir().join("scripts/python-venv.sh"))
        .arg(name)
        .args(packages)
        .output()
        .expect("scripts/python-venv.sh runs");
    assert!(
        out.status.success(),
        "scripts/python-venv.sh {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A user registered through the auth service of `module` (a real argon2 hash): its id.
pub async fn seed_user_in(module: &AppModule, username: &str, password: &str) -> i64 {
    use go_example::service::auth::AuthService;
    use shaku::HasComponent;
    let auth: &dyn AuthService = module.resolve_ref();
    let form = serde_json::from_value(serde_json::json!({
        "username": username, "password": password
    }))
    .expect("a registration form");
    auth.register(form, "127.0.0.1")
        .await
        .expect("seed user")
        .id
}

/// `GET path` with an `Authorization` header: status and JSON body.
pub async fn get_with(app: &TestApp, path: &str, authorization: &str) -> (u16, Value) {
    let res = app
        .client
        .get(format!("{}{path}", app.address))
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// `method path` with an access token (`Bearer ...`, none: anonymous) and a JSON body: status and
/// JSON answer (`null` when the answer has no JSON body).
pub async fn send_json(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.address));
    if let Some(token) = token {
        req = req.header("Authorization", token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Signs `name` in over HTTP: its access token (`Bearer ...`).
pub async fn sign_in(app: &TestApp, name: &str, password: &str) -> String {
    let (status, body) = send_json(
        app,
        "POST",
        "/auth/login",
        None,
        Some(&serde_json::json!({"username": name, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "sign-in of {name}: {body}");
    tokens(&body).0
}

/// Every field of `sent` is shown as sent in `shown`.
#[allow(
    dead_code,
    reason = "for the tests `go_example generate resource` writes (docs/generator.md)"
)]
pub fn assert_shown(shown: &Value, sent: &Value) {
    for (field, value) in sent.as_object().expect("an object was sent") {
        assert_eq!(&shown[field], value, "{field} in {shown}");
    }
}

/// The `(accessToken, refreshToken)` of a login or refresh answer.
pub fn tokens(body: &Value) -> (String, String) {
    let data = &body["data"];
    (
        data["accessToken"].as_str().unwrap().to_owned(),
        data["refreshToken"].as_str().unwrap().to_owned(),
    )
}

/// Asserts the unified envelope with `code`, returning its message.
pub fn assert_envelope(body: &Value, code: &str) -> String {
    let error = &body["error"];
    assert_eq!(error["code"], code, "envelope code in {body}");
    assert_eq!(error["level"], "1", "toast level in {body}");
    for key in ["popup_title", "popup_content"] {
        assert!(error[key].is_string(), "{key} missing in {body}");
    }
    error["message"].as_str().expect("message").to_owned()
}

// ---- captured logs ----

pub type Records = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// A drain keeping every record's message and fields.
pub struct Capture(pub Records);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl slog::Serializer for Fields<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        self.0.insert(key.to_string(), val.to_string());
        Ok(())
    }

    fn emit_none(&mut self, key: slog::Key) -> slog::Result {
        self.0.insert(key.to_string(), "null".to_owned());
        Ok(())
    }
}

impl slog::Drain for Capture {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = HashMap::new();
        fields.insert("msg".to_owned(), record.msg().to_string());
        let _ = slog::KV::serialize(&record.kv(), record, &mut Fields(&mut fields));
        // The logger's own values too (the request id among them).
        let _ = slog::KV::serialize(values, record, &mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
        Ok(())
    }
}

/// The application with a logger that captures its records.
pub struct LoggedApp {
    pub address: String,
    pub module: Arc<AppModule>,
    pub client: reqwest::Client,
    pub records: Records,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

impl Drop for LoggedApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

pub async fn spawn_logged(extra: &[(&'static str, &str)]) -> LoggedApp {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = vec![
        ("APP__SERVER__HTTP__ADDR", "127.0.0.1:0".to_owned()),
        ("APP__SERVER__HTTP__ACCESS_LOG", "true".to_owned()),
        (
            "APP__SQLITE__PATH",
            dir.path().join("app.db").display().to_string(),
        ),
        ("APP__SERVER__HTTP__WORKERS", "1".to_owned()),
        (
            "APP__CERTS__DIR",
            dir.path().join("certs").display().to_string(),
        ),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let config = test_config(&vars);
    let records = Records::default();
    let logger = slog::Logger::root(Capture(records.clone()), slog::o!());
    let app = Application::build(&config, Profile::Test, &logger)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let module = app.module();
    tokio::spawn(app.run_until(std::future::pending()));
    LoggedApp {
        address,
        module,
        client: reqwest::Client::new(),
        records,
        handle,
        _dir: dir,
    }
}

impl LoggedApp {
    /// The access records of `path`, oldest first.
    pub fn access_records(&self, path: &str) -> Vec<HashMap<String, String>> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["msg"] == "request" && r.get("path").is_some_and(|p| p == path))
            .cloned()
            .collect()
    }
}

/// The `websockets` release the Python socket clients run on (tests/clients/socket_client.py).
pub const WEBSOCKETS_PIN: &str = "websockets==17.4";

/// Debian's Chromium, installed by `scripts/browser.sh` when missing; its path.
pub fn browser() -> String {
    let out = std::process::Command::new(manifest_dir().join("scripts/browser.sh"))
        .output()
        .expect("scripts/browser.sh runs");
    assert!(
        out.status.success(),
        "scripts/browser.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Starts a Python test double (`tests/sms`, `tests/jenkins`) that prints `LISTENING <port>`
/// once it accepts connections: the process and its base URL.
pub fn spawn_double(script: &str, args: &[&str]) -> (std::process::Child, String) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    spawn_double_with(std::ffi::OsStr::new("python3"), script, &args)
}

/// [`spawn_double`] on the interpreter `python` (a venv's, for a double with PyPI packages).
pub fn spawn_double_with(
    python: &std::ffi::OsStr,
    script: &str,
    args: &[&std::ffi::OsStr],
) -> (std::process::Child, String) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(python)
        .arg(manifest_dir().join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{script} starts: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("{script} said {line:?}"))
        .to_owned();
    (child, format!("http://127.0.0.1:{port}"))
}

/// Grants the admin role to the user named `username` (as `go_example users grant-admin`).
pub async fn grant_admin(module: &AppModule, username: &str) {
    use go_example::model::role::Role;
    use go_example::service::account::AccountService;
    use go_example::service::audit::Actor;
    use shaku::HasComponent;
    let accounts: &dyn AccountService = module.resolve_ref();
    accounts
        .grant(&Actor::cli(), username, Role::Admin)
        .await
        .expect("grant admin");
}

/// `go_example http --env test` in a process of its own (as `make http` beside `make grpc`),
/// on a free port: a second process on the same database, key folder or Redis as an in-process
/// app. Killed when dropped.
pub struct ProcessApp {
    pub address: String,
    pub pid: u32,
    child: std::process::Child,
    /// What it has written on stdout (its JSON log records), a line each.
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ProcessApp {
    /// Its log records so far that are JSON objects.
    pub fn records(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for ProcessApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a [`ProcessApp`] configured by `env` only (JSON logs on stdout, at info, are how
/// its port is learnt); waits up to 30 s for it to listen.
pub fn spawn_process(env: &[(&str, String)]) -> ProcessApp {
    spawn_served("http", env)
}

/// Starts `go_example <app> --env test` (`http` or `grpc`) on a free port, configured by `env`
/// only, as a [`ProcessApp`] (its address `http://127.0.0.1:<port>`).
pub fn spawn_served(app: &str, env: &[(&str, String)]) -> ProcessApp {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut cmd = app_command();
    cmd.args([app, "--env", "test"])
        .env("APP__SERVER__HTTP__ADDR", "127.0.0.1:0")
        .env("APP__SERVER__GRPC__ADDR", "127.0.0.1:0")
        .env("APP__LOG__FORMAT", "json")
        .env("APP__LOG__LEVEL", "info")
        .env("APP__LOG__FILE__ENABLED", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn go_example");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let listening = format!("{app} server listening");
    let lines = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&listening) {
                let v: Value = serde_json::from_str(&line).unwrap();
                let addr = v["addr"].as_str().unwrap().to_owned();
                let _ = tx.send(addr.rsplit(':').next().unwrap().parse::<u16>().unwrap());
            }
            kept.lock().unwrap().push(line);
        }
    });
    let pid = child.id();
    let port = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the process app listens");
    ProcessApp {
        address: format!("http://127.0.0.1:{port}"),
        pid,
        child,
        lines,
    }
}

/// `GET /metrics` of the metrics listener on `port` (a socket or gRPC app's): the text.
pub async fn scrape_port(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `GET /metrics` of the app's metrics listener: content type and text.
pub async fn scrape(app: &TestApp) -> (String, String) {
    let port = app
        .metrics_port
        .expect("the metrics listener is on in the test profile");
    let res = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, res.text().await.unwrap())
}

/// The value of `series` (labels in the exposition's order, alphabetical) read from the text
/// without the Python parser: for polling.
pub fn quick_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A `redis-server` of a test's own on `port` (no persistence), killed when dropped: for
/// tests that stop their Redis, which the shared servers must never be.
pub struct PrivateRedis(pub std::process::Child);

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a [`PrivateRedis`] on `port`.
pub fn private_redis(port: u16) -> PrivateRedis {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (scripts/services.sh installs it)");
    PrivateRedis(child)
}

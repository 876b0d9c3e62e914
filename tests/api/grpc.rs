//! The gRPC app: TLS and mTLS handshakes, per-call auth (metadata and access tokens, a
//! superseded login refused), the original's answers, `GetUser`, health, reflection, errors
//! with their envelope code, a graceful stop, and the benchmark's `bench.Burn` (served only
//! with `server.debug_routes`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use go_example::cmd::grpc::GrpcApplication;
use go_example::proto::bench::BurnRequest;
use go_example::proto::bench::burn_client::BurnClient;
use go_example::proto::hello::HelloRequest;
use go_example::proto::hello::hello_service_client::HelloServiceClient;
use go_example::proto::user::GetUserRequest;
use go_example::proto::user::user_service_client::UserServiceClient;
use go_example::service::auth::AuthService;
use goex_config::Profile;
use shaku::HasComponent;
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};

use crate::helpers::{
    get_with, manifest_dir, python_venv, seed_user_in, spawn_app_with, test_config, tokens,
};

pub(crate) struct GrpcApp {
    pub(crate) port: u16,
    pub(crate) certs: PathBuf,
    pub(crate) module: std::sync::Arc<go_example::assembly::AppModule>,
    pub(crate) stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) done: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Calls it served (authenticated, to its services).
    pub(crate) served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Its metrics listener (`metrics.grpc_addr`).
    pub(crate) metrics_port: Option<u16>,
    _dir: TempDir,
}

async fn spawn_grpc(client_auth: &str) -> GrpcApp {
    spawn_grpc_with(client_auth, &[]).await
}

pub(crate) async fn spawn_grpc_with(client_auth: &str, extra: &[(&str, String)]) -> GrpcApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_grpc_in(dir, client_auth, extra).await
}

/// [`spawn_grpc_with`] in `dir` (its certificates in `dir/grpc-certs`).
pub(crate) async fn spawn_grpc_in(
    dir: TempDir,
    client_auth: &str,
    extra: &[(&str, String)],
) -> GrpcApp {
    spawn_grpc_customized(dir, client_auth, extra, |_| Box::new(|builder, _| builder)).await
}

/// [`spawn_grpc_in`], with the module changed before it is built by what `customize` makes
/// of the configuration (a component in place of the assembled one).
pub(crate) async fn spawn_grpc_customized(
    dir: TempDir,
    client_auth: &str,
    extra: &[(&str, String)],
    customize: impl FnOnce(
        &go_example::meta::config::AppConfig,
    ) -> go_example::assembly::Customize<'static>,
) -> GrpcApp {
    let certs = dir.path().join("grpc-certs");
    let mut overrides = vec![
        ("APP__SERVER__GRPC__ADDR", "127.0.0.1:0".to_owned()),
        ("APP__SERVER__GRPC__TLS__DIR", certs.display().to_string()),
        (
            "APP__SERVER__GRPC__TLS__CLIENT_AUTH",
            client_auth.to_owned(),
        ),
        ("APP__SERVER__GRPC__SHUTDOWN_TIMEOUT", "3s".to_owned()),
        (
            "APP__SQLITE__PATH",
            dir.path().join("app.db").display().to_string(),
        ),
        (
            "APP__CERTS__DIR",
            dir.path().join("keys").display().to_string(),
        ),
    ];
    overrides.extend(extra.iter().cloned());
    let config = test_config(&overrides);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let app =
        GrpcApplication::build_customized(&config, Profile::Test, &logger, customize(&config))
            .await
            .expect("grpc app builds");
    let port = app.port();
    let module = app.module();
    let served = app.calls_served();
    let metrics_port = app.metrics_port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    GrpcApp {
        port,
        certs,
        module,
        stop: Some(stop),
        done,
        served,
        metrics_port,
        _dir: dir,
    }
}

pub(crate) fn tls(certs: &Path, with_client_cert: bool) -> ClientTlsConfig {
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("www.example.com");
    if with_client_cert {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(certs.join("client.pem")).unwrap(),
            std::fs::read(certs.join("client.key")).unwrap(),
        ));
    }
    tls
}

pub(crate) async fn channel(
    app: &GrpcApp,
    tls: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://127.0.0.1:{}", app.port))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
}

pub(crate) fn with_password<T>(message: T, password: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("user", "root".parse().unwrap());
    request
        .metadata_mut()
        .insert("password", password.parse().unwrap());
    request
}

pub(crate) fn error_code(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_hello_answers_as_the_original_with_credentials_and_refuses_without() {
    let app = spawn_grpc("request").await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let mut client = HelloServiceClient::new(channel);

    let one = client
        .say_hello(with_password(HelloRequest { id: 1 }, "root123"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((one.id, one.name.as_str()), (1, "hello world"));
    let other = client
        .say_hello(with_password(HelloRequest { id: 7 }, "root123"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((other.id, other.name.as_str()), (7, "hello gRPC"));

    let missing = client
        .say_hello(Request::new(HelloRequest { id: 1 }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(error_code(&missing), "10010");
    let wrong = client
        .say_hello(with_password(HelloRequest { id: 1 }, "root124"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let prefix = client
        .say_hello(with_password(HelloRequest { id: 1 }, "root12"))
        .await
        .unwrap_err();
    assert_eq!(prefix.code(), Code::Unauthenticated, "no prefix match");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_authenticates_until_a_newer_login_supersedes_it() {
    let app = spawn_grpc("request").await;
    seed_user_in(&app.module, "grpcuser01", "abc123").await;
    let auth: std::sync::Arc<dyn AuthService> = app.module.resolve();
    let login = |name: &'static str| {
        let auth = auth.clone();
        async move {
            let form = serde_json::from_value(serde_json::json!({
                "username": name, "password": "abc123"
            }))
            .unwrap();
            auth.login(form, "127.0.0.1").await.unwrap()
        }
    };
    let first = login("grpcuser01").await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let mut client = HelloServiceClient::new(channel);
    let call = |token: String| {
        let mut request = Request::new(HelloRequest { id: 2 });
        request
            .metadata_mut()
            .insert("authorization", token.parse().unwrap());
        request
    };
    assert!(
        client
            .say_hello(call(first.access_token.clone()))
            .await
            .is_ok()
    );
    let _second = login("grpcuser01").await;
    let superseded = client
        .say_hello(call(first.access_token))
        .await
        .unwrap_err();
    assert_eq!(superseded.code(), Code::Unauthenticated);
    assert_eq!(error_code(&superseded), "20001", "{superseded:?}");
    let garbage = client
        .say_hello(call("Bearer not.a.jwt".into()))
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_user_reads_the_user_and_maps_errors_to_status_with_the_envelope_code() {
    let app = spawn_grpc("none").await;
    let id = seed_user_in(&app.module, "grpcuser02", "abc123").await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let mut users = UserServiceClient::new(channel);
    let user = users
        .get_user(with_password(GetUserRequest { id }, "root123"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((user.id, user.username.as_str()), (id, "grpcuser02"));
    let missing = users
        .get_user(with_password(GetUserRequest { id: id + 1000 }, "root123"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(error_code(&missing), "10005");
    let bad = users
        .get_user(with_password(GetUserRequest { id: 0 }, "root123"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(error_code(&bad), "10000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_require_refuses_clients_without_a_certificate_or_with_another_ca() {
    let app = spawn_grpc("require").await;
    // With the client certificate: served.
    let channel = channel(&app, tls(&app.certs, true)).await.unwrap();
    let answer = HelloServiceClient::new(channel)
        .say_hello(with_password(HelloRequest { id: 1 }, "root123"))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().name, "hello world");

    // Without one: the handshake (or the first call on it) fails.
    let refused = match channel_and_call(&app, tls(&app.certs, false)).await {
        Ok(()) => panic!("a client without a certificate was served"),
        Err(e) => e,
    };
    assert!(!refused.is_empty());

    // A certificate from another CA: refused too.
    let other = tempfile::tempdir().unwrap();
    goex_certs::generate(other.path(), &["www.example.com".into()], 1).unwrap();
    let foreign = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(app.certs.join("ca.crt")).unwrap(),
        ))
        .domain_name("www.example.com")
        .identity(Identity::from_pem(
            std::fs::read(other.path().join("client.pem")).unwrap(),
            std::fs::read(other.path().join("client.key")).unwrap(),
        ));
    assert!(channel_and_call(&app, foreign).await.is_err());

    // A client that trusts another CA refuses the server.
    let distrust = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(other.path().join("ca.crt")).unwrap(),
        ))
        .domain_name("www.example.com");
    assert!(channel_and_call(&app, distrust).await.is_err());
}

async fn channel_and_call(app: &GrpcApp, tls: ClientTlsConfig) -> Result<(), String> {
    let channel = channel(app, tls).await.map_err(|e| format!("{e:?}"))?;
    HelloServiceClient::new(channel)
        .say_hello(with_password(HelloRequest { id: 1 }, "root123"))
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_without_credentials_and_a_stop_is_graceful() {
    let mut app = spawn_grpc("request").await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "hello.HelloService", "user.UserService"] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    app.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), &mut app.done)
        .await
        .expect("stopped within the drain timeout");
    result.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_grpcio_client_calls_say_hello_health_and_reflection_over_mtls() {
    let app = spawn_grpc("require").await;
    let out = tokio::process::Command::new(grpc_python())
        .arg(manifest_dir().join("tests/clients/grpc_client.py"))
        .arg(app.port.to_string())
        .arg(&app.certs)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["hello"],
        serde_json::json!({ "id": 1, "name": "hello world" })
    );
    assert_eq!(answer["anonymous"], "UNAUTHENTICATED");
    assert_eq!(answer["anonymous_code"], "10010");
    assert_eq!(answer["burn"], serde_json::json!({ "burned_ms": 1 }));
    assert_eq!(answer["health"], "SERVING");
    let services: Vec<&str> = answer["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for expected in [
        "grpc.health.v1.Health",
        "hello.HelloService",
        "user.UserService",
        "bench.Burn",
    ] {
        assert!(services.contains(&expected), "{services:?}");
    }
}

/// The python of the venv the Python gRPC clients run in.
fn grpc_python() -> PathBuf {
    python_venv(
        "grpc",
        &[
            "grpcio==1.85.1",
            "grpcio-health-checking==1.85.1",
            "grpcio-reflection==1.85.1",
            "protobuf==7.36.2",
        ],
    )
}

/// What `tests/clients/grpc_reflect_client.py` answers to `script` against `app`: a Python
/// grpcio client that learns the messages from reflection (the tests of generated services).
#[allow(
    dead_code,
    reason = "for the tests `go_example generate resource --grpc` writes (docs/generator.md)"
)]
pub(crate) async fn python_reflect_calls(
    app: &GrpcApp,
    script: &serde_json::Value,
) -> serde_json::Value {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(grpc_python())
        .arg(manifest_dir().join("tests/clients/grpc_reflect_client.py"))
        .arg(app.port.to_string())
        .arg(&app.certs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(script.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_made_through_the_http_app_is_checked_by_the_grpc_app_on_the_embedded_default() {
    // Two processes' worth of apps on one SQLite file and one key folder, as `make http` and
    // `make grpc` run them: the login records are in the database, not in either's memory.
    let shared = tempfile::tempdir().unwrap();
    let common = vec![
        (
            "APP__SQLITE__PATH",
            shared.path().join("app.db").display().to_string(),
        ),
        (
            "APP__CERTS__DIR",
            shared.path().join("keys").display().to_string(),
        ),
    ];
    let http = spawn_app_with(&common).await;
    let grpc = spawn_grpc_with("request", &common).await;
    let login = |http: &'static str| serde_json::json!({ "username": http, "password": "abc123" });
    let register = http
        .client
        .post(format!("{}/auth/register", http.address))
        .json(&login("crossapp01"))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status().as_u16(), 201);
    let sign_in = || async {
        let body: serde_json::Value = http
            .client
            .post(format!("{}/auth/login", http.address))
            .json(&login("crossapp01"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens(&body)
    };
    let (first, _) = sign_in().await;
    let mut client =
        HelloServiceClient::new(channel(&grpc, tls(&grpc.certs, false)).await.unwrap());
    let call = |token: &str| {
        let mut request = Request::new(HelloRequest { id: 1 });
        request
            .metadata_mut()
            .insert("authorization", token.parse().unwrap());
        request
    };
    let answer = client
        .say_hello(call(&first))
        .await
        .expect("the grpc app sees the login");
    assert_eq!(answer.into_inner().name, "hello world");

    // A newer login through the http app supersedes the first for both apps.
    let (second, _) = sign_in().await;
    let superseded = client.say_hello(call(&first)).await.unwrap_err();
    assert_eq!(error_code(&superseded), "20001");
    assert!(client.say_hello(call(&second)).await.is_ok());
    assert_eq!(get_with(&http, "/home", &first).await.0, 401);

    // Logging out through the http app ends it for the grpc app too.
    let out = http
        .client
        .post(format!("{}/auth/logout", http.address))
        .header("Authorization", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 200);
    assert_eq!(
        client.say_hello(call(&second)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_a_call_in_flight_finish_before_the_server_exits() {
    use go_example::repository::client::DatabaseClient;
    use goex_database::DbPool;
    let mut app = spawn_grpc_with(
        "request",
        &[
            ("APP__SQLITE__MAX_OPEN", "1".to_owned()),
            ("APP__DATABASE__ACQUIRE_TIMEOUT", "5s".to_owned()),
        ],
    )
    .await;
    let id = seed_user_in(&app.module, "drain0001", "abc123").await;
    let db: &dyn DatabaseClient = app.module.resolve_ref();
    let DbPool::Sqlite(pool) = db.database().pool() else {
        panic!("the embedded default is SQLite")
    };
    // The only connection, held: GetUser waits for it, in flight.
    let held = pool.get().await.unwrap();
    let mut users = UserServiceClient::new(channel(&app, tls(&app.certs, false)).await.unwrap());
    let call = tokio::spawn(async move {
        users
            .get_user(with_password(GetUserRequest { id }, "root123"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !app.done.is_finished(),
        "the server waits for the call in flight"
    );
    drop(held);
    let answer = call.await.unwrap().expect("the call in flight completed");
    assert_eq!(answer.into_inner().id, id);
    tokio::time::timeout(Duration::from_secs(5), &mut app.done)
        .await
        .expect("the server exits once the call is done")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_size_is_refused_as_out_of_range() {
    // HelloRequest{id: 1} is two bytes on the wire; {id: 0} is empty.
    let app = spawn_grpc_with(
        "request",
        &[("APP__SERVER__GRPC__MAX_MESSAGE_SIZE", "1".to_owned())],
    )
    .await;
    let mut client = HelloServiceClient::new(channel(&app, tls(&app.certs, false)).await.unwrap());
    let refused = client
        .say_hello(with_password(HelloRequest { id: 1 }, "root123"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    let small = client
        .say_hello(with_password(HelloRequest { id: 0 }, "root123"))
        .await
        .unwrap();
    assert_eq!(small.into_inner().name, "hello gRPC");
}

/// An access token of `name` (registered with password abc123 first), admin when `admin`.
pub(crate) async fn grpc_token(app: &GrpcApp, name: &str, admin: bool) -> (i64, String) {
    let id = seed_user_in(&app.module, name, "abc123").await;
    if admin {
        crate::helpers::grant_admin(&app.module, name).await;
    }
    let auth: std::sync::Arc<dyn AuthService> = app.module.resolve();
    let form = serde_json::from_value(serde_json::json!({"username": name, "password": "abc123"}))
        .unwrap();
    (
        id,
        auth.login(form, "127.0.0.1").await.unwrap().access_token,
    )
}

pub(crate) fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.parse().unwrap());
    request
}

/// Issue 22: `GetUser` answered any id to any signed-in user. Now services (the shared
/// credentials) and admins read anyone; other users only themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_user_answers_users_their_own_record_and_admins_and_services_any() {
    let app = spawn_grpc("none").await;
    let (alice, alice_token) = grpc_token(&app, "grpcalice1", false).await;
    let (bob, _) = grpc_token(&app, "grpcbob01", false).await;
    let (_, admin_token) = grpc_token(&app, "grpcadmin1", true).await;
    let mut users = UserServiceClient::new(channel(&app, tls(&app.certs, false)).await.unwrap());

    let own = users
        .get_user(with_token(GetUserRequest { id: alice }, &alice_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.username, "grpcalice1");
    // A lower role is refused someone else's record (and learns nothing of it).
    let other = users
        .get_user(with_token(GetUserRequest { id: bob }, &alice_token))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    assert_eq!(error_code(&other), "10011");
    assert!(!other.message().contains("grpcbob01"));
    for request in [
        with_token(GetUserRequest { id: bob }, &admin_token),
        with_password(GetUserRequest { id: bob }, "root123"),
    ] {
        let user = users.get_user(request).await.unwrap().into_inner();
        assert_eq!(user.username, "grpcbob01");
    }
}

/// Issue 22: 20,000 wrong passwords in 8 s on one connection went unnoticed. Now failed
/// metadata credentials count per client address like failed logins (test scale:
/// `auth.max_failures` 5): 20 wrong guesses in parallel → exactly 5 answered UNAUTHENTICATED,
/// the rest RESOURCE_EXHAUSTED, and then even the right password waits for the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_shared_password_is_throttled_per_client() {
    let app = spawn_grpc_with("none", &[("APP__AUTH__MAX_FAILURES", "5".to_owned())]).await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let calls = (0..20).map(|i| {
        let mut client = HelloServiceClient::new(channel.clone());
        async move {
            client
                .say_hello(with_password(
                    HelloRequest { id: 1 },
                    &format!("guess{i:04}"),
                ))
                .await
                .unwrap_err()
        }
    });
    let refusals = futures_util::future::join_all(calls).await;
    let count = |code: Code| refusals.iter().filter(|s| s.code() == code).count();
    assert_eq!(count(Code::Unauthenticated), 5, "{refusals:?}");
    assert_eq!(count(Code::ResourceExhausted), 15, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .filter(|s| s.code() == Code::ResourceExhausted)
            .all(|s| error_code(s) == "10008")
    );
    let mut client = HelloServiceClient::new(channel);
    let right = client
        .say_hello(with_password(HelloRequest { id: 1 }, "root123"))
        .await
        .unwrap_err();
    assert_eq!(
        right.code(),
        Code::ResourceExhausted,
        "throttled: {right:?}"
    );
    assert_eq!(
        app.served.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing reached a service"
    );
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(unix)]
async fn certs_made_on_first_start_leave_no_ca_key_in_the_runtime_folder() {
    let app = spawn_grpc("require").await;
    assert!(app.certs.join(goex_certs::CA_CERT).exists());
    assert!(
        !app.certs.join(goex_certs::CA_KEY).exists(),
        "ca.key in the runtime folder"
    );
    for key in [goex_certs::SERVER_KEY, goex_certs::CLIENT_KEY] {
        assert_eq!(mode(&app.certs.join(key)), 0o600, "{key}");
    }
    for cert in [
        goex_certs::CA_CERT,
        goex_certs::SERVER_CERT,
        goex_certs::CLIENT_CERT,
    ] {
        assert_eq!(mode(&app.certs.join(cert)), 0o644, "{cert}");
    }
    // And the set works without it: an mTLS call is served.
    channel_and_call(&app, tls(&app.certs, true)).await.unwrap();
}

/// Why the gRPC app does not start on the certificates in `certs`.
async fn grpc_start_error(dir: &Path, certs: &Path) -> String {
    let config = test_config(&[
        ("APP__SERVER__GRPC__ADDR", "127.0.0.1:0".to_owned()),
        ("APP__SERVER__GRPC__TLS__DIR", certs.display().to_string()),
        (
            "APP__SQLITE__PATH",
            dir.join("app.db").display().to_string(),
        ),
        ("APP__CERTS__DIR", dir.join("keys").display().to_string()),
    ]);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    match GrpcApplication::build(&config, Profile::Test, &logger).await {
        Ok(_) => panic!("the gRPC app started"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(unix)]
async fn certs_a_private_key_others_may_read_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("grpc-certs");
    goex_certs::ensure(&certs, 1).unwrap();
    let key = certs.join(goex_certs::SERVER_KEY);
    chmod(&key, 0o644);
    let message = grpc_start_error(dir.path(), &certs).await;
    assert!(
        message.contains(&key.display().to_string())
            && message.contains("readable by group or others")
            && message.contains("chmod 600")
            && message.contains("server.grpc.tls.dir"),
        "{message}"
    );
    // A certificate others may write: refused too (not corrected: it may have been swapped).
    chmod(&key, 0o600);
    let ca = certs.join(goex_certs::CA_CERT);
    chmod(&ca, 0o666);
    let message = grpc_start_error(dir.path(), &certs).await;
    assert!(
        message.contains(&ca.display().to_string()) && message.contains("chmod 644"),
        "{message}"
    );

    // The HTTP app's gRPC client folder: the same rule for client.key.
    chmod(&ca, 0o644);
    let client_key = certs.join(goex_certs::CLIENT_KEY);
    chmod(&client_key, 0o604);
    let config = test_config(&[
        ("APP__SERVER__HTTP__ADDR", "127.0.0.1:0".to_owned()),
        (
            "APP__SQLITE__PATH",
            dir.path().join("app.db").display().to_string(),
        ),
        (
            "APP__CERTS__DIR",
            dir.path().join("keys").display().to_string(),
        ),
        ("APP__GRPC_CLIENT__TLS__DIR", certs.display().to_string()),
    ]);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let message =
        match go_example::cmd::http::Application::build(&config, Profile::Test, &logger).await {
            Ok(_) => panic!("the HTTP app started"),
            Err(e) => format!("{e:#}"),
        };
    assert!(
        message.contains(&client_key.display().to_string())
            && message.contains("grpc_client.tls.dir"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_burns_with_credentials_and_refuses_ms_outside_1_to_100() {
    let app = spawn_grpc("none").await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let mut burn = BurnClient::new(channel.clone());
    let started = std::time::Instant::now();
    let answer = burn
        .burn(with_password(BurnRequest { ms: 20 }, "root123"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.burned_ms, 20);
    assert!(started.elapsed() >= Duration::from_millis(20));
    for bad in [0, 101] {
        let refused = burn
            .burn(with_password(BurnRequest { ms: bad }, "root123"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "ms={bad}");
        assert_eq!(error_code(&refused), "10000");
    }
    // Behind the same auth layer as every other service.
    let anonymous = burn
        .burn(Request::new(BurnRequest { ms: 1 }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let serving = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "bench.Burn".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_is_absent_without_debug_routes() {
    let app = spawn_grpc_with("none", &[("APP__SERVER__DEBUG_ROUTES", "false".to_owned())]).await;
    let channel = channel(&app, tls(&app.certs, false)).await.unwrap();
    let absent = BurnClient::new(channel.clone())
        .burn(with_password(BurnRequest { ms: 1 }, "root123"))
        .await
        .unwrap_err();
    assert_eq!(absent.code(), Code::Unimplemented, "{absent:?}");
    // The other services are served as ever, and health does not know bench.Burn.
    let hello = HelloServiceClient::new(channel.clone())
        .say_hello(with_password(HelloRequest { id: 1 }, "root123"))
        .await
        .unwrap();
    assert_eq!(hello.into_inner().name, "hello world");
    let unknown = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "bench.Burn".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

//! Registration in Consul (docs/discovery.md), against the agent double of `tests/consul/`
//! (a real agent when CONSUL_HTTP_ADDR is set): the gRPC app registers at start with the
//! original's fields, the double's real gRPC health probe over mTLS marks it passing, blocking
//! health queries follow the index, and a graceful stop deregisters.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use goex_consul::{ConsulClient, next_index};
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{manifest_dir, python_venv};

/// The double's Python packages (grpcio for its gRPC health probes), pinned.
const DOUBLE_PYTHON: &[&str] = &[
    "grpcio==1.85.1",
    "grpcio-health-checking==1.85.1",
    "grpcio-reflection==1.85.1",
];

const TOKEN: &str = "s3cr3t-acl-token";

/// A running agent double.
struct Double {
    child: Child,
    addr: String,
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the double on `port` (0: a free one), its gRPC probes trusting `certs`/ca.crt and
/// presenting the client certificate there.
fn double(certs: &std::path::Path, port: u16) -> Double {
    let python = python_venv("grpc", DOUBLE_PYTHON);
    let mut child = Command::new(python)
        .arg(manifest_dir().join("tests/consul/agent_double.py"))
        .args(["--token", TOKEN, "--port", &port.to_string()])
        .args(["--reap-every", "0.2", "--reap-floor", "0"])
        .arg("--ca")
        .arg(certs.join("ca.crt"))
        .arg("--cert")
        .arg(certs.join("client.pem"))
        .arg("--key")
        .arg(certs.join("client.key"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the double starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the double said {line:?}"));
    Double {
        child,
        addr: format!("127.0.0.1:{port}"),
    }
}

/// `check` until it gives a value, for at most `limit`.
/// Polls the passing instances of `service` until `pick` takes them.
async fn until_passing<T>(
    client: &ConsulClient,
    service: &str,
    limit: Duration,
    pick: impl Fn(&goex_consul::Healthy) -> Option<T>,
) -> T {
    until_some(limit, || async {
        let h = client
            .healthy(service, 0, Duration::from_secs(1), Duration::from_secs(2))
            .await
            .ok()?;
        pick(&h)
    })
    .await
}

async fn until_some<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < until,
            "nothing within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn agent_get(addr: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .header("X-Consul-Token", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn consul_overrides(addr: &str) -> Vec<(&'static str, String)> {
    vec![
        ("APP__CONSUL__ENABLED", "true".into()),
        ("APP__CONSUL__ADDR", addr.to_owned()),
        ("APP__CONSUL__TOKEN", TOKEN.into()),
        ("APP__CONSUL__CHECK__TIMEOUT", "2s".into()),
        ("APP__CONSUL__RETRY_INITIAL", "100ms".into()),
        ("APP__CONSUL__RETRY_MAX", "200ms".into()),
        ("APP__CONSUL__REFRESH_INTERVAL", "200ms".into()),
        ("APP__CONSUL__META__VERSION", "test".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_app_registers_passes_its_check_and_deregisters_on_shutdown() {
    // The app starts before the agent: registration is retried until the agent answers.
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("grpc-certs");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut app = crate::grpc::spawn_grpc_in(dir, "require", &consul_overrides(&addr)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let agent = double(&certs, port);
    let id = format!("hello-127.0.0.1-{}", app.port);

    let registered = until_some(Duration::from_secs(10), || async {
        let services = agent_get(&agent.addr, "/v1/agent/services").await;
        services.get(&id).cloned()
    })
    .await;
    assert_eq!(registered["Service"], "hello");
    assert_eq!(registered["Tags"], serde_json::json!(["my_grpc"]));
    assert_eq!(registered["Address"], "127.0.0.1");
    assert_eq!(registered["Port"], app.port);
    assert_eq!(registered["Meta"], serde_json::json!({"version": "test"}));
    let check = &registered["Check"];
    assert_eq!(check["GRPC"], format!("127.0.0.1:{}", app.port));
    assert_eq!(check["GRPCUseTLS"], true);
    assert_eq!(check["TLSSkipVerify"], false);
    assert_eq!(check["DeregisterCriticalServiceAfter"], "30s");

    // The double's real gRPC health probe (mTLS, the app's CA) marks it passing.
    let client = ConsulClient::new(
        &agent.addr,
        &SecretString::from(TOKEN),
        Duration::from_secs(2),
    )
    .unwrap();
    let healthy = until_passing(&client, "hello", Duration::from_secs(15), |h| {
        (!h.instances.is_empty()).then(|| h.clone())
    })
    .await;
    assert_eq!(healthy.instances.len(), 1);
    assert_eq!(healthy.instances[0].id, id);
    assert_eq!(
        (
            healthy.instances[0].address.as_str(),
            healthy.instances[0].port
        ),
        ("127.0.0.1", app.port)
    );

    // The agent forgets it (restarted, or reaped it): the app registers again.
    client
        .deregister(&id, Duration::from_secs(2))
        .await
        .unwrap();
    let healthy = until_passing(&client, "hello", Duration::from_secs(10), |h| {
        (!h.instances.is_empty()).then(|| h.clone())
    })
    .await;
    assert_eq!(healthy.instances[0].id, id, "registered again");

    // A blocking query on the current index waits for a change: the graceful stop.
    let index = next_index(0, healthy.index);
    let watch = tokio::spawn({
        let client = client.clone();
        async move {
            let started = std::time::Instant::now();
            let h = client
                .healthy(
                    "hello",
                    index,
                    Duration::from_secs(20),
                    Duration::from_secs(2),
                )
                .await
                .unwrap();
            (h, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !watch.is_finished(),
        "the query blocks while nothing changes"
    );
    let _ = app.stop.take().unwrap().send(());
    tokio::time::timeout(Duration::from_secs(15), &mut app.done)
        .await
        .expect("the app stops")
        .unwrap()
        .unwrap();
    let (after, waited) = watch.await.unwrap();
    assert!(after.instances.is_empty(), "deregistered: {after:?}");
    assert!(after.index > index);
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    let services = agent_get(&agent.addr, "/v1/agent/services").await;
    assert!(services.get(&id).is_none(), "{services}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_checks_what_the_agent_checks() {
    let certs = tempfile::tempdir().unwrap();
    let agent = double(certs.path(), 0);
    let put = |path: &str, body: Option<Value>, token: Option<&str>| {
        let mut request = reqwest::Client::new().put(format!("http://{}{path}", agent.addr));
        if let Some(token) = token {
            request = request.header("X-Consul-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let res = request.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let good = serde_json::json!({"ID": "x-1", "Name": "x", "Port": 1,
        "Check": {"HTTP": "http://127.0.0.1:1/healthz", "Interval": "10s"}});
    assert_eq!(
        put("/v1/agent/service/register", Some(good.clone()), None)
            .await
            .0,
        403
    );
    assert_eq!(
        put(
            "/v1/agent/service/register",
            Some(good.clone()),
            Some("wrong")
        )
        .await
        .0,
        403
    );
    for (bad, why) in [
        (serde_json::json!({"Name": "x", "Prot": 1}), "unknown field"),
        (
            serde_json::json!({"Name": "x", "Port": "1"}),
            "cannot unmarshal",
        ),
        (
            serde_json::json!({"Name": "x", "Port": 70000}),
            "Port out of range",
        ),
        (serde_json::json!({"Port": 1}), "Missing service name"),
        (
            serde_json::json!({"Name": "x", "Check": {"GRPC": "a:1", "Interval": "10 s"}}),
            "invalid duration",
        ),
    ] {
        let (status, message) = put("/v1/agent/service/register", Some(bad), Some(TOKEN)).await;
        assert_eq!(status, 400, "{message}");
        assert!(message.contains(why), "{message}");
    }
    assert_eq!(
        put("/v1/agent/service/register", Some(good), Some(TOKEN))
            .await
            .0,
        200
    );
    // Reads with another token are filtered, as Consul's deny policy does; the client says so
    // rather than take the empty answer for the truth.
    let stranger = ConsulClient::new(
        &agent.addr,
        &SecretString::from("wrong"),
        Duration::from_secs(2),
    )
    .unwrap();
    let e = stranger
        .healthy("x", 0, Duration::from_secs(1), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, goex_consul::ConsulError::Filtered), "{e}");
    // Its HTTP check probes a port where nothing listens: critical, so not passing.
    let all = agent_get(&agent.addr, "/v1/health/service/x").await;
    assert_eq!(all[0]["Checks"][0]["Status"], "critical");
    assert_eq!(
        agent_get(&agent.addr, "/v1/health/service/x?passing").await,
        serde_json::json!([])
    );
    // An interval below the agent's 1 s minimum is raised to it: a TCP check asking for a
    // probe every 100 ms is probed at registration, then once a second.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probes = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    std::thread::spawn({
        let probes = probes.clone();
        move || {
            for connection in listener.incoming() {
                if connection.is_ok() {
                    probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    let fast = serde_json::json!({"ID": "fast-1", "Name": "fast", "Port": port,
        "Check": {"TCP": format!("127.0.0.1:{port}"), "Interval": "100ms"}});
    assert_eq!(
        put("/v1/agent/service/register", Some(fast), Some(TOKEN))
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let probed = probes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=3).contains(&probed),
        "{probed} probes in 1.5 s (every 100 ms would be 15)"
    );
    let (status, message) = put("/v1/agent/service/deregister/nope", None, Some(TOKEN)).await;
    assert_eq!(status, 404, "{message}");
    assert_eq!(
        put("/v1/agent/service/deregister/x-1", None, Some(TOKEN))
            .await
            .0,
        200
    );
}

/// Against a real agent when CONSUL_HTTP_ADDR is set (no Consul can be installed here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agent_when_one_is_configured() {
    let Ok(addr) = std::env::var("CONSUL_HTTP_ADDR") else {
        return;
    };
    let token = SecretString::from(std::env::var("CONSUL_HTTP_TOKEN").unwrap_or_default());
    let client = ConsulClient::new(&addr, &token, Duration::from_secs(5)).unwrap();
    let registration = goex_consul::Registration {
        id: "go-example-rs-test-1".into(),
        name: "go-example-rs-test".into(),
        tags: vec!["test".into()],
        address: "127.0.0.1".into(),
        port: 1,
        meta: Default::default(),
        check: goex_consul::Check {
            grpc: None,
            grpc_use_tls: None,
            http: Some("http://127.0.0.1:1/healthz".into()),
            tcp: None,
            tls_skip_verify: false,
            tls_server_name: None,
            interval: "10s".into(),
            timeout: "1s".into(),
            deregister_critical_service_after: "1m".into(),
        },
    };
    client
        .register(&registration, Duration::from_secs(5))
        .await
        .unwrap();
    let all = client
        .healthy(
            "go-example-rs-test",
            0,
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(all.index >= 1);
    client
        .deregister(&registration.id, Duration::from_secs(5))
        .await
        .unwrap();
}

/// With Consul's own check interval (the original's 10 s): an instance killed while calls go
/// on is ejected by the HTTP app's client at its first failed call, seconds before the agent
/// notices, and no call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_fails_no_call_with_checks_every_10s() {
    failover("10s", Duration::from_secs(10)).await;
}

/// With checks at the agent's shortest interval (1 s); then the agent goes away and the calls
/// go on over the last known instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_fails_no_call_with_checks_every_1s() {
    let after = failover("1s", Duration::from_secs(1)).await;
    drop(after.agent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..100 {
        after
            .rpc
            .say_hello(1)
            .await
            .expect("calls go on without Consul");
    }
}

/// What [`failover`] leaves running.
struct Survivors {
    rpc: std::sync::Arc<dyn go_example::repository::rpc::HelloRpcClient>,
    agent: Double,
    _instances: Vec<crate::grpc::GrpcApp>,
    _http: crate::helpers::TestApp,
}

/// What a loop of calls saw.
#[derive(Default)]
struct Tally {
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

/// Three gRPC instances behind the double, checked every `interval`; the HTTP app's client
/// dials `consul://<double>/hello?wait=2s`: calls spread over the three; one instance (a
/// process of its own) SIGKILLed while a loop of calls goes on: no call fails, neither while
/// the agent still lists it as passing (up to `interval`) nor after, and the two others take
/// its share. Returns what still runs.
async fn failover(interval: &str, period: Duration) -> Survivors {
    use go_example::repository::rpc::HelloRpcClient;
    use shaku::HasComponent;
    use std::sync::atomic::Ordering;

    let first = tempfile::tempdir().unwrap();
    let certs = first.path().join("grpc-certs");
    let agent = double(&certs, 0);
    let mut consul = consul_overrides(&agent.addr);
    consul.push(("APP__CONSUL__CHECK__INTERVAL", interval.to_owned()));
    let mut instances = vec![crate::grpc::spawn_grpc_in(first, "require", &consul).await];
    let mut shared = consul.clone();
    shared.push(("APP__SERVER__GRPC__TLS__DIR", certs.display().to_string()));
    instances
        .push(crate::grpc::spawn_grpc_in(tempfile::tempdir().unwrap(), "require", &shared).await);
    // The third is a process of its own, to be killed with SIGKILL: no graceful anything.
    let victim_dir = tempfile::tempdir().unwrap();
    let victim_port = free_port();
    let mut victim = crate::helpers::app_command()
        .args(["grpc", "--env", "test"])
        .envs(shared.iter().map(|(k, v)| (*k, v.clone())))
        .env(
            "APP__SERVER__GRPC__ADDR",
            format!("127.0.0.1:{victim_port}"),
        )
        .env("APP__SERVER__GRPC__TLS__CLIENT_AUTH", "require")
        .env("APP__SQLITE__PATH", victim_dir.path().join("app.db"))
        .env("APP__CERTS__DIR", victim_dir.path().join("keys"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the victim starts");
    let client = ConsulClient::new(
        &agent.addr,
        &SecretString::from(TOKEN),
        Duration::from_secs(2),
    )
    .unwrap();
    // Each check's first probe runs at registration.
    until_passing(&client, "hello", Duration::from_secs(20), |h| {
        (h.instances.len() == 3).then_some(())
    })
    .await;

    let http = crate::helpers::spawn_app_with(&[
        (
            "APP__GRPC_CLIENT__ADDR",
            format!("consul://{}/hello?wait=2s", agent.addr),
        ),
        ("APP__GRPC_CLIENT__TLS__DIR", certs.display().to_string()),
        ("APP__CONSUL__TOKEN", TOKEN.into()),
        // A failure while an instance leaves must not open the breaker for the rest.
        (
            "APP__GRPC_CLIENT__BREAKER__SAYHELLO__REQUEST_VOLUME_THRESHOLD",
            "1000".into(),
        ),
    ])
    .await;
    let rpc: std::sync::Arc<dyn HelloRpcClient> = http.module.resolve();
    let served = |i: &crate::grpc::GrpcApp| i.served.load(Ordering::Relaxed);
    rpc.say_hello(1)
        .await
        .expect("the first call waits for the watcher");
    let before: Vec<u64> = instances.iter().map(served).collect();
    for _ in 0..300 {
        rpc.say_hello(1).await.expect("a call");
    }
    let mut counts: Vec<u64> = instances
        .iter()
        .zip(&before)
        .map(|(i, b)| served(i) - b)
        .collect();
    counts.push(300 - counts.iter().sum::<u64>());
    eprintln!("calls per instance (the victim last): {counts:?}");
    assert!(
        counts.iter().all(|c| *c >= 50),
        "spread over all three: {counts:?}"
    );

    // A steady loop of calls, and the victim SIGKILLed in its middle: its connections reset,
    // and the agent lists it as passing until its next check.
    let tally = std::sync::Arc::new(Tally::default());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = tokio::spawn({
        let (rpc, tally, stop) = (rpc.clone(), tally.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                match rpc.say_hello(1).await {
                    Ok(_) => tally.ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tally
                            .first_error
                            .lock()
                            .unwrap()
                            .get_or_insert(e.to_string());
                        tally.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed = std::time::Instant::now();
    let ok_at_kill = tally.ok.load(Ordering::Relaxed);
    let before: Vec<u64> = instances.iter().map(served).collect();
    let removal = until_passing(&client, "hello", period + Duration::from_secs(8), |h| {
        (h.instances.len() == 2).then(|| killed.elapsed())
    })
    .await;
    let ok_at_removal = tally.ok.load(Ordering::Relaxed);
    // Calls go on a while after: at least 2 s after the kill, 500 ms after the removal.
    tokio::time::sleep(
        Duration::from_millis(500).max(Duration::from_secs(2).saturating_sub(killed.elapsed())),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    looping.await.unwrap();
    let failed = tally.failed.load(Ordering::Relaxed);
    let after = tally.ok.load(Ordering::Relaxed) - ok_at_kill;
    let counts: Vec<u64> = instances
        .iter()
        .zip(&before)
        .map(|(i, b)| served(i) - b)
        .collect();
    eprintln!(
        "checks every {interval}: out of the passing set {removal:?} after the kill; \
         {failed} calls failed; {} answered while it was listed, {after} after the kill, \
         served by the two others {counts:?}",
        ok_at_removal - ok_at_kill
    );
    assert_eq!(
        failed,
        0,
        "calls went to another instance: {:?}",
        tally.first_error.lock().unwrap()
    );
    assert!(after >= 100, "the calls went on: {after} after the kill");
    // Every call answered since the kill was served by the two others (one in flight at the
    // kill may have been served by either side of it).
    let total = counts.iter().sum::<u64>();
    assert!(
        total + 1 >= after && total <= after + 1,
        "{after} answered, {counts:?} served by the two"
    );
    assert!(
        counts.iter().all(|c| *c >= after / 4),
        "the victim's share spread over the two: {counts:?}"
    );
    Survivors {
        rpc,
        agent,
        _instances: instances,
        _http: http,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_and_socket_apps_register_and_critical_instances_are_reaped() {
    let certs = tempfile::tempdir().unwrap();
    let agent = double(certs.path(), 0);
    let mut overrides = consul_overrides(&agent.addr);
    overrides.extend([
        ("APP__CONSUL__SERVICES__HTTP", "go-example-http".to_owned()),
        (
            "APP__CONSUL__SERVICES__SOCKET",
            "go-example-socket".to_owned(),
        ),
    ]);
    let http = crate::helpers::spawn_app_with(&overrides).await;
    let socket = crate::socket::spawn_socket(&overrides).await;
    let client = ConsulClient::new(
        &agent.addr,
        &SecretString::from(TOKEN),
        Duration::from_secs(2),
    )
    .unwrap();
    let passing = |service: &'static str| {
        let client = client.clone();
        async move {
            client
                .healthy(service, 0, Duration::from_secs(1), Duration::from_secs(2))
                .await
                .map(|h| h.instances)
                .unwrap_or_default()
        }
    };
    // Both checks really probed: GET /healthz of each app.
    let web = until_some(Duration::from_secs(15), || async {
        let i = passing("go-example-http").await;
        (!i.is_empty()).then_some(i)
    })
    .await;
    assert_eq!(
        web[0].port.to_string(),
        http.address.rsplit(':').next().unwrap()
    );
    let services = agent_get(&agent.addr, "/v1/agent/services").await;
    let id = &web[0].id;
    assert_eq!(
        services[id]["Check"]["HTTP"],
        format!("http://127.0.0.1:{}/healthz", web[0].port)
    );
    let sockets = until_some(Duration::from_secs(15), || async {
        let i = passing("go-example-socket").await;
        (!i.is_empty()).then_some(i)
    })
    .await;
    assert_eq!(sockets[0].port, socket.port);
    assert_eq!(
        services[&sockets[0].id]["Check"]["HTTP"],
        format!("http://127.0.0.1:{}/healthz", socket.port)
    );
    socket.shut_down().await.unwrap();
    let services = agent_get(&agent.addr, "/v1/agent/services").await;
    assert!(
        services.get(&sockets[0].id).is_none(),
        "deregistered on shutdown: {services}"
    );

    // An instance whose check stays critical past DeregisterCriticalServiceAfter is reaped.
    let dead = goex_consul::Registration {
        id: "dead-1".into(),
        name: "dead".into(),
        tags: vec![],
        address: "127.0.0.1".into(),
        port: free_port(),
        meta: Default::default(),
        check: goex_consul::Check {
            grpc: None,
            grpc_use_tls: None,
            http: None,
            tcp: Some(format!("127.0.0.1:{}", free_port())),
            tls_skip_verify: false,
            tls_server_name: None,
            interval: "1s".into(),
            timeout: "1s".into(),
            deregister_critical_service_after: "1s".into(),
        },
    };
    client
        .register(&dead, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        agent_get(&agent.addr, "/v1/agent/services")
            .await
            .get("dead-1")
            .is_some()
    );
    until_some(Duration::from_secs(10), || async {
        agent_get(&agent.addr, "/v1/agent/services")
            .await
            .get("dead-1")
            .is_none()
            .then_some(())
    })
    .await;
}

//! The attacks of issue 8, fired concurrently: parallel password guesses against one user and
//! from one address, parallel refreshes with one refresh token, refreshes racing logouts and
//! newer logins, a registration storm, login names that differ only in case or spaces, and a
//! full in-process login store. Each figure (password checks reached, refreshes that won) is
//! asserted, on the in-process store and on Redis single and Cluster.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use go_example::repository::redis::token::{Rotation, TokenRepository};
use go_example::service::password::PasswordHasher;
use serde_json::{Value, json};
use shaku::HasComponent;

use crate::helpers::{
    TestApp, assert_envelope, fresh_mysql_database, get_with, mysql_server_dsn, redis_overrides,
    service_env, spawn_app_with, tokens, unique_name,
};

/// A client address of its own per call (a documentation-range IPv6 /64 named after this
/// process and a counter), so tests sharing one Redis never share a throttling bucket; the
/// app trusts the loopback proxy in these tests.
fn fresh_client() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("2001:db8:{:x}:{:x}::1", std::process::id() % 0x1_0000, n)
}

fn username(prefix: &str) -> String {
    unique_name(prefix).replace('_', "")
}

/// Which store holds login records and counters.
#[derive(Clone, Copy, Debug)]
enum Backend {
    /// The embedded default: SQLite, login records in its `logins` table, counters in memory.
    InProcess,
    /// As `InProcess` with the login records in this process's memory (`auth.local_logins`).
    Memory,
    /// MariaDB without Redis: login records in MariaDB's `logins` table.
    MariaDb,
    RedisSingle,
    RedisCluster,
}

/// Overrides for `backend`, or `None` when its server is not running (a failure under
/// `make test`).
async fn backend(backend: Backend) -> Option<Vec<(&'static str, String)>> {
    let mut o = match backend {
        Backend::InProcess => Vec::new(),
        Backend::Memory => vec![("APP__AUTH__LOCAL_LOGINS", "memory".to_owned())],
        Backend::MariaDb => {
            let dsn = fresh_mysql_database(&mysql_server_dsn()?).await;
            vec![
                ("APP__DATABASE__DRIVER", "mysql".to_owned()),
                ("APP__DATABASE__MIGRATE_ON_START", "true".to_owned()),
                ("APP__MYSQL__DSN", dsn),
            ]
        }
        Backend::RedisSingle => redis_overrides("single", &service_env("APP__REDIS__ADDRS__0")?),
        Backend::RedisCluster => {
            redis_overrides("cluster", &service_env("GOEX_REDIS_CLUSTER_ADDRS")?)
        }
    };
    o.push((
        "APP__SERVER__HTTP__TRUSTED_PROXIES__0",
        "127.0.0.1/32".to_owned(),
    ));
    Some(o)
}

async fn post_json(app: &TestApp, path: &str, client: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}{path}", app.address))
        .header("X-Forwarded-For", client)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn register(app: &TestApp, client: &str, name: &str) -> (u16, Value) {
    post_json(
        app,
        "/auth/register",
        client,
        json!({"username": name, "password": "abc123"}),
    )
    .await
}

async fn login(app: &TestApp, client: &str, name: &str, password: &str) -> (u16, Value) {
    post_json(
        app,
        "/auth/login",
        client,
        json!({"username": name, "password": password}),
    )
    .await
}

fn verifications(app: &TestApp) -> u64 {
    let hasher: &dyn PasswordHasher = app.module.resolve_ref();
    hasher.verifications()
}

/// Counts statuses; every 429 must carry 10008.
fn tally(answers: &[(u16, Value)]) -> (usize, usize) {
    let mut failed = 0;
    let mut throttled = 0;
    for (status, body) in answers {
        match status {
            401 => {
                assert_envelope(body, "20000");
                failed += 1;
            }
            429 => {
                assert_envelope(body, "10008");
                throttled += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (failed, throttled)
}

const GUESSES: usize = 60;
const MAX_FAILURES: u64 = 5;

async fn parallel_guesses_against_one_user(on: Backend) {
    let Some(overrides) = backend(on).await else {
        return;
    };
    let app = spawn_app_with(&overrides).await;
    let name = username("victim");
    assert_eq!(register(&app, &fresh_client(), &name).await.0, 201);
    let before = verifications(&app);
    // Every guess from its own address: only the per-user counter can hold them back.
    let answers = join_all((0..GUESSES).map(|i| {
        let (app, name) = (&app, &name);
        async move {
            let client = fresh_client();
            login(app, &client, name, &format!("wrong{i:03}")).await
        }
    }))
    .await;
    let reached = verifications(&app) - before;
    let (failed, throttled) = tally(&answers);
    assert!(
        reached <= MAX_FAILURES,
        "{on:?}: {reached} password checks for one user (limit {MAX_FAILURES})"
    );
    assert_eq!(failed as u64, reached, "{on:?}: every 401 was a real check");
    assert_eq!(failed + throttled, GUESSES);
    // The owner's right password waits out the window as well.
    assert_eq!(login(&app, &fresh_client(), &name, "abc123").await.0, 429);
}

async fn parallel_guesses_from_one_address(on: Backend) {
    let Some(overrides) = backend(on).await else {
        return;
    };
    let app = spawn_app_with(&overrides).await;
    let client = fresh_client();
    let before = verifications(&app);
    let answers = join_all((0..GUESSES).map(|i| {
        let (app, client) = (&app, &client);
        async move { login(app, client, &username(&format!("u{i}x")), "wrong123").await }
    }))
    .await;
    let reached = verifications(&app) - before;
    let (failed, throttled) = tally(&answers);
    assert!(
        reached <= MAX_FAILURES,
        "{on:?}: {reached} password checks from one address (limit {MAX_FAILURES})"
    );
    assert_eq!(failed as u64, reached);
    assert_eq!(failed + throttled, GUESSES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_reach_the_password_check_at_most_max_failures_times_in_process() {
    parallel_guesses_against_one_user(Backend::InProcess).await;
    parallel_guesses_from_one_address(Backend::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_reach_the_password_check_at_most_max_failures_times_on_redis() {
    parallel_guesses_against_one_user(Backend::RedisSingle).await;
    parallel_guesses_from_one_address(Backend::RedisSingle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_reach_the_password_check_at_most_max_failures_times_on_the_cluster() {
    parallel_guesses_against_one_user(Backend::RedisCluster).await;
    parallel_guesses_from_one_address(Backend::RedisCluster).await;
}

async fn signed_in(app: &TestApp, client: &str) -> (String, String) {
    let name = username("rot");
    assert_eq!(register(app, client, &name).await.0, 201);
    let (status, body) = login(app, client, &name, "abc123").await;
    assert_eq!(status, 200, "{body}");
    tokens(&body)
}

async fn parallel_refreshes_with_one_token(on: Backend) {
    let Some(overrides) = backend(on).await else {
        return;
    };
    let app = spawn_app_with(&overrides).await;
    let (access, refresh) = signed_in(&app, &fresh_client()).await;
    let answers = join_all((0..20).map(|_| get_with(&app, "/auth/refresh_token", &refresh))).await;
    let winners: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "{on:?}: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 401, "{body}");
        assert_envelope(body, "20003");
    }
    // The losers presented a spent token: reuse detection ended the login, winner included.
    let (new_access, new_refresh) = tokens(&winners[0].1);
    for token in [&access, &new_access] {
        let (status, body) = get_with(&app, "/home", token).await;
        assert_eq!(status, 401, "{on:?}: {body}");
        assert_envelope(&body, "10010");
    }
    assert_eq!(
        get_with(&app, "/auth/refresh_token", &new_refresh).await.0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_refreshes_with_one_token_give_exactly_one_success() {
    parallel_refreshes_with_one_token(Backend::InProcess).await;
    parallel_refreshes_with_one_token(Backend::Memory).await;
    parallel_refreshes_with_one_token(Backend::MariaDb).await;
    parallel_refreshes_with_one_token(Backend::RedisSingle).await;
    parallel_refreshes_with_one_token(Backend::RedisCluster).await;
}

/// Races a rotation against a logout and against a newer login, `rounds` times, straight on
/// the repository (the atomic step under test), and checks the end state every time.
async fn rotation_races(on: Backend, rounds: usize) {
    let Some(overrides) = backend(on).await else {
        return;
    };
    let app = spawn_app_with(&overrides).await;
    let tokens: &dyn TokenRepository = app.module.resolve_ref();
    let ttl = Duration::from_secs(60);
    let base = (std::process::id() as i64) * 1_000_000 + (rand_id() % 1000) * 1000;
    let mut rotated = (0, 0);
    for round in 0..rounds {
        let user = base + round as i64;
        // A refresh racing a logout: whatever the order, no login is left.
        tokens.start(user, "s1", "r1", ttl).await.unwrap();
        let (rotation, revoked) = tokio::join!(
            tokens.rotate(user, "s1", "r1", "r2", ttl),
            tokens.revoke(user, "s1")
        );
        assert!(revoked.unwrap(), "{on:?}: the logout found its login");
        let rotation = rotation.unwrap();
        assert!(
            matches!(rotation, Rotation::Rotated | Rotation::SignedOut),
            "{rotation:?}"
        );
        rotated.0 += usize::from(rotation == Rotation::Rotated);
        assert!(
            tokens.get(user).await.unwrap().is_empty(),
            "{on:?} round {round}: a refresh resurrected a logged-out login ({rotation:?})"
        );

        // A refresh racing a newer login: the newer login is what remains, untouched.
        tokens.start(user, "s1", "r1", ttl).await.unwrap();
        let (rotation, started) = tokio::join!(
            tokens.rotate(user, "s1", "r1", "r2", ttl),
            tokens.start(user, "s2", "n1", ttl)
        );
        started.unwrap();
        let rotation = rotation.unwrap();
        rotated.1 += usize::from(rotation == Rotation::Rotated);
        let record = tokens.get(user).await.unwrap();
        assert_eq!(
            (record["sid"].as_str(), record["refresh_jti"].as_str()),
            ("s2", "n1"),
            "{on:?} round {round}: {rotation:?} overwrote the newer login"
        );
        assert!(tokens.revoke(user, "s2").await.unwrap());
    }
    eprintln!("{on:?}: rotations won {rotated:?} of {rounds} races each");
}

fn rand_id() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_racing_a_logout_or_a_newer_login_never_resurrects_the_old_login() {
    rotation_races(Backend::InProcess, 300).await;
    rotation_races(Backend::Memory, 300).await;
    rotation_races(Backend::MariaDb, 300).await;
    rotation_races(Backend::RedisSingle, 300).await;
    rotation_races(Backend::RedisCluster, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_refresh_racing_a_logout_leaves_no_usable_token() {
    let Some(overrides) = backend(Backend::InProcess).await else {
        return;
    };
    let app = spawn_app_with(&overrides).await;
    let client = fresh_client();
    let name = username("race");
    assert_eq!(register(&app, &client, &name).await.0, 201);
    for round in 0..15 {
        let (_, body) = login(&app, &client, &name, "abc123").await;
        let (access, refresh) = tokens(&body);
        let logout = async {
            app.client
                .post(format!("{}/auth/logout", app.address))
                .header("Authorization", &access)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        let ((status, body), logout) =
            tokio::join!(get_with(&app, "/auth/refresh_token", &refresh), logout);
        assert_eq!(logout, 200, "round {round}");
        assert_eq!(get_with(&app, "/home", &access).await.0, 401);
        if status == 200 {
            let (new_access, new_refresh) = tokens(&body);
            assert_eq!(get_with(&app, "/home", &new_access).await.0, 401);
            assert_eq!(
                get_with(&app, "/auth/refresh_token", &new_refresh).await.0,
                401
            );
        } else {
            assert_envelope(&body, "20003");
        }
    }
}

async fn canonical_names(app: &TestApp) {
    let client = fresh_client();
    let name = username("Alice");
    let lower = name.to_lowercase();
    let (status, body) = register(app, &client, &name).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["username"], lower.as_str(), "stored canonical");
    let (status, body) = register(app, &client, &format!(" {lower} ")).await;
    assert_eq!(status, 409, "one user: {body}");
    assert_envelope(&body, "10013");
    for spelling in [name.to_uppercase(), format!("{lower} "), lower.clone()] {
        let (status, body) = login(app, &client, &spelling, "abc123").await;
        assert_eq!(status, 200, "`{spelling}`: {body}");
    }
    // One throttling bucket: failures under different spellings add up.
    for (i, spelling) in [name.clone(), format!("{lower} "), name.to_uppercase()]
        .iter()
        .cycle()
        .take(MAX_FAILURES as usize)
        .enumerate()
    {
        let (status, _) = login(app, &fresh_client(), spelling, &format!("bad{i:03}x")).await;
        assert_eq!(status, 401);
    }
    let (status, body) = login(app, &fresh_client(), &lower, "abc123").await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_names_are_canonical_on_sqlite() {
    let overrides = backend(Backend::InProcess).await.unwrap();
    canonical_names(&spawn_app_with(&overrides).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_names_are_canonical_on_mysql() {
    let Some(server) = mysql_server_dsn() else {
        return;
    };
    let dsn = fresh_mysql_database(&server).await;
    let mut overrides = backend(Backend::InProcess).await.unwrap();
    overrides.extend([
        ("APP__DATABASE__DRIVER", "mysql".to_owned()),
        ("APP__DATABASE__MIGRATE_ON_START", "true".to_owned()),
        ("APP__MYSQL__DSN", dsn),
    ]);
    canonical_names(&spawn_app_with(&overrides).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_in_process_login_store_refuses_new_logins_and_keeps_the_old() {
    let mut overrides = backend(Backend::InProcess).await.unwrap();
    overrides.push(("APP__AUTH__LOCAL_LOGINS", "memory".to_owned()));
    overrides.push(("APP__AUTH__MAX_LOCAL_LOGINS", "2".to_owned()));
    let app = spawn_app_with(&overrides).await;
    let client = fresh_client();
    let (first, _) = signed_in(&app, &client).await;
    let (second, _) = signed_in(&app, &client).await;
    let name = username("third");
    assert_eq!(register(&app, &client, &name).await.0, 201);
    let (status, body) = login(&app, &client, &name, "abc123").await;
    assert_eq!(status, 503, "{body}");
    assert_envelope(&body, "10004");
    for token in [&first, &second] {
        assert_eq!(
            get_with(&app, "/home", token).await.0,
            200,
            "nobody evicted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_throttled_per_address_and_taken_names_cost_no_hash() {
    let mut overrides = backend(Backend::InProcess).await.unwrap();
    overrides.push(("APP__AUTH__MAX_REGISTRATIONS", "3".to_owned()));
    let app = spawn_app_with(&overrides).await;
    let client = fresh_client();
    let taken = username("taken");
    assert_eq!(register(&app, &client, &taken).await.0, 201);
    let started = std::time::Instant::now();
    let (status, body) = register(&app, &client, &taken).await;
    assert_eq!(status, 409, "{body}");
    assert_envelope(&body, "10013");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused before hashing"
    );
    assert_eq!(register(&app, &client, &username("third")).await.0, 201);
    let (status, body) = register(&app, &client, &username("fourth")).await;
    assert_eq!(status, 429, "{body}");
    assert_envelope(&body, "10008");
    assert_eq!(
        register(&app, &fresh_client(), &username("other")).await.0,
        201,
        "another address is not held back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_answers_are_not_cacheable() {
    let app = spawn_app_with(&backend(Backend::InProcess).await.unwrap()).await;
    let client = fresh_client();
    let name = username("cache");
    assert_eq!(register(&app, &client, &name).await.0, 201);
    let res = app
        .client
        .post(format!("{}/auth/login", app.address))
        .header("X-Forwarded-For", &client)
        .json(&json!({"username": name, "password": "abc123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let refresh = tokens(&res.json().await.unwrap()).1;
    let res = app
        .client
        .get(format!("{}/auth/refresh_token", app.address))
        .header("Authorization", refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
}

/// Peak resident memory of a registration storm, in MiB: a few MiB of process, plus at most
/// one argon2 memory block (19 MiB) per hashing slot (one per core here), plus connections.
/// Unbounded, 300 parallel hashes would take 300 × 19 MiB.
const STORM_RSS_BOUND_MIB: u64 = 160;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_registrations_keep_memory_bounded_and_health_answering() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::spawn_process(&[
        (
            "APP__SQLITE__PATH",
            dir.path().join("app.db").display().to_string(),
        ),
        (
            "APP__CERTS__DIR",
            dir.path().join("certs").display().to_string(),
        ),
        ("APP__AUTH__MAX_REGISTRATIONS", "1000".to_owned()),
    ]);
    let (pid, base) = (app.pid, app.address.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(400)
        .build()
        .unwrap();

    let storm = join_all((0..300).map(|i| {
        let (client, base) = (&client, &base);
        async move {
            let res = client
                .post(format!("{base}/auth/register"))
                .json(&json!({"username": format!("storm{i:04}"), "password": "abc123"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    }));
    let health = async {
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = std::time::Instant::now();
            let res = client.get(format!("{base}/healthz")).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 200);
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let (answers, slowest) = tokio::join!(storm, health);
    let peak_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    drop(app);

    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 503, "{body}");
        assert_envelope(body, "10004");
    }
    eprintln!(
        "storm: {created} created, {} refused busy, peak RSS {} MiB, slowest /healthz {slowest:?}",
        300 - created,
        peak_kib / 1024
    );
    assert!(created > 0, "some registrations went through");
    assert!(
        peak_kib / 1024 < STORM_RSS_BOUND_MIB,
        "peak RSS {} MiB over {STORM_RSS_BOUND_MIB} MiB",
        peak_kib / 1024
    );
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?} during the storm"
    );
}

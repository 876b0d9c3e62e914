//! Rate limits (`rate_limit.rules`, docs/overload.md) through the HTTP app: exact admitted
//! counts from requests fired in parallel (in process, on Redis single and on Redis Cluster),
//! one rule shared by two instances on one Redis, the `RateLimit-*` and `Retry-After` headers
//! and 429 / 10008, keys by user and by address, routes never counted, and the metric; the
//! gRPC app's layer (exact counts in parallel, the forwarded end-user address believed only from
//! the service credentials).

use std::time::Duration;

use futures_util::future::join_all;
use go_example::meta::config::{AppConfig, PrefixWidths, RateLimitRule, RuleKey};
use go_example::proto::hello::HelloRequest;
use go_example::proto::hello::hello_service_client::HelloServiceClient;
use serde_json::{Value, json};
use tonic::Code;

use crate::grpc::{
    channel, error_code, grpc_token, spawn_grpc_with, tls, with_password, with_token,
};

use crate::helpers::{
    TestApp, assert_envelope, quick_value, redis_overrides, scrape, seed_user_in, service_env,
    spawn_app_adjusted, tokens, unique_name,
};

/// A rule on `route` of `rate` per `period` with `burst`, keyed by `key` (the name unique per
/// run, so buckets in a shared Redis never meet another run's).
pub fn rule(route: &str, rate: u32, period: Duration, burst: u32, key: RuleKey) -> RateLimitRule {
    RateLimitRule {
        name: unique_name("rl"),
        route: Some(route.to_owned()),
        tag: None,
        query: None,
        methods: Vec::new(),
        grpc: None,
        rate,
        period,
        burst,
        key,
        ipv4_prefix: PrefixWidths::One(32),
        ipv6_prefix: PrefixWidths::One(64),
    }
}

/// The test's rule: 1 per minute, burst 20 (the figure).
fn one_per_minute_burst_20(route: &str) -> RateLimitRule {
    rule(route, 1, Duration::from_secs(60), 20, RuleKey::Address)
}

/// The app with rate limits on and only `rules`, on the store `overrides` pick.
pub async fn spawn_limited(overrides: &[(&str, String)], rules: Vec<RateLimitRule>) -> TestApp {
    let mut all = vec![("APP__RATE_LIMIT__ENABLED", "true".to_owned())];
    all.extend(overrides.iter().cloned());
    spawn_app_adjusted(&all, move |config: &mut AppConfig| {
        config.rate_limit.rules = rules;
    })
    .await
}

/// One answer: status, the headers this file looks at, the body (JSON, or null).
#[derive(Debug)]
struct Answer {
    status: u16,
    limit: Option<String>,
    remaining: Option<String>,
    reset: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, String)]) -> Answer {
    let mut request = app.client.get(format!("{}{path}", app.address));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let res = request.send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: res.status().as_u16(),
        limit: header("ratelimit-limit"),
        remaining: header("ratelimit-remaining"),
        reset: header("ratelimit-reset"),
        retry_after: header("retry-after"),
        body: res.json().await.unwrap_or(Value::Null),
    }
}

/// `n` requests to `path` at once.
async fn at_once(app: &TestApp, path: &str, n: usize, headers: &[(&str, String)]) -> Vec<Answer> {
    join_all((0..n).map(|_| get(app, path, headers))).await
}

/// Exactly `admitted` of `answers` are 200; the others 429 / 10008 with `Retry-After`; every
/// answer carries the headers of a bucket of `limit`.
fn assert_exactly_admitted(answers: &[Answer], admitted: usize, limit: u32) {
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        ok,
        admitted,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for answer in answers {
        assert_eq!(
            answer.limit.as_deref(),
            Some(limit.to_string().as_str()),
            "{answer:?}"
        );
        assert!(
            answer.remaining.is_some() && answer.reset.is_some(),
            "{answer:?}"
        );
        if answer.status == 200 {
            assert!(answer.retry_after.is_none(), "{answer:?}");
            continue;
        }
        assert_eq!(answer.status, 429, "{answer:?}");
        assert_envelope(&answer.body, "10008");
        assert_eq!(answer.remaining.as_deref(), Some("0"), "{answer:?}");
        let wait: u64 = answer.retry_after.as_deref().unwrap().parse().unwrap();
        // 1 per minute: the next request is earned within a minute.
        assert!((1..=60).contains(&wait), "{answer:?}");
    }
}

/// 200 parallel requests from one address against 1 per minute with burst 20: exactly 20.
async fn exactly_the_burst_of_200_in_parallel(overrides: &[(&str, String)]) {
    let app = spawn_limited(overrides, vec![one_per_minute_burst_20("/hello")]).await;
    let answers = at_once(&app, "/hello?id=0", 200, &[]).await;
    assert_exactly_admitted(&answers, 20, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_20_admits_exactly_20_of_200_parallel_requests_in_process() {
    exactly_the_burst_of_200_in_parallel(&[]).await;
}

/// The demo route's default rule (`hello-by-id`): `GET /hello?id=` is limited, `GET /hello`
/// without `id` is not, and the OpenAPI document says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_rule_limits_hello_by_id_only() {
    let app = spawn_app_adjusted(&[("APP__RATE_LIMIT__ENABLED", "true".to_owned())], |c| {
        let by_id = c
            .rate_limit
            .rules
            .iter_mut()
            .find(|r| r.name == "hello-by-id")
            .expect("the shipped rule");
        by_id.burst = 3;
    })
    .await;
    let bare = get(&app, "/hello", &[]).await;
    assert_eq!(bare.status, 200);
    assert!(bare.limit.is_none(), "no id, no rule: {bare:?}");
    let answers = at_once(&app, "/hello?id=1", 5, &[]).await;
    assert_exactly_admitted(&answers, 3, 3);
    let (_, doc) = app.get_json("/openapi.json").await;
    let hello = &doc["paths"]["/hello"]["get"]["responses"];
    assert!(hello["429"].is_object(), "{hello}");
    assert!(hello["200"]["headers"]["RateLimit-Remaining"].is_object());
    assert!(hello["429"]["headers"]["Retry-After"].is_object());
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["429"].is_null());
}

/// Health and readiness are never counted, even under a rule for every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_are_never_counted() {
    let app = spawn_limited(
        &[],
        vec![rule("/", 1, Duration::from_secs(60), 1, RuleKey::Address)],
    )
    .await;
    for path in ["/healthz", "/readyz", "/healthz", "/readyz"] {
        let answer = get(&app, path, &[]).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert!(answer.limit.is_none(), "{path}: {answer:?}");
    }
    // The one request of the rule is still there for a counted route.
    assert_eq!(get(&app, "/hello", &[]).await.status, 200);
    assert_eq!(get(&app, "/hello", &[]).await.status, 429);
}

/// Addresses count separately (behind a trusted proxy, each forwarded client its own bucket),
/// and a rule counting two widths refuses a second host of one /24 once the /24 is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_address_and_each_width_is_its_own_bucket() {
    let mut widths = rule("/hello", 1, Duration::from_secs(60), 2, RuleKey::Address);
    widths.ipv4_prefix = PrefixWidths::Many(vec![32, 24]);
    let proxy = [(
        "APP__SERVER__HTTP__TRUSTED_PROXIES__0",
        "127.0.0.1/32".to_owned(),
    )];
    let app = spawn_limited(&proxy, vec![widths]).await;
    let from = |ip: &str| [("X-Forwarded-For", ip.to_owned())];
    assert_eq!(get(&app, "/hello", &from("198.51.100.7")).await.status, 200);
    assert_eq!(get(&app, "/hello", &from("198.51.100.8")).await.status, 200);
    // The /24's two are spent: a third host of it is refused, another /24 is not.
    let third = get(&app, "/hello", &from("198.51.100.9")).await;
    assert_eq!(third.status, 429, "{third:?}");
    assert_eq!(get(&app, "/hello", &from("203.0.113.1")).await.status, 200);
}

/// Signs `name` in: its `Bearer` access token.
async fn token_of(app: &TestApp, name: &str) -> String {
    seed_user_in(&app.module, name, "abc12345").await;
    let res = app
        .client
        .post(format!("{}/auth/login", app.address))
        .json(&json!({"username": name, "password": "abc12345"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    tokens(&res.json().await.unwrap()).0
}

/// A `user` rule on a route that requires a token: two users on one address have a bucket
/// each; a request with an invalid token is counted by its address (401 while the address has
/// allowance, then 429).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_one_address_have_their_own_buckets_and_invalid_tokens_count_by_address() {
    let app = spawn_limited(
        &[],
        vec![rule("/home", 1, Duration::from_secs(60), 2, RuleKey::User)],
    )
    .await;
    let alice = token_of(&app, "ratealice").await;
    let bob = token_of(&app, "ratebob01").await;
    let dave = token_of(&app, "ratedave1").await;
    let auth = |token: &str| [("Authorization", token.to_owned())];
    for token in [&alice, &bob] {
        let answers = at_once(&app, "/home", 3, &auth(token)).await;
        assert_exactly_admitted(&answers, 2, 2);
    }
    let bad = auth("Bearer not.a.jwt");
    let first = get(&app, "/home", &bad).await;
    assert_eq!(first.status, 401, "{first:?}");
    assert_eq!(first.remaining.as_deref(), Some("1"), "{first:?}");
    assert_eq!(get(&app, "/home", &bad).await.status, 401);
    let third = get(&app, "/home", &bad).await;
    assert_eq!(third.status, 429, "{third:?}");
    assert!(third.retry_after.is_some());
    // No token at all counts by address too (the same bucket).
    assert_eq!(get(&app, "/home", &[]).await.status, 429);
    // A user's bucket is not the address's: a third user on the spent address still passes.
    assert_eq!(get(&app, "/home", &auth(&dave)).await.status, 200);
}

/// A `both` rule spends the address bucket and the user's: one user on two addresses is
/// still one user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_both_rule_spends_the_address_and_the_user_bucket() {
    let proxy = [(
        "APP__SERVER__HTTP__TRUSTED_PROXIES__0",
        "127.0.0.1/32".to_owned(),
    )];
    let app = spawn_limited(
        &proxy,
        vec![rule("/home", 1, Duration::from_secs(60), 2, RuleKey::Both)],
    )
    .await;
    let carol = token_of(&app, "ratecarol").await;
    let call = |ip: &str| {
        [
            ("Authorization", carol.clone()),
            ("X-Forwarded-For", ip.to_owned()),
        ]
    };
    assert_eq!(get(&app, "/home", &call("198.51.100.1")).await.status, 200);
    assert_eq!(get(&app, "/home", &call("198.51.100.2")).await.status, 200);
    // Carol's two are spent, whatever her address.
    assert_eq!(get(&app, "/home", &call("198.51.100.3")).await.status, 429);
    // The first address's second request is still there for someone else.
    let anonymous = get(
        &app,
        "/home",
        &[("X-Forwarded-For", "198.51.100.1".to_owned())],
    )
    .await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
}

/// `rate_limit_decisions_total{rule,outcome}` counts each rule's decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_counted_by_rule_and_outcome() {
    let limited = rule("/hello", 1, Duration::from_secs(60), 2, RuleKey::Address);
    let name = limited.name.clone();
    let app = spawn_limited(&[], vec![limited]).await;
    let answers = at_once(&app, "/hello", 5, &[]).await;
    assert_exactly_admitted(&answers, 2, 2);
    let (_, text) = scrape(&app).await;
    let series = |outcome: &str| {
        quick_value(
            &text,
            &format!(
                "go_example_rate_limit_decisions_total{{outcome=\"{outcome}\",rule=\"{name}\"}}"
            ),
        )
    };
    assert_eq!(
        (series("allowed"), series("refused")),
        (Some(2.0), Some(3.0)),
        "{text}"
    );
}

/// Whether the Redis single server is up (`None`: skipped, said why).
fn redis_single() -> Option<Vec<(&'static str, String)>> {
    service_env("APP__REDIS__ADDRS__0").map(|addr| redis_overrides("single", &addr))
}

fn redis_cluster() -> Option<Vec<(&'static str, String)>> {
    service_env("GOEX_REDIS_CLUSTER_ADDRS").map(|addrs| redis_overrides("cluster", &addrs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_20_admits_exactly_20_of_200_parallel_requests_on_redis() {
    if let Some(redis) = redis_single() {
        exactly_the_burst_of_200_in_parallel(&redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_20_admits_exactly_20_of_200_parallel_requests_on_redis_cluster() {
    if let Some(cluster) = redis_cluster() {
        exactly_the_burst_of_200_in_parallel(&cluster).await;
    }
}

/// Two instances on one Redis share a rule: 100 parallel requests to each, 20 admitted in all.
async fn two_instances_share_the_rule(redis: &[(&str, String)]) {
    let shared = one_per_minute_burst_20("/hello");
    let a = spawn_limited(redis, vec![shared.clone()]).await;
    let b = spawn_limited(redis, vec![shared]).await;
    let (from_a, from_b) = tokio::join!(
        at_once(&a, "/hello", 100, &[]),
        at_once(&b, "/hello", 100, &[])
    );
    let answers: Vec<Answer> = from_a.into_iter().chain(from_b).collect();
    assert_exactly_admitted(&answers, 20, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis_share_a_rule() {
    if let Some(redis) = redis_single() {
        two_instances_share_the_rule(&redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis_cluster_share_a_rule() {
    if let Some(cluster) = redis_cluster() {
        two_instances_share_the_rule(&cluster).await;
    }
}

/// Overrides adding a gRPC rule (after the three shipped ones) on the methods under `prefix`.
fn grpc_rule(prefix: &str, burst: u32, key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("APP__RATE_LIMIT__ENABLED", "true".to_owned()),
        ("APP__RATE_LIMIT__RULES__3__NAME", unique_name("rlgrpc")),
        ("APP__RATE_LIMIT__RULES__3__GRPC", prefix.to_owned()),
        ("APP__RATE_LIMIT__RULES__3__RATE", "1".to_owned()),
        ("APP__RATE_LIMIT__RULES__3__PERIOD", "1m".to_owned()),
        ("APP__RATE_LIMIT__RULES__3__BURST", burst.to_string()),
        ("APP__RATE_LIMIT__RULES__3__KEY", key.to_owned()),
    ]
}

/// `SayHello` with the shared service credentials, claiming the end user `forwarded`.
fn service_call(forwarded: Option<&str>) -> tonic::Request<HelloRequest> {
    let mut request = with_password(HelloRequest { id: 1 }, "root123");
    if let Some(addr) = forwarded {
        request.metadata_mut().insert(
            go_example::proto::FORWARDED_CLIENT_KEY,
            addr.parse().unwrap(),
        );
    }
    request
}

/// 200 parallel calls from one peer against 1 per minute with burst 20 on the gRPC app:
/// exactly 20 answered, 180 `RESOURCE_EXHAUSTED` with 10008 and `retry-after`; the health
/// service is never counted, though the rule covers every method.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_grpc_app_admits_exactly_the_burst_of_parallel_calls() {
    let app = spawn_grpc_with("none", &grpc_rule("/", 20, "address")).await;
    let client = HelloServiceClient::new(channel(&app, tls(&app.certs, false)).await.unwrap());
    let answers = join_all((0..200).map(|_| {
        let mut client = client.clone();
        async move { client.say_hello(service_call(None)).await }
    }))
    .await;
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 20);
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert_eq!(error_code(refused), "10008");
        let wait: u64 = refused
            .metadata()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        channel(&app, tls(&app.certs, false)).await.unwrap(),
    );
    for _ in 0..3 {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await;
        assert!(answer.is_ok(), "{answer:?}");
    }
}

/// The end user's address forwarded in `x-goex-client-addr` is its bucket only for a caller
/// with the service credentials; a signed-in caller's claim is ignored (its peer counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_address_is_believed_only_from_the_service_credentials() {
    let app = spawn_grpc_with("none", &grpc_rule("/hello.HelloService/", 1, "address")).await;
    let mut client = HelloServiceClient::new(channel(&app, tls(&app.certs, false)).await.unwrap());
    assert!(
        client
            .say_hello(service_call(Some("198.51.100.1")))
            .await
            .is_ok()
    );
    let again = client
        .say_hello(service_call(Some("198.51.100.1")))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::ResourceExhausted);
    assert!(
        client
            .say_hello(service_call(Some("198.51.100.2")))
            .await
            .is_ok()
    );
    // A user's claims: each call names another address, and the peer's one bucket decides.
    let (_, token) = grpc_token(&app, "rlclaimer1", false).await;
    let claim = |addr: &str| {
        let mut request = with_token(HelloRequest { id: 1 }, &token);
        request.metadata_mut().insert(
            go_example::proto::FORWARDED_CLIENT_KEY,
            addr.parse().unwrap(),
        );
        request
    };
    assert!(client.say_hello(claim("203.0.113.1")).await.is_ok());
    let ignored = client.say_hello(claim("203.0.113.2")).await.unwrap_err();
    assert_eq!(
        ignored.code(),
        Code::ResourceExhausted,
        "the claim was ignored"
    );
}

/// The HTTP app forwards the end user's address on `GET /grpc/hello`: behind a trusted proxy,
/// two end users have a bucket each on the gRPC app, though every call comes from one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_app_forwards_the_end_user_address_to_the_grpc_app() {
    let grpc = spawn_grpc_with("none", &grpc_rule("/hello.HelloService/", 1, "address")).await;
    let http = spawn_app_adjusted(
        &[
            (
                "APP__GRPC_CLIENT__ADDR",
                format!("https://127.0.0.1:{}", grpc.port),
            ),
            (
                "APP__GRPC_CLIENT__TLS__DIR",
                grpc.certs.display().to_string(),
            ),
            (
                "APP__SERVER__HTTP__TRUSTED_PROXIES__0",
                "127.0.0.1/32".to_owned(),
            ),
        ],
        |_| {},
    )
    .await;
    let from = |ip: &str| [("X-Forwarded-For", ip.to_owned())];
    assert_eq!(
        get(&http, "/grpc/hello", &from("198.51.100.7"))
            .await
            .status,
        200
    );
    let again = get(&http, "/grpc/hello", &from("198.51.100.7")).await;
    assert_ne!(
        again.status, 200,
        "the gRPC app refused that user's second call: {again:?}"
    );
    assert_eq!(
        get(&http, "/grpc/hello", &from("198.51.100.8"))
            .await
            .status,
        200
    );
}

//! The rate-limit stores on real Redis, single and Cluster: exact admitted counts under parallel
//! spends, one budget shared by two instances (two clients), the decisions' numbers and the
//! keys' expiry, and each `on_store_error` action when Redis is stopped. (The in-process store's
//! own tests, on governor's fake clock, are beside it in src/repository/rate_limit/memory.rs.)
//! The Cluster tests run in the `redis-cluster` group (.config/nextest.toml): another test of
//! that group kills a master.

use std::sync::Arc;
use std::time::Duration;

use go_example::meta::config::{OnStoreError, RateLimitConfig};
use go_example::repository::rate_limit::memory::MemoryRateLimitStore;
use go_example::repository::rate_limit::redis::{
    FALLBACK, RateLimitStoreMetrics, RedisRateLimitStore, bucket_key,
};
use go_example::repository::rate_limit::{BucketRef, Decision, Quota, RateLimitStore};
use goex_redis::{Mode, RedisClient, Settings, cmd};
use shaku::HasComponent;

use crate::helpers::{
    Capture, Records, eventually, free_port, private_redis, redis_overrides, service_env,
    spawn_app, spawn_app_with, unique_name,
};

/// The rule: 1 per minute, burst 20.
const PER_MINUTE_BURST_20: Quota = Quota {
    interval: Duration::from_secs(60),
    burst: 20,
};

fn config(on_store_error: OnStoreError) -> RateLimitConfig {
    RateLimitConfig {
        enabled: true,
        on_store_error,
        max_keys: 1000,
        eviction_interval: Duration::from_secs(60),
        fallback_log_interval: Duration::from_secs(10),
        rules: Vec::new(),
    }
}

/// Connections per client.
const POOL_SIZE: usize = 4;

/// A client with the default timeouts (configs/base.yaml: 1 s), short enough for the stopped
/// server to be noticed at once, long enough for a loaded test machine.
fn client(mode: Mode, addrs: &str) -> RedisClient {
    RedisClient::new(&Settings {
        enabled: true,
        mode,
        addrs: addrs.split(',').map(str::to_owned).collect(),
        password: secrecy::SecretString::from(""),
        db: 0,
        pool_size: POOL_SIZE,
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
    })
    .expect("a redis client")
}

/// Makes every pooled connection of `store` (one spend per slot, in turn), as a running
/// instance has them (the cold start has its own test).
async fn warm_up(store: &Arc<dyn RateLimitStore>, rule: &str) {
    for _ in 0..POOL_SIZE {
        let decision = store
            .spend(BucketRef {
                rule,
                key: "warm-up",
                quota: PER_MINUTE_BURST_20,
            })
            .await;
        assert_eq!(decision.store, "redis", "the server answers");
    }
}

/// A store as one app instance has it: its own client (and pool), its own in-process fallback.
fn instance(
    mode: Mode,
    addrs: &str,
    on_store_error: OnStoreError,
    metrics: Option<&goex_metrics::Metrics>,
) -> Arc<dyn RateLimitStore> {
    logged_instance(
        mode,
        addrs,
        on_store_error,
        metrics,
        slog::Logger::root(slog::Discard, slog::o!()),
    )
}

fn logged_instance(
    mode: Mode,
    addrs: &str,
    on_store_error: OnStoreError,
    metrics: Option<&goex_metrics::Metrics>,
    logger: slog::Logger,
) -> Arc<dyn RateLimitStore> {
    let config = config(on_store_error);
    Arc::new(RedisRateLimitStore::new(
        client(mode, addrs),
        config.clone(),
        MemoryRateLimitStore::new(&config),
        metrics.map(|m| RateLimitStoreMetrics::new(m, &config)),
        logger,
    ))
}

/// A rule name no other test (or earlier run) uses: Redis is shared.
fn rule(name: &str) -> String {
    unique_name(&format!("rl_{name}_"))
}

/// `n` spends of `rule`/`key`, all started at once, spread over `stores`; their decisions.
async fn spend_in_parallel(
    stores: &[Arc<dyn RateLimitStore>],
    rule: &str,
    key: &str,
    n: usize,
) -> Vec<Decision> {
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let spends = (0..n).map(|i| {
        let store = stores[i % stores.len()].clone();
        let (start, rule, key) = (start.clone(), rule.to_owned(), key.to_owned());
        tokio::spawn(async move {
            start.wait().await;
            store
                .spend(BucketRef {
                    rule: &rule,
                    key: &key,
                    quota: PER_MINUTE_BURST_20,
                })
                .await
        })
    });
    futures_util::future::join_all(spends)
        .await
        .into_iter()
        .map(|d| d.expect("spend task"))
        .collect()
}

fn admitted(decisions: &[Decision]) -> usize {
    decisions.iter().filter(|d| d.allowed).count()
}

/// Exactly 20 of 200 parallel spends admitted, every one decided by Redis.
async fn exactly_20_of_200(mode: Mode, addrs: &str) {
    let store = instance(mode, addrs, OnStoreError::Deny, None);
    let rule = rule("parallel");
    warm_up(&store, &rule).await;
    let decisions = spend_in_parallel(&[store], &rule, "ip:198.51.100.7", 200).await;
    assert!(
        decisions.iter().all(|d| d.store == "redis"),
        "{decisions:?}"
    );
    assert_eq!(admitted(&decisions), 20);
}

/// Two instances spending one key in parallel share its 20.
async fn two_instances_share_20(mode: Mode, addrs: &str) {
    let stores = [
        instance(mode, addrs, OnStoreError::Deny, None),
        instance(mode, addrs, OnStoreError::Deny, None),
    ];
    let rule = rule("shared");
    for store in &stores {
        warm_up(store, &rule).await;
    }
    let decisions = spend_in_parallel(&stores, &rule, "ip:198.51.100.7", 200).await;
    assert!(
        decisions.iter().all(|d| d.store == "redis"),
        "{decisions:?}"
    );
    assert_eq!(admitted(&decisions), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_admits_exactly_20_of_200_parallel_spends() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    exactly_20_of_200(Mode::Single, &addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_admits_exactly_20_of_200_parallel_spends() {
    let Some(addrs) = service_env("GOEX_REDIS_CLUSTER_ADDRS") else {
        return;
    };
    exactly_20_of_200(Mode::Cluster, &addrs).await;
}

/// A client that has not connected yet (an instance just started under load): 200 parallel
/// first spends wait for the pool's connections, none falls back.
async fn cold_start(mode: Mode, addrs: &str) {
    let store = instance(mode, addrs, OnStoreError::Deny, None);
    let decisions = spend_in_parallel(&[store], &rule("cold"), "ip:198.51.100.7", 200).await;
    assert!(
        decisions.iter().all(|d| d.store == "redis"),
        "{decisions:?}"
    );
    assert_eq!(admitted(&decisions), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_decides_a_cold_start_burst() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    cold_start(Mode::Single, &addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_decides_a_cold_start_burst() {
    let Some(addrs) = service_env("GOEX_REDIS_CLUSTER_ADDRS") else {
        return;
    };
    cold_start(Mode::Cluster, &addrs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_budget_on_single() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    two_instances_share_20(Mode::Single, &addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_budget_on_cluster() {
    let Some(addrs) = service_env("GOEX_REDIS_CLUSTER_ADDRS") else {
        return;
    };
    two_instances_share_20(Mode::Cluster, &addrs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_say_what_is_left_and_idle_keys_expire_when_full() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    let store = instance(Mode::Single, &addr, OnStoreError::Deny, None);
    let (rule, key) = (rule("numbers"), "user:42");
    let quota = Quota {
        interval: Duration::from_secs(10),
        burst: 3,
    };
    let spend = async || {
        store
            .spend(BucketRef {
                rule: &rule,
                key,
                quota,
            })
            .await
    };
    let secs = Duration::from_secs;
    // From a full bucket, on Redis's clock: the first spend leaves exactly one interval to
    // earn back. The later ones run a few ms after, so their times are bounded, not exact.
    let first = spend().await;
    assert_eq!(
        (
            first.allowed,
            first.limit,
            first.remaining,
            first.reset_after,
            first.retry_after
        ),
        (true, 3, 2, secs(10), Duration::ZERO)
    );
    assert_eq!(first.store, "redis");
    let second = spend().await;
    assert_eq!((second.allowed, second.remaining), (true, 1));
    assert!(second.reset_after <= secs(20) && second.reset_after > secs(19));
    let third = spend().await;
    assert_eq!((third.allowed, third.remaining), (true, 0));
    let refused = spend().await;
    assert_eq!((refused.allowed, refused.remaining), (false, 0));
    assert!(refused.reset_after <= secs(30) && refused.reset_after > secs(29));
    assert!(refused.retry_after <= secs(10) && refused.retry_after > secs(9));
    assert_eq!(
        refused.reset_after - refused.retry_after,
        secs(20),
        "full one tolerance after the next request conforms"
    );

    // The key lives exactly as long as the bucket takes to be full again.
    let redis = client(Mode::Single, &addr);
    let ttl_ms: i64 = redis
        .query(cmd("PTTL").arg(bucket_key(&rule, key)))
        .await
        .unwrap();
    assert!(
        ttl_ms <= 30_000 && ttl_ms > 29_000,
        "expires when full: {ttl_ms} ms"
    );
}

/// `rate_limit_store_fallbacks_total{rule,action}` as rendered.
fn fallbacks(metrics: &goex_metrics::Metrics, rule: &str, action: &str) -> u64 {
    metrics
        .render()
        .lines()
        .find(|l| {
            l.starts_with("go_example_rate_limit_store_fallbacks_total{")
                && l.contains(&format!("rule=\"{rule}\""))
                && l.contains(&format!("action=\"{action}\""))
        })
        .map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_redis_is_stopped_on_store_error_decides_and_is_counted() {
    if service_env("APP__REDIS__ADDRS__0").is_none() {
        return;
    }
    let port = free_port();
    let server = private_redis(port);
    let addr = format!("127.0.0.1:{port}");
    let metrics = goex_metrics::Metrics::new().unwrap();
    let records = Records::default();
    let local = logged_instance(
        Mode::Single,
        &addr,
        OnStoreError::Local,
        Some(&metrics),
        slog::Logger::root(Capture(records.clone()), slog::o!()),
    );
    let allow = instance(Mode::Single, &addr, OnStoreError::Allow, Some(&metrics));
    let deny = instance(Mode::Single, &addr, OnStoreError::Deny, Some(&metrics));
    let rule = rule("fallback");
    let bucket = |key| BucketRef {
        rule: &rule,
        key,
        quota: PER_MINUTE_BURST_20,
    };
    // Under a rule of its own: spends before the server listens fall back, and count.
    let probe = format!("{rule}_probe");
    assert!(
        eventually(Duration::from_secs(10), async || local
            .spend(BucketRef {
                rule: &probe,
                key: "ip:up",
                quota: PER_MINUTE_BURST_20
            })
            .await
            .store
            == "redis")
        .await,
        "the private server answers"
    );
    // A server that lost its scripts (a restart, SCRIPT FLUSH) gets the script again.
    let admin = client(Mode::Single, &addr);
    let _: String = admin.query(cmd("SCRIPT").arg("FLUSH")).await.unwrap();
    let reloaded = local.spend(bucket("ip:up")).await;
    assert_eq!((reloaded.store, reloaded.allowed), ("redis", true));
    // Five spent in Redis from the key below: the in-process limiter does not know them.
    for _ in 0..5 {
        assert_eq!(local.spend(bucket("ip:198.51.100.7")).await.store, "redis");
    }
    drop(server);

    // local: the in-process limiter decides, exactly as in memory (its own full bucket).
    let decisions =
        spend_in_parallel(std::slice::from_ref(&local), &rule, "ip:198.51.100.7", 200).await;
    assert!(
        decisions.iter().all(|d| d.store == FALLBACK),
        "{decisions:?}"
    );
    assert_eq!(admitted(&decisions), 20);
    assert_eq!(fallbacks(&metrics, &rule, "local"), 200);
    // Said once, not 200 times: the next line of this rule is 10 s away.
    let warned: Vec<_> = records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.get("rule") == Some(&rule))
        .cloned()
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(
        warned[0]["msg"],
        "rate-limit store unavailable: falling back"
    );
    assert_eq!(warned[0]["action"], "local");
    assert!(
        warned[0]["error"].contains("redis unavailable"),
        "{warned:?}"
    );

    let allowed = allow.spend(bucket("ip:198.51.100.7")).await;
    assert_eq!(
        (allowed.allowed, allowed.store, allowed.remaining),
        (true, FALLBACK, 19)
    );
    assert_eq!(fallbacks(&metrics, &rule, "allow"), 1);

    let denied = deny.spend(bucket("ip:198.51.100.7")).await;
    assert_eq!(
        (denied.allowed, denied.store, denied.retry_after),
        (false, FALLBACK, Duration::from_secs(60))
    );
    assert_eq!(fallbacks(&metrics, &rule, "deny"), 1);
    assert_eq!(
        fallbacks(&metrics, &rule, "local"),
        200,
        "counted per action"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_spends_in_redis_when_enabled_and_in_process_otherwise() {
    let Some(addr) = service_env("APP__REDIS__ADDRS__0") else {
        return;
    };
    let app = spawn_app_with(&redis_overrides("single", &addr)).await;
    let store: &dyn RateLimitStore = app.module.resolve_ref();
    assert_eq!(store.backend(), "redis");
    let rule = rule("module");
    let one = Quota {
        interval: Duration::from_secs(60),
        burst: 1,
    };
    let bucket = BucketRef {
        rule: &rule,
        key: "ip:192.0.2.1",
        quota: one,
    };
    assert_eq!(store.spend(bucket).await.store, "redis");

    let app = spawn_app().await;
    let store: &dyn RateLimitStore = app.module.resolve_ref();
    assert_eq!(store.backend(), "memory");
    let first = store.spend(bucket).await;
    assert_eq!((first.allowed, first.store), (true, "memory"));
    assert!(!store.spend(bucket).await.allowed);
}

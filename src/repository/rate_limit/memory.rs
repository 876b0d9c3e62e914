//! The in-process rate-limit store: one keyed GCRA limiter per rule (the `governor` crate) over
//! a bounded key map (`rate_limit.max_keys`, then one shared overflow bucket), idle keys evicted
//! on a timer (`rate_limit.eviction_interval`).
//!
//! governor decides (its GCRA, its clock, its `retain_recent`); the map of keys is ours, a
//! governor `StateStore` over dashmap like governor's own, because governor's map grows with
//! every new key and a flood of new addresses must not grow memory without bound.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use governor::RateLimiter;
use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;
use tokio::task::AbortHandle;

use super::{BucketRef, Decision, Quota, RateLimitStore};
use crate::meta::config::RateLimitConfig;

/// [`Decision::store`] and [`RateLimitStore::backend`] of this store.
pub const MEMORY: &str = "memory";

/// The most rules one store keeps: the config's own bound (`rate_limit.rules` is refused at
/// start with more). A spend under a rule name past this many (a programming error, never a
/// client's doing: clients choose keys, not rule names) is admitted uncounted rather than
/// growing the table.
pub use crate::meta::config::MAX_RULES;

/// [`RateLimitStore`] in process. Each rule has its own governor limiter (a rule's quota is
/// fixed), created on its first spend; each limiter keeps at most `max_keys` client keys. When a
/// rule is full, every new key spends from the rule's one overflow bucket until the eviction
/// timer frees room: a flood of new addresses is limited as if it were one client, and the
/// clients already counted keep their own buckets.
pub struct MemoryRateLimitStore<C: Clock = MonotonicClock> {
    rules: Arc<Rules<C>>,
}

struct Rules<C: Clock> {
    clock: C,
    max_keys: usize,
    eviction_interval: Duration,
    by_name: RwLock<HashMap<Box<str>, Arc<RuleLimiter<C>>>>,
    /// Whether the eviction task runs (cleared by the task itself when it ends, so a spend
    /// after a runtime stopped starts it again on the spender's runtime).
    evicting: AtomicBool,
    evictor: Mutex<Option<AbortHandle>>,
}

impl MemoryRateLimitStore<MonotonicClock> {
    /// A store on the monotonic clock, bounded by `config.max_keys` keys per rule.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self::with_clock(config, MonotonicClock)
    }
}

impl<C> MemoryRateLimitStore<C>
where
    C: Clock + Clone + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    /// A store on `clock` (governor's `FakeRelativeClock` in tests). The eviction timer starts
    /// with the first spend, on that spend's runtime, and stops when the store is dropped.
    pub fn with_clock(config: &RateLimitConfig, clock: C) -> Self {
        Self {
            rules: Arc::new(Rules {
                clock,
                max_keys: config.max_keys.max(1),
                eviction_interval: config.eviction_interval,
                by_name: RwLock::new(HashMap::new()),
                evicting: AtomicBool::new(false),
                evictor: Mutex::new(None),
            }),
        }
    }

    /// Spends one request from `bucket` (what [`RateLimitStore::spend`] does, without the
    /// `async`: the Redis store's fallback calls it inline).
    pub fn spend_now(&self, bucket: BucketRef<'_>) -> Decision {
        if !self.rules.evicting.load(Ordering::Relaxed) {
            self.start_evictor();
        }
        match self.rules.rule(bucket.rule, bucket.quota) {
            Some(rule) => rule.spend(bucket.key),
            None => Decision {
                allowed: true,
                limit: burst(bucket.quota).get(),
                remaining: burst(bucket.quota).get() - 1,
                reset_after: Duration::ZERO,
                retry_after: Duration::ZERO,
                store: MEMORY,
            },
        }
    }

    /// Drops every key whose bucket is full again (governor's `retain_recent`), in every rule.
    /// The eviction timer calls this every `rate_limit.eviction_interval`.
    pub fn evict_idle(&self) {
        self.rules.evict_idle();
    }

    /// The client keys `rule` keeps now (the overflow bucket not counted).
    pub fn keys(&self, rule: &str) -> usize {
        read(&self.rules.by_name)
            .get(rule)
            .map_or(0, |r| r.limiter.len())
    }

    fn start_evictor(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut evictor = self
            .rules
            .evictor
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.rules.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        // The task holds the rules weakly: dropping the store ends it (and aborts it at once,
        // below); a runtime that stops drops it, which clears `evicting`.
        let weak = Arc::downgrade(&self.rules);
        let period = self.rules.eviction_interval;
        let task = runtime.spawn(async move {
            let _running = EvictorRunning(weak.clone());
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(rules) = weak.upgrade() else { break };
                rules.evict_idle();
            }
        });
        *evictor = Some(task.abort_handle());
    }
}

/// Clears [`Rules::evicting`] when the eviction task ends, however it ends.
struct EvictorRunning<C: Clock>(Weak<Rules<C>>);

impl<C: Clock> Drop for EvictorRunning<C> {
    fn drop(&mut self) {
        if let Some(rules) = self.0.upgrade() {
            rules.evicting.store(false, Ordering::Release);
        }
    }
}

impl<C: Clock> Drop for Rules<C> {
    fn drop(&mut self) {
        let evictor = self
            .evictor
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = evictor.take() {
            task.abort();
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn burst(quota: Quota) -> NonZeroU32 {
    NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN)
}

impl<C: Clock + Clone> Rules<C> {
    /// The limiter of rule `name`, made on its first spend (or made anew when the rule's quota
    /// changed); `None` when the table is full.
    fn rule(&self, name: &str, quota: Quota) -> Option<Arc<RuleLimiter<C>>> {
        if let Some(rule) = read(&self.by_name).get(name)
            && rule.quota == quota
        {
            return Some(rule.clone());
        }
        let mut by_name = self.by_name.write().unwrap_or_else(PoisonError::into_inner);
        match by_name.get(name) {
            Some(rule) if rule.quota == quota => return Some(rule.clone()),
            None if by_name.len() >= MAX_RULES => return None,
            _ => {}
        }
        let rule = Arc::new(RuleLimiter::new(quota, self.max_keys, self.clock.clone()));
        by_name.insert(name.into(), rule.clone());
        Some(rule)
    }

    fn evict_idle(&self) {
        let rules: Vec<_> = read(&self.by_name).values().cloned().collect();
        for rule in rules {
            let before = rule.limiter.len();
            rule.limiter.retain_recent();
            // Give the memory of a flood back once most of it is gone.
            if rule.limiter.len() * 2 < before {
                rule.limiter.shrink_to_fit();
            }
        }
    }
}

/// One rule: governor's limiter over its bounded key map.
struct RuleLimiter<C: Clock> {
    quota: Quota,
    /// GCRA's tolerance: `interval × (burst − 1)`.
    tau: Nanos,
    /// The limiter's origin (its stored times count from it). Read just before the limiter
    /// reads its own: the same instant on a fake clock, nanoseconds apart on a real one.
    start: C::Instant,
    limiter: RateLimiter<SpendKey, Buckets, C, StateInformationMiddleware>,
}

impl<C: Clock> RuleLimiter<C> {
    fn new(quota: Quota, max_keys: usize, clock: C) -> Self {
        let interval = quota.interval.max(Duration::from_nanos(1));
        let governed = governor::Quota::with_period(interval)
            .expect("a non-zero period")
            .allow_burst(burst(quota));
        let start = clock.now();
        Self {
            quota,
            tau: Nanos::from(interval * (burst(quota).get() - 1)),
            start,
            limiter: RateLimiter::new(governed, Buckets::new(max_keys), clock),
        }
    }

    fn spend(&self, key: &str) -> Decision {
        let key = SpendKey {
            name: key.into(),
            tat: Cell::new(0),
        };
        let outcome = self.limiter.check_key(&key);
        let now = self.limiter.clock().now().duration_since(self.start);
        // Until the bucket is full again: its theoretical arrival time from now.
        let reset_after: Duration = Nanos::new(key.tat.get()).saturating_sub(now).into();
        let limit = burst(self.quota).get();
        match outcome {
            Ok(snapshot) => Decision {
                allowed: true,
                limit,
                remaining: snapshot.remaining_burst_capacity(),
                reset_after,
                retry_after: Duration::ZERO,
                store: MEMORY,
            },
            Err(_) => Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after,
                // One request conforms once the arrival time is within the tolerance.
                retry_after: reset_after.saturating_sub(self.tau.into()),
                store: MEMORY,
            },
        }
    }
}

/// The key governor's limiter hands to [`Buckets`]: the client key, and a slot where the store
/// writes the bucket's theoretical arrival time after the decision (governor's snapshot keeps it
/// to itself, and `reset_after` is made from it). Keys are equal by name alone.
#[derive(Clone)]
struct SpendKey {
    name: Box<str>,
    tat: Cell<u64>,
}

impl Hash for SpendKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl PartialEq for SpendKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for SpendKey {}

/// One rule's buckets: a theoretical arrival time (nanoseconds since the limiter's origin; 0 for
/// none, as in governor's own store) per client key, at most `max_keys` of them, and the
/// overflow bucket every new key shares while the map is full.
struct Buckets {
    keys: DashMap<Box<str>, AtomicU64>,
    /// Keys in `keys`, reserved before an insert so that parallel new keys cannot overshoot.
    count: AtomicUsize,
    max_keys: usize,
    overflow: AtomicU64,
}

impl Buckets {
    fn new(max_keys: usize) -> Self {
        Self {
            keys: DashMap::new(),
            count: AtomicUsize::new(0),
            max_keys,
            overflow: AtomicU64::new(0),
        }
    }

    fn reserve(&self) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_keys).then_some(n + 1)
            })
            .is_ok()
    }
}

/// governor's compare-and-swap loop over one bucket (as its `InMemoryState` does), writing the
/// arrival time the decision leaves into `key`.
fn measure<T, E>(
    bucket: &AtomicU64,
    key: &SpendKey,
    decide: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
) -> Result<T, E> {
    let mut prev = bucket.load(Ordering::Acquire);
    loop {
        match decide(NonZeroU64::new(prev).map(|n| Nanos::new(n.get()))) {
            Ok((outcome, next)) => {
                match bucket.compare_exchange_weak(
                    prev,
                    next.as_u64(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        key.tat.set(next.as_u64());
                        return Ok(outcome);
                    }
                    Err(now) => prev = now,
                }
            }
            Err(refused) => {
                key.tat.set(prev);
                return Err(refused);
            }
        }
    }
}

impl StateStore for Buckets {
    type Key = SpendKey;

    fn measure_and_replace<T, F, E>(&self, key: &SpendKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(bucket) = self.keys.get(&*key.name) {
            return measure(&bucket, key, f);
        }
        if !self.reserve() {
            return measure(&self.overflow, key, f);
        }
        match self.keys.entry(key.name.clone()) {
            Entry::Occupied(bucket) => {
                // Another spend made it first: give the reservation back.
                self.count.fetch_sub(1, Ordering::AcqRel);
                measure(bucket.get(), key, f)
            }
            Entry::Vacant(slot) => measure(&slot.insert(AtomicU64::new(0)), key, f),
        }
    }
}

impl ShrinkableKeyedStateStore<SpendKey> for Buckets {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        let mut dropped = 0;
        self.keys.retain(|_, tat| {
            let keep = tat.load(Ordering::Acquire) > drop_below;
            dropped += usize::from(!keep);
            keep
        });
        self.count.fetch_sub(dropped, Ordering::AcqRel);
    }

    fn shrink_to_fit(&self) {
        self.keys.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[async_trait]
impl<C> RateLimitStore for MemoryRateLimitStore<C>
where
    C: Clock + Clone + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    fn backend(&self) -> &'static str {
        MEMORY
    }

    async fn spend(&self, bucket: BucketRef<'_>) -> Decision {
        self.spend_now(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::config::OnStoreError;
    use governor::clock::FakeRelativeClock;

    fn config(max_keys: usize, eviction_interval: Duration) -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            on_store_error: OnStoreError::Local,
            max_keys,
            eviction_interval,
            fallback_log_interval: Duration::from_secs(10),
            rules: Vec::new(),
        }
    }

    fn fake_store(max_keys: usize) -> (MemoryRateLimitStore<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let store = MemoryRateLimitStore::with_clock(
            &config(max_keys, Duration::from_secs(60)),
            clock.clone(),
        );
        (store, clock)
    }

    /// The rule: 1 per minute, burst 20.
    const PER_MINUTE_BURST_20: Quota = Quota {
        interval: Duration::from_secs(60),
        burst: 20,
    };

    fn bucket<'a>(rule: &'a str, key: &'a str, quota: Quota) -> BucketRef<'a> {
        BucketRef { rule, key, quota }
    }

    /// `n` spends from one key, all started at once on the runtime's threads; the admitted count.
    async fn admitted_in_parallel(
        store: &Arc<MemoryRateLimitStore<FakeRelativeClock>>,
        key: &str,
        n: usize,
    ) -> usize {
        let start = Arc::new(tokio::sync::Barrier::new(n));
        let spends = (0..n).map(|_| {
            let (store, start, key) = (store.clone(), start.clone(), key.to_owned());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .spend(bucket("per-minute", &key, PER_MINUTE_BURST_20))
                    .await
                    .allowed
            })
        });
        futures_util::future::join_all(spends)
            .await
            .into_iter()
            .map(|allowed| usize::from(allowed.expect("spend task")))
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_20_admits_exactly_20_of_200_parallel_spends_then_one_per_interval() {
        let (store, clock) = fake_store(1000);
        let store = Arc::new(store);
        assert_eq!(
            admitted_in_parallel(&store, "ip:198.51.100.7", 200).await,
            20
        );
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            admitted_in_parallel(&store, "ip:198.51.100.7", 200).await,
            0
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            admitted_in_parallel(&store, "ip:198.51.100.7", 200).await,
            1
        );
        // Another key of the same rule has its own full bucket.
        assert_eq!(
            admitted_in_parallel(&store, "ip:198.51.100.8", 200).await,
            20
        );
    }

    #[tokio::test]
    async fn decisions_say_exactly_what_is_left_and_when() {
        let (store, clock) = fake_store(1000);
        let quota = Quota {
            interval: Duration::from_secs(10),
            burst: 3,
        };
        let spend = || store.spend_now(bucket("headers", "user:42", quota));
        let secs = Duration::from_secs;
        let decision = |allowed, remaining, reset, retry| Decision {
            allowed,
            limit: 3,
            remaining,
            reset_after: secs(reset),
            retry_after: secs(retry),
            store: MEMORY,
        };
        assert_eq!(spend(), decision(true, 2, 10, 0));
        assert_eq!(spend(), decision(true, 1, 20, 0));
        assert_eq!(spend(), decision(true, 0, 30, 0));
        assert_eq!(spend(), decision(false, 0, 30, 10));
        clock.advance(secs(4));
        assert_eq!(spend(), decision(false, 0, 26, 6));
        clock.advance(secs(6));
        // One request earned back, and spent at once.
        assert_eq!(spend(), decision(true, 0, 30, 0));
        clock.advance(Duration::from_millis(15_500));
        // 15.5 s later 1.55 requests are back: one is spent, 0.55 left (told as 0).
        let half = store.spend_now(bucket("headers", "user:42", quota));
        assert_eq!(
            (half.allowed, half.remaining, half.reset_after),
            (true, 0, Duration::from_millis(24_500))
        );
        clock.advance(secs(60));
        // Full again: the first spend of a full bucket.
        assert_eq!(spend(), decision(true, 2, 10, 0));
        // A rule of burst 1: nothing remains after a spend; the next is refused for an interval.
        let one = Quota {
            interval: secs(5),
            burst: 1,
        };
        let single = || store.spend_now(bucket("single", "user:42", one));
        let d = single();
        assert_eq!(
            (d.allowed, d.limit, d.remaining, d.reset_after),
            (true, 1, 0, secs(5))
        );
        let d = single();
        assert_eq!(
            (d.allowed, d.reset_after, d.retry_after),
            (false, secs(5), secs(5))
        );
    }

    #[test]
    fn rules_count_the_same_key_apart_and_a_new_quota_starts_a_rule_afresh() {
        let (store, _clock) = fake_store(1000);
        let one = Quota {
            interval: Duration::from_secs(60),
            burst: 1,
        };
        assert!(store.spend_now(bucket("a", "ip:192.0.2.1", one)).allowed);
        assert!(!store.spend_now(bucket("a", "ip:192.0.2.1", one)).allowed);
        assert!(store.spend_now(bucket("b", "ip:192.0.2.1", one)).allowed);
        let two = Quota { burst: 2, ..one };
        assert!(store.spend_now(bucket("a", "ip:192.0.2.1", two)).allowed);
    }

    #[test]
    fn a_flood_of_new_keys_is_bounded_and_shares_one_overflow_bucket() {
        let (store, clock) = fake_store(1000);
        let quota = PER_MINUTE_BURST_20;
        // A client counted before the flood keeps its own bucket through it.
        assert!(
            store
                .spend_now(bucket("flood", "ip:203.0.113.1", quota))
                .allowed
        );
        let admitted = (0..100_000)
            .filter(|i| {
                store
                    .spend_now(bucket("flood", &format!("ip:10.{i}"), quota))
                    .allowed
            })
            .count();
        assert_eq!(store.keys("flood"), 1000, "at most max_keys keys");
        // 999 new keys got their own bucket; the other 99,001 shared one burst of 20.
        assert_eq!(admitted, 999 + 20);
        let kept = store.spend_now(bucket("flood", "ip:203.0.113.1", quota));
        assert_eq!((kept.allowed, kept.remaining), (true, 18));
        assert!(!store.spend_now(bucket("flood", "ip:10.new", quota)).allowed);

        // Once the buckets are full again the timer's eviction frees the room.
        clock.advance(Duration::from_secs(20 * 60 + 60));
        store.evict_idle();
        assert_eq!(store.keys("flood"), 0);
        let fresh = store.spend_now(bucket("flood", "ip:10.new", quota));
        assert_eq!((fresh.allowed, fresh.remaining), (true, 19));
        assert_eq!(store.keys("flood"), 1);
    }

    #[test]
    fn eviction_drops_only_buckets_that_are_full_again() {
        let (store, clock) = fake_store(1000);
        let quota = Quota {
            interval: Duration::from_secs(10),
            burst: 2,
        };
        store.spend_now(bucket("idle", "ip:192.0.2.1", quota));
        clock.advance(Duration::from_secs(15));
        store.spend_now(bucket("idle", "ip:192.0.2.2", quota));
        clock.advance(Duration::from_secs(10));
        // At 25 s: .1 has been full since 10 s; .2 is full just now, and governor keeps a key
        // until one interval after its bucket is full.
        store.evict_idle();
        assert_eq!(store.keys("idle"), 1);
        let busy = store.spend_now(bucket("idle", "ip:192.0.2.2", quota));
        assert_eq!(busy.remaining, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_timer_evicts_and_stops_with_the_store() {
        let clock = FakeRelativeClock::default();
        let store =
            MemoryRateLimitStore::with_clock(&config(10, Duration::from_millis(20)), clock.clone());
        let quota = Quota {
            interval: Duration::from_secs(1),
            burst: 1,
        };
        store.spend_now(bucket("timer", "ip:192.0.2.1", quota));
        assert_eq!(store.keys("timer"), 1);
        clock.advance(Duration::from_secs(5));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.keys("timer") != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not evicted by the timer"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let task = store
            .rules
            .evictor
            .lock()
            .unwrap()
            .clone()
            .expect("the timer runs");
        let rules = Arc::downgrade(&store.rules);
        drop(store);
        // (At most one eviction in progress may hold the rules for its few microseconds.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rules.upgrade().is_some() || !task.is_finished() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the timer outlived its store"
            );
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn without_a_runtime_no_timer_starts_and_spends_still_decide() {
        let (store, _clock) = fake_store(10);
        let one = Quota {
            interval: Duration::from_secs(1),
            burst: 1,
        };
        assert!(store.spend_now(bucket("sync", "k", one)).allowed);
        assert!(!store.rules.evicting.load(Ordering::Relaxed));
    }
}

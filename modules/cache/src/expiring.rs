//! A bounded cache whose entries each carry their own lifetime, on moka: eviction is O(1)
//! (TinyLFU admission, LRU order) and never scans under a lock, and [`ExpiringCache::update`]
//! runs its closure atomically per key (moka's `and_compute_with`), so a counter checked and
//! incremented in one call cannot be raced.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache;

/// Longest lifetime an entry may be given (moka rejects durations near `Duration::MAX`).
const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

#[derive(Clone)]
struct Timed<V> {
    value: V,
    ttl: Duration,
}

/// Entries live for the TTL they were created with; updates keep the remaining time, so a
/// counter's window is fixed at its first increment.
struct CreatedTtl;

impl<K, V> Expiry<K, Timed<V>> for CreatedTtl {
    fn expire_after_create(&self, _key: &K, value: &Timed<V>, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        _value: &Timed<V>,
        _now: Instant,
        current: Option<Duration>,
    ) -> Option<Duration> {
        current
    }
}

/// The keys' hasher: foldhash, seeded at random per process. A verified-token lookup hashes a
/// whole JWT (about 700 bytes for RS512), where SipHash showed in profiles of `/home`.
type Hasher = foldhash::fast::RandomState;

/// A bounded map with per-entry expiry; the least recently used entries go first when full.
pub struct ExpiringCache<K, V> {
    inner: Cache<K, Timed<V>, Hasher>,
}

impl<K, V> ExpiringCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(capacity.max(1))
                .expire_after(CreatedTtl)
                .build_with_hasher(Hasher::default()),
        }
    }

    /// The live value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.get(key).map(|t| t.value)
    }

    /// Stores `value` under `key` for `ttl` (replacing any entry and its lifetime).
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        self.inner.insert(
            key,
            Timed {
                value,
                ttl: ttl.min(LONGEST),
            },
        );
    }

    /// Atomically replaces the live value under `key` by `f(old)` (`None` removes it); a new
    /// entry lives for `ttl`, an existing one keeps its expiry. Returns the new value.
    pub fn update(&self, key: K, ttl: Duration, f: impl FnOnce(Option<V>) -> Option<V>) -> Option<V>
    where
        K: Clone,
    {
        let ttl = ttl.min(LONGEST);
        let mut out = None;
        self.inner.entry(key).and_compute_with(|entry| {
            let old = entry.map(|e| e.into_value().value);
            match f(old) {
                Some(value) => {
                    out = Some(value.clone());
                    Op::Put(Timed { value, ttl })
                }
                None => Op::Remove,
            }
        });
        out
    }

    /// Removes `key`.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn entries_expire_by_their_own_ttl_and_updates_keep_the_window() {
        let c = ExpiringCache::new(100);
        c.insert("a".to_string(), 1, Duration::from_millis(40));
        c.insert("b".to_string(), 2, Duration::from_secs(60));
        c.update("w".to_string(), Duration::from_millis(80), |v| {
            Some(v.unwrap_or(0) + 1)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get("b"), Some(2));
        let n = c.update("w".to_string(), Duration::from_secs(60), |v| {
            Some(v.unwrap_or(0) + 1)
        });
        assert_eq!(n, Some(2));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(c.get("w"), None, "the window began at the first update");
        c.update("b".to_string(), Duration::ZERO, |_| None);
        assert_eq!(c.get("b"), None, "None removes");
    }

    #[test]
    fn concurrent_updates_are_atomic() {
        let c = Arc::new(ExpiringCache::new(100));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.update("k".to_string(), Duration::from_secs(60), |v| {
                            Some(v.unwrap_or(0) + 1)
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get("k"), Some(8000));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = ExpiringCache::new(50);
        for i in 0..10_000u32 {
            c.insert(i, i, Duration::from_secs(60));
        }
        c.inner.run_pending_tasks();
        assert!(c.inner.entry_count() <= 50, "{}", c.inner.entry_count());
    }
}

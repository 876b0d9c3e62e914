//! A small map with per-entry expiry for hot, read-mostly lookups (the in-process stand-in for
//! Redis on the embedded default). A read is one uncontended read lock and one hash lookup,
//! several times cheaper than a moka `get`, whose admission bookkeeping showed up as 7 % of a
//! `/hello` request (docs/decisions.md). Expired entries are dropped lazily. When the map is
//! full, an insert first sweeps expired entries (at most once a second), then either evicts the
//! entry closest to expiry ([`TtlMap::new`], for values that may be recomputed) or refuses the
//! new key ([`TtlMap::refusing`], for records that must never be dropped silently, such as
//! login records).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A bounded map whose entries expire.
pub struct TtlMap<K, V> {
    entries: RwLock<HashMap<K, (V, Instant)>>,
    capacity: usize,
    refuse_when_full: bool,
    last_sweep: Mutex<Option<Instant>>,
}

/// What [`TtlMap::compute`] does with the key.
pub enum Change<V> {
    /// Leave the entry as it is.
    Keep,
    /// Store this value with a fresh lifetime.
    Put(V),
    /// Store this value in place of a live one, keeping its expiry (no live entry: nothing is
    /// stored).
    Replace(V),
    /// Remove the entry.
    Remove,
}

/// A refusing map is full: the new key was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the in-process store is full")]
pub struct Full;

/// How often a full map may scan for expired entries.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

impl<K: Eq + Hash + Clone, V: Clone> TtlMap<K, V> {
    /// A map of at most `capacity` live entries; when full, the entry closest to expiry goes.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            refuse_when_full: false,
            last_sweep: Mutex::new(None),
        }
    }

    /// A map of at most `capacity` live entries that refuses new keys when full ([`Full`]),
    /// never dropping a live entry.
    pub fn refusing(capacity: usize) -> Self {
        Self {
            refuse_when_full: true,
            ..Self::new(capacity)
        }
    }

    /// The live value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(v, _)| v.clone())
    }

    /// Stores `value` under `key` for `ttl`.
    ///
    /// # Errors
    /// [`Full`] when a refusing map has no room for a new key.
    pub fn insert(&self, key: K, value: V, ttl: Duration) -> Result<(), Full> {
        self.compute(key, ttl, |_| (Change::Put(value), ()))
    }

    /// Reads the live value under `key` and applies `f`'s change, all under one write lock,
    /// so concurrent callers see each other's changes (compare-and-swap). A `Put` gives the
    /// entry `ttl` from now.
    ///
    /// # Errors
    /// [`Full`] when a refusing map has no room for a new key (`f` has run; its change is not
    /// applied).
    pub fn compute<R>(
        &self,
        key: K,
        ttl: Duration,
        f: impl FnOnce(Option<&V>) -> (Change<V>, R),
    ) -> Result<R, Full> {
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let live = entries.get(&key).filter(|(_, e)| *e > now).map(|(v, _)| v);
        let existed = entries.contains_key(&key);
        let was_live = live.is_some();
        let (change, out) = f(live);
        match change {
            Change::Keep => {}
            Change::Remove => {
                entries.remove(&key);
            }
            Change::Replace(value) => {
                if let Some(entry) = entries.get_mut(&key).filter(|_| was_live) {
                    entry.0 = value;
                }
            }
            Change::Put(value) => {
                if !existed && entries.len() >= self.capacity {
                    self.make_room(&mut entries, now)?;
                }
                entries.insert(key, (value, expiry(now, ttl)));
            }
        }
        Ok(out)
    }

    /// Frees one slot in a full map: sweeps expired entries (at most once per
    /// [`SWEEP_INTERVAL`], so a full map is not scanned on every insert), then evicts the
    /// entry closest to expiry, or refuses.
    fn make_room(&self, entries: &mut HashMap<K, (V, Instant)>, now: Instant) -> Result<(), Full> {
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| now.duration_since(t) >= SWEEP_INTERVAL) {
            *last = Some(now);
            entries.retain(|_, (_, e)| *e > now);
        }
        if entries.len() < self.capacity {
            return Ok(());
        }
        if self.refuse_when_full {
            return Err(Full);
        }
        let soonest = entries
            .iter()
            .min_by_key(|(_, (_, e))| *e)
            .map(|(k, _)| k.clone());
        if let Some(k) = soonest {
            entries.remove(&k);
        }
        Ok(())
    }

    /// Removes `key`.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|(_, e)| *e > now)
            .count()
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_removed() {
        let m = TtlMap::new(10);
        m.insert("a".to_string(), 1, Duration::from_millis(40))
            .unwrap();
        m.insert("b".to_string(), 2, Duration::from_secs(60))
            .unwrap();
        assert_eq!(m.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(m.get("a"), None);
        assert_eq!(m.get("b"), Some(2));
        m.remove("b");
        assert!(m.is_empty());
    }

    #[test]
    fn a_full_map_sweeps_expired_then_evicts_the_soonest_to_expire() {
        let m = TtlMap::new(3);
        m.insert(1, "short", Duration::from_millis(20)).unwrap();
        m.insert(2, "long", Duration::from_secs(60)).unwrap();
        m.insert(3, "mid", Duration::from_secs(30)).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        m.insert(4, "new", Duration::from_secs(60)).unwrap();
        assert_eq!(
            (m.get(&2), m.get(&3), m.get(&4)),
            (Some("long"), Some("mid"), Some("new")),
            "expired 1 swept"
        );
        m.insert(5, "newer", Duration::from_secs(60)).unwrap();
        assert_eq!(m.get(&3), None, "the soonest to expire went");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn replace_keeps_the_expiry_of_a_live_entry() {
        let m = TtlMap::new(3);
        m.insert("k", 1, Duration::from_millis(60)).unwrap();
        m.compute("k", Duration::MAX, |_| (Change::Replace(2), ()))
            .unwrap();
        assert_eq!(m.get("k"), Some(2));
        std::thread::sleep(Duration::from_millis(90));
        assert_eq!(m.get("k"), None, "still expired when it was going to");
        // No live entry: nothing stored.
        m.compute("k", Duration::from_secs(60), |_| (Change::Replace(3), ()))
            .unwrap();
        assert_eq!(m.get("k"), None);
    }

    #[test]
    fn compute_swaps_atomically_and_a_huge_ttl_does_not_overflow() {
        let m = TtlMap::new(3);
        let swapped = |m: &TtlMap<&str, u32>, expect: u32, new: u32| {
            m.compute("k", Duration::MAX, |old| match old {
                Some(v) if *v == expect => (Change::Put(new), true),
                _ => (Change::Keep, false),
            })
            .unwrap()
        };
        m.insert("k", 1, Duration::MAX).unwrap();
        assert!(swapped(&m, 1, 2));
        assert!(!swapped(&m, 1, 3), "1 was already swapped out");
        assert_eq!(m.get("k"), Some(2));
        m.compute("k", Duration::MAX, |_| (Change::Remove, ()))
            .unwrap();
        assert_eq!(m.get("k"), None);
    }

    #[test]
    fn a_refusing_map_never_drops_a_live_entry() {
        let m = TtlMap::refusing(2);
        m.insert(1, "a", Duration::from_secs(60)).unwrap();
        m.insert(2, "b", Duration::from_millis(20)).unwrap();
        assert_eq!(m.insert(3, "c", Duration::from_secs(60)), Err(Full));
        assert_eq!((m.get(&1), m.get(&2)), (Some("a"), Some("b")));
        assert_eq!(
            m.insert(1, "a2", Duration::from_secs(60)),
            Ok(()),
            "an existing key is replaced"
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            m.insert(3, "c", Duration::from_secs(60)),
            Ok(()),
            "the expired entry was swept"
        );
        assert_eq!((m.get(&1), m.get(&3)), (Some("a2"), Some("c")));
    }
}

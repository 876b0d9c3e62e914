//! A small map with per-entry expiry for hot, read-mostly lookups (the in-process stand-in for
//! Redis on the embedded default). A read is one uncontended read lock and one hash lookup,
//! several times cheaper than a moka `get`, whose admission bookkeeping showed up as 7 % of a
//! `/hello` request (docs/decisions.md). Expired entries are dropped lazily; when the map is
//! full, an insert first sweeps expired entries and then evicts the entry closest to expiry.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A bounded map whose entries expire.
pub struct TtlMap<K, V> {
    entries: RwLock<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlMap<K, V> {
    /// A map of at most `capacity` live entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
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
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        let expires = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, e)| *e > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (value, expires));
    }

    /// Updates the value under `key` in place (keeping a live entry's expiry, else using `ttl`).
    pub fn update(&self, key: K, ttl: Duration, f: impl FnOnce(Option<V>) -> V) {
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        match entries.get_mut(&key).filter(|(_, expires)| *expires > now) {
            Some((value, _)) => *value = f(Some(value.clone())),
            None => {
                drop(entries);
                self.insert(key, f(None), ttl);
            }
        }
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
        m.insert("a".to_string(), 1, Duration::from_millis(40));
        m.insert("b".to_string(), 2, Duration::from_secs(60));
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
        m.insert(1, "short", Duration::from_millis(20));
        m.insert(2, "long", Duration::from_secs(60));
        m.insert(3, "mid", Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(40));
        m.insert(4, "new", Duration::from_secs(60));
        assert_eq!(
            (m.get(&2), m.get(&3), m.get(&4)),
            (Some("long"), Some("mid"), Some("new")),
            "expired 1 swept"
        );
        m.insert(5, "newer", Duration::from_secs(60));
        assert_eq!(m.get(&3), None, "the soonest to expire went");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn update_keeps_the_value_and_a_huge_ttl_does_not_overflow() {
        let m = TtlMap::new(3);
        m.update("k", Duration::MAX, |old| old.unwrap_or(0) + 1);
        m.update("k", Duration::MAX, |old| old.unwrap_or(0) + 1);
        assert_eq!(m.get("k"), Some(2));
    }

    #[test]
    fn update_keeps_a_live_entrys_expiry() {
        let m = TtlMap::new(3);
        m.update("w", Duration::from_millis(60), |old| old.unwrap_or(0) + 1);
        std::thread::sleep(Duration::from_millis(40));
        m.update("w", Duration::from_secs(60), |old| old.unwrap_or(0) + 1);
        assert_eq!(m.get("w"), Some(2));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(m.get("w"), None, "a fixed window, not extended by updates");
    }
}

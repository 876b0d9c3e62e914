//! The in-process cache (the original's go-cache, here moka): one bounded cache whose entries
//! expire by the TTL of their key family (`cacheKeys.<family>` in config).

mod expiring;
mod ttl_map;

pub use expiring::ExpiringCache;
pub use ttl_map::{Change, Full, TtlMap};

use std::any::Any;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use serde::Deserialize;

/// The `cache` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Most entries kept; the least recently and frequently used go first beyond it.
    pub max_capacity: u64,
}

/// One key family (`cacheKeys.userInfo`): how its keys are spelled and how long entries live.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFamily {
    /// The key pattern; `{}` (or the original's `%d` / `%s`) is replaced by the id.
    pub key: String,
    /// How long an entry lives after it is written.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl KeyFamily {
    /// The key for `id`.
    pub fn key_for(&self, id: impl Display) -> String {
        let id = id.to_string();
        for placeholder in ["{}", "%d", "%s", "%v"] {
            if let Some(at) = self.key.find(placeholder) {
                let mut key = String::with_capacity(self.key.len() + id.len());
                key.push_str(&self.key[..at]);
                key.push_str(&id);
                key.push_str(&self.key[at + placeholder.len()..]);
                return key;
            }
        }
        format!("{}{id}", self.key)
    }
}

#[derive(Clone)]
struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A cheap-to-clone handle on the shared in-process cache.
#[derive(Clone)]
pub struct LocalCache {
    inner: Cache<String, Entry>,
}

impl LocalCache {
    /// A cache bounded by `settings.max_capacity` entries.
    pub fn new(settings: &Settings) -> Self {
        let inner = Cache::builder()
            .max_capacity(settings.max_capacity)
            .expire_after(PerEntryTtl)
            .build();
        Self { inner }
    }

    /// The value cached for `id` in `family`, if present, unexpired and of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(
        &self,
        family: &KeyFamily,
        id: impl Display,
    ) -> Option<T> {
        self.inner
            .get(&family.key_for(id))
            .and_then(|e| e.value.downcast_ref::<T>().cloned())
    }

    /// Caches `value` for `id` in `family` for the family's TTL.
    pub fn insert<T: Send + Sync + 'static>(&self, family: &KeyFamily, id: impl Display, value: T) {
        self.inner.insert(
            family.key_for(id),
            Entry {
                value: Arc::new(value),
                ttl: family.ttl,
            },
        );
    }

    /// Drops the entry for `id` in `family`.
    pub fn invalidate(&self, family: &KeyFamily, id: impl Display) {
        self.inner.invalidate(&family.key_for(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(ttl_ms: u64) -> KeyFamily {
        KeyFamily {
            key: "user:info:{}".into(),
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    #[test]
    fn keys_follow_the_pattern() {
        assert_eq!(family(1).key_for(7), "user:info:7");
        let go = KeyFamily {
            key: "user_info_%d".into(),
            ttl: Duration::ZERO,
        };
        assert_eq!(go.key_for(42), "user_info_42");
        let bare = KeyFamily {
            key: "u:".into(),
            ttl: Duration::ZERO,
        };
        assert_eq!(bare.key_for(1), "u:1");
    }

    #[test]
    fn entries_expire_by_their_family_ttl() {
        let cache = LocalCache::new(&Settings { max_capacity: 100 });
        let short = family(50);
        let long = KeyFamily {
            key: "other:{}".into(),
            ttl: Duration::from_secs(60),
        };
        cache.insert(&short, 1, String::from("a"));
        cache.insert(&long, 1, String::from("b"));
        assert_eq!(cache.get::<String>(&short, 1).as_deref(), Some("a"));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(cache.get::<String>(&short, 1), None);
        assert_eq!(cache.get::<String>(&long, 1).as_deref(), Some("b"));
    }

    #[test]
    fn wrong_type_is_a_miss_and_invalidate_removes() {
        let cache = LocalCache::new(&Settings { max_capacity: 100 });
        let f = family(60_000);
        cache.insert(&f, 2, 5u32);
        assert_eq!(cache.get::<String>(&f, 2), None);
        assert_eq!(cache.get::<u32>(&f, 2), Some(5));
        cache.invalidate(&f, 2);
        assert_eq!(cache.get::<u32>(&f, 2), None);
    }
}

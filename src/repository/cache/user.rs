//! Users in the in-process cache (the original's `repository/cache/user_repository.go`).

use std::sync::Arc;

use goex_cache::KeyFamily;
use shaku::{Component, Interface};

use crate::model::user::User;
use crate::repository::client::CacheClient;

/// Cache-aside storage of user rows under the `cacheKeys.userInfo` family.
pub trait UserCacheRepository: Interface {
    /// The cached user, if present and unexpired.
    fn get(&self, id: i64) -> Option<User>;
    /// Caches `user` for the family's TTL.
    fn set(&self, user: &User);
    /// Drops the cached user (after an update).
    fn invalidate(&self, id: i64);
}

/// [`UserCacheRepository`] over moka.
#[derive(Component)]
#[shaku(interface = UserCacheRepository)]
pub struct MokaUserCache {
    #[shaku(inject)]
    cache: Arc<dyn CacheClient>,
    family: KeyFamily,
    /// Hits and misses (`cache_requests_total{cache="user_info"}`), when metrics are on.
    metrics: Option<goex_metrics::Metrics>,
}

impl UserCacheRepository for MokaUserCache {
    fn get(&self, id: i64) -> Option<User> {
        let user = self.cache.cache().get::<User>(&self.family, id);
        if let Some(metrics) = &self.metrics {
            metrics.cache_lookup("user_info", user.is_some());
        }
        user
    }

    fn set(&self, user: &User) {
        self.cache
            .cache()
            .insert(&self.family, user.id, user.clone());
    }

    fn invalidate(&self, id: i64) {
        self.cache.cache().invalidate(&self.family, id);
    }
}

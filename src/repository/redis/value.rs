//! Plain values (the original's `userRedisRepo.GetValue("aa")`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::repository::error::RepoError;
use crate::repository::kv::KeyValueClient;

/// Reads and writes string values by key.
#[async_trait]
pub trait ValueRepository: Interface {
    /// The value under `key`, if any.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when Redis does not answer in time.
    async fn get(&self, key: &str) -> Result<Option<String>, RepoError>;
    /// Stores `value` under `key` for `ttl` (zero: no expiry).
    ///
    /// # Errors
    /// As [`ValueRepository::get`].
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError>;
}

/// [`ValueRepository`] over the key-value client (Redis, or in process).
#[derive(Component)]
#[shaku(interface = ValueRepository)]
pub struct KvValueRepository {
    #[shaku(inject)]
    kv: Arc<dyn KeyValueClient>,
}

#[async_trait]
impl ValueRepository for KvValueRepository {
    async fn get(&self, key: &str) -> Result<Option<String>, RepoError> {
        self.kv.get(key).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError> {
        self.kv.set(key, value, ttl).await
    }
}

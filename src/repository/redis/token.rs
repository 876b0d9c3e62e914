//! The latest login per user (the original's single sign-on record, a Redis hash per user):
//! the auth feature writes it at login and compares tokens against it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::repository::error::RepoError;
use crate::repository::kv::KeyValueClient;

/// The login record of one user, field by field (`access_jti`, `refresh_jti`, ...).
pub type LoginRecord = HashMap<String, String>;

/// Per-user login records.
#[async_trait]
pub trait TokenRepository: Interface {
    /// Replaces the fields given for `user_id` and sets the record's lifetime.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when Redis does not answer in time.
    async fn save(
        &self,
        user_id: i64,
        fields: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<(), RepoError>;
    /// The record of `user_id` (empty when none).
    ///
    /// # Errors
    /// As [`TokenRepository::save`].
    async fn get(&self, user_id: i64) -> Result<LoginRecord, RepoError>;
    /// Removes the record (logout).
    ///
    /// # Errors
    /// As [`TokenRepository::save`].
    async fn revoke(&self, user_id: i64) -> Result<(), RepoError>;
}

/// [`TokenRepository`] over the key-value client. Keys carry a hash tag (`auth:token:{42}`) so
/// that every key of one user lands in one Cluster slot.
#[derive(Component)]
#[shaku(interface = TokenRepository)]
pub struct KvTokenRepository {
    #[shaku(inject)]
    kv: Arc<dyn KeyValueClient>,
}

fn key(user_id: i64) -> String {
    format!("auth:token:{{{user_id}}}")
}

#[async_trait]
impl TokenRepository for KvTokenRepository {
    async fn save(
        &self,
        user_id: i64,
        fields: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<(), RepoError> {
        self.kv.hash_set(&key(user_id), fields, ttl).await
    }

    async fn get(&self, user_id: i64) -> Result<LoginRecord, RepoError> {
        self.kv.hash_get_all(&key(user_id)).await
    }

    async fn revoke(&self, user_id: i64) -> Result<(), RepoError> {
        self.kv.delete(&key(user_id)).await
    }
}

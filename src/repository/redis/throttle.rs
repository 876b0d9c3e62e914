//! Attempt counters for throttling (per username, per client address, per registration
//! address), in Redis or in process. An attempt reserves its slot before the work it guards
//! runs, in one atomic step, so parallel attempts cannot all pass a check made before any of
//! them was counted.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::repository::error::RepoError;
use crate::repository::kv::KeyValueClient;

/// Counts attempts in fixed windows.
#[async_trait]
pub trait LoginThrottleRepository: Interface {
    /// Counts one attempt for `subject` (the window starts at the first) and returns the
    /// count including it, atomically.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store does not answer in time.
    async fn reserve(&self, subject: &str, window: Duration) -> Result<i64, RepoError>;
    /// Gives back one reserved attempt (it was refused, or it succeeded and is no failure).
    /// An expired window stays expired.
    ///
    /// # Errors
    /// As [`LoginThrottleRepository::reserve`].
    async fn release(&self, subject: &str) -> Result<(), RepoError>;
    /// Counts `n` at once for `subject` ([`LoginThrottleRepository::reserve`] for a batch).
    ///
    /// # Errors
    /// As [`LoginThrottleRepository::reserve`].
    async fn reserve_many(&self, subject: &str, n: i64, window: Duration)
    -> Result<i64, RepoError>;
    /// Gives back `n` reserved at once.
    ///
    /// # Errors
    /// As [`LoginThrottleRepository::reserve`].
    async fn release_many(&self, subject: &str, n: i64) -> Result<(), RepoError>;
}

/// [`LoginThrottleRepository`] over the key-value client.
#[derive(Component)]
#[shaku(interface = LoginThrottleRepository)]
pub struct KvLoginThrottleRepository {
    #[shaku(inject)]
    kv: Arc<dyn KeyValueClient>,
}

fn key(subject: &str) -> String {
    format!("auth:attempts:{subject}")
}

#[async_trait]
impl LoginThrottleRepository for KvLoginThrottleRepository {
    async fn reserve(&self, subject: &str, window: Duration) -> Result<i64, RepoError> {
        self.kv.increment(&key(subject), 1, window).await
    }

    async fn release(&self, subject: &str) -> Result<(), RepoError> {
        self.kv.decrement(&key(subject), 1).await
    }

    async fn reserve_many(
        &self,
        subject: &str,
        n: i64,
        window: Duration,
    ) -> Result<i64, RepoError> {
        self.kv.increment(&key(subject), n, window).await
    }

    async fn release_many(&self, subject: &str, n: i64) -> Result<(), RepoError> {
        if n > 0 {
            self.kv.decrement(&key(subject), n).await?;
        }
        Ok(())
    }
}

//! Failed-login counters (per username and per client address), in Redis or in process.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::repository::error::RepoError;
use crate::repository::kv::KeyValueClient;

/// Counts failures in fixed windows.
#[async_trait]
pub trait LoginThrottleRepository: Interface {
    /// Failures recorded for `subject` in the current window.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store does not answer in time.
    async fn failures(&self, subject: &str) -> Result<i64, RepoError>;
    /// Records one failure; the window starts at the first.
    ///
    /// # Errors
    /// As [`LoginThrottleRepository::failures`].
    async fn record_failure(&self, subject: &str, window: Duration) -> Result<i64, RepoError>;
}

/// [`LoginThrottleRepository`] over the key-value client.
#[derive(Component)]
#[shaku(interface = LoginThrottleRepository)]
pub struct KvLoginThrottleRepository {
    #[shaku(inject)]
    kv: Arc<dyn KeyValueClient>,
}

fn key(subject: &str) -> String {
    format!("auth:fail:{subject}")
}

#[async_trait]
impl LoginThrottleRepository for KvLoginThrottleRepository {
    async fn failures(&self, subject: &str) -> Result<i64, RepoError> {
        Ok(self
            .kv
            .get(&key(subject))
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    async fn record_failure(&self, subject: &str, window: Duration) -> Result<i64, RepoError> {
        self.kv.increment(&key(subject), window).await
    }
}

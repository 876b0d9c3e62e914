//! The key-value client the Redis repositories use: Redis (single or Cluster) when `redis.enabled`,
//! else an in-process store with the same semantics, so the embedded default needs no server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use goex_cache::TtlMap;
use goex_redis::{RedisClient, RedisError, cmd, pipe};
use shaku::{Component, Interface};

use crate::repository::error::RepoError;

/// The dependency name in errors and `/readyz`.
pub const REDIS: &str = "redis";

/// Strings and hashes with expiry: the subset of Redis the repositories use.
#[async_trait]
pub trait KeyValueClient: Interface {
    /// `redis` or `in-process`.
    fn backend(&self) -> &'static str;
    /// `GET key`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store does not answer in time.
    async fn get(&self, key: &str) -> Result<Option<String>, RepoError>;
    /// `SET key value [EX ttl]` (no expiry when `ttl` is zero).
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError>;
    /// `DEL key`.
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn delete(&self, key: &str) -> Result<(), RepoError>;
    /// `HSET key f v ...` then `EXPIRE key ttl`, atomically.
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn hash_set(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<(), RepoError>;
    /// `HGETALL key` (empty when absent).
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn hash_get_all(&self, key: &str) -> Result<HashMap<String, String>, RepoError>;
    /// `INCR key`, setting the expiry when the key is new; returns the new count.
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn increment(&self, key: &str, ttl: Duration) -> Result<i64, RepoError>;
    /// `PING`.
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn ping(&self) -> Result<(), RepoError>;
}

fn repo_error(e: RedisError) -> RepoError {
    match e {
        RedisError::Unavailable(_) => RepoError::Unavailable {
            dependency: REDIS,
            source: Box::new(e),
        },
        other => RepoError::Internal(Box::new(other)),
    }
}

/// [`KeyValueClient`] over Redis.
#[derive(Component)]
#[shaku(interface = KeyValueClient)]
pub struct RedisKeyValueClient {
    client: RedisClient,
}

#[async_trait]
impl KeyValueClient for RedisKeyValueClient {
    fn backend(&self) -> &'static str {
        REDIS
    }

    async fn get(&self, key: &str) -> Result<Option<String>, RepoError> {
        self.client
            .query(cmd("GET").arg(key))
            .await
            .map_err(repo_error)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError> {
        let mut c = cmd("SET");
        c.arg(key).arg(value);
        if !ttl.is_zero() {
            c.arg("PX").arg(ttl.as_millis() as u64);
        }
        self.client.query::<()>(&c).await.map_err(repo_error)
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.client
            .query::<()>(cmd("DEL").arg(key))
            .await
            .map_err(repo_error)
    }

    async fn hash_set(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<(), RepoError> {
        let mut p = pipe();
        p.atomic().cmd("HSET").arg(key).arg(fields).ignore();
        if !ttl.is_zero() {
            p.cmd("PEXPIRE")
                .arg(key)
                .arg(ttl.as_millis() as u64)
                .ignore();
        }
        self.client
            .query_pipeline::<()>(&p)
            .await
            .map_err(repo_error)
    }

    async fn hash_get_all(&self, key: &str) -> Result<HashMap<String, String>, RepoError> {
        self.client
            .query(cmd("HGETALL").arg(key))
            .await
            .map_err(repo_error)
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<i64, RepoError> {
        let mut p = pipe();
        p.atomic()
            .cmd("INCR")
            .arg(key)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl.as_millis() as u64)
            .arg("NX")
            .ignore();
        let (count,): (i64,) = self.client.query_pipeline(&p).await.map_err(repo_error)?;
        Ok(count)
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.client.ping().await.map_err(repo_error)
    }
}

/// A value of the in-process store: a string or a hash, like Redis's types.
#[derive(Clone)]
pub enum Stored {
    /// A string (`SET`).
    Text(Arc<str>),
    /// A hash (`HSET`).
    Hash(Arc<HashMap<String, String>>),
}

/// [`KeyValueClient`] in process (the embedded default): a bounded map with expiry.
#[derive(Component)]
#[shaku(interface = KeyValueClient)]
pub struct LocalKeyValueClient {
    store: TtlMap<String, Stored>,
}

fn ttl_or_forever(ttl: Duration) -> Duration {
    if ttl.is_zero() { Duration::MAX } else { ttl }
}

#[async_trait]
impl KeyValueClient for LocalKeyValueClient {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn get(&self, key: &str) -> Result<Option<String>, RepoError> {
        Ok(match self.store.get(key) {
            Some(Stored::Text(v)) => Some(v.to_string()),
            _ => None,
        })
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError> {
        self.store.insert(
            key.to_owned(),
            Stored::Text(value.into()),
            ttl_or_forever(ttl),
        );
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.store.remove(key);
        Ok(())
    }

    async fn hash_set(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<(), RepoError> {
        self.store
            .update(key.to_owned(), ttl_or_forever(ttl), |old| {
                let mut hash = match old {
                    Some(Stored::Hash(h)) => (*h).clone(),
                    _ => HashMap::new(),
                };
                for (f, v) in fields {
                    hash.insert((*f).to_owned(), (*v).to_owned());
                }
                Stored::Hash(Arc::new(hash))
            });
        Ok(())
    }

    async fn hash_get_all(&self, key: &str) -> Result<HashMap<String, String>, RepoError> {
        Ok(match self.store.get(key) {
            Some(Stored::Hash(h)) => (*h).clone(),
            _ => HashMap::new(),
        })
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<i64, RepoError> {
        let mut count = 0;
        self.store.update(key.to_owned(), ttl, |old| {
            count = match old {
                Some(Stored::Text(v)) => v.parse::<i64>().unwrap_or(0) + 1,
                _ => 1,
            };
            Stored::Text(count.to_string().into())
        });
        Ok(count)
    }

    async fn ping(&self) -> Result<(), RepoError> {
        Ok(())
    }
}

impl LocalKeyValueClient {
    /// An in-process store of at most `capacity` keys (the assembly puts it in place of the
    /// Redis client when Redis is off).
    pub fn new(capacity: usize) -> Self {
        Self {
            store: TtlMap::new(capacity),
        }
    }
}

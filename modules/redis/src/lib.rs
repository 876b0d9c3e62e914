//! Redis for the repositories, single node or Cluster (the original's go-redis single client and
//! `ClusterClient`), pooled by deadpool-redis. Every command is bounded by `command_timeout`, so
//! a node that is down or failing over answers an error in time, never a hang.

use std::time::Duration;

use deadpool_redis::redis::{self, FromRedisValue};
use deadpool_redis::{PoolConfig, Runtime, Timeouts};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use deadpool_redis::redis::{Cmd, Pipeline, cmd, pipe};

/// `single` or `cluster`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One server (`addrs[0]`), with `db`.
    Single,
    /// A Redis Cluster reached through any of `addrs` (db 0 only, by Redis's design).
    Cluster,
}

/// The `redis` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Use Redis at all; off means the in-process stores of the embedded default.
    pub enabled: bool,
    /// `single` or `cluster`.
    pub mode: Mode,
    /// `host:port` of the server, or seed nodes of the cluster.
    pub addrs: Vec<String>,
    /// The `AUTH` password; empty for none.
    pub password: SecretString,
    /// Database number (single mode).
    pub db: i64,
    /// Pooled connections (each is multiplexed).
    pub pool_size: usize,
    /// Longest wait to connect or to get a pooled connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest a command may take, retries and cluster redirections included.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No node answered in time, the connection broke, or the cluster is failing over.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The server refused the command (wrong type, bad arguments).
    #[error("redis command failed: {0}")]
    Command(String),
    /// The settings cannot make a client.
    #[error("redis settings: {0}")]
    Settings(String),
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        use redis::ErrorKind;
        let unavailable = e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                ErrorKind::Server(_) if matches!(
                    e.code(),
                    Some("CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN" | "LOADING" | "READONLY" | "MOVED" | "ASK")
                )
            );
        if unavailable {
            RedisError::Unavailable(e.to_string())
        } else {
            RedisError::Command(e.to_string())
        }
    }
}

impl From<deadpool_redis::PoolError> for RedisError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        RedisError::Unavailable(e.to_string())
    }
}

#[derive(Clone)]
enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

/// A cheap-to-clone Redis client.
#[derive(Clone)]
pub struct RedisClient {
    pool: Pool,
    command_timeout: Duration,
    mode: Mode,
}

impl RedisClient {
    /// Builds the pool. Nothing connects yet: a Redis that is down fails commands, not the start.
    ///
    /// # Errors
    /// No address, or an address that is not `host:port`.
    pub fn new(settings: &Settings) -> Result<Self, RedisError> {
        if settings.addrs.is_empty() {
            return Err(RedisError::Settings("redis.addrs is empty".into()));
        }
        let password = settings.password.expose_secret();
        let auth = if password.is_empty() {
            String::new()
        } else {
            format!(":{password}@")
        };
        let pool_config = PoolConfig {
            max_size: settings.pool_size.max(1),
            timeouts: Timeouts {
                wait: Some(settings.connect_timeout),
                create: Some(settings.connect_timeout),
                recycle: Some(settings.connect_timeout),
            },
            ..PoolConfig::default()
        };
        let bad = |e: &dyn std::fmt::Display| RedisError::Settings(e.to_string());
        let pool = match settings.mode {
            Mode::Single => {
                let url = format!("redis://{auth}{}/{}", settings.addrs[0], settings.db);
                let mut config = deadpool_redis::Config::from_url(url);
                config.pool = Some(pool_config);
                Pool::Single(
                    config
                        .create_pool(Some(Runtime::Tokio1))
                        .map_err(|e| bad(&e))?,
                )
            }
            Mode::Cluster => {
                let urls: Vec<String> = settings
                    .addrs
                    .iter()
                    .map(|a| format!("redis://{auth}{a}"))
                    .collect();
                let mut config = deadpool_redis::cluster::Config::from_urls(urls);
                config.pool = Some(pool_config);
                Pool::Cluster(
                    config
                        .create_pool(Some(Runtime::Tokio1))
                        .map_err(|e| bad(&e))?,
                )
            }
        };
        Ok(Self {
            pool,
            command_timeout: settings.command_timeout,
            mode: settings.mode,
        })
    }

    /// `single` or `cluster`.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs one command within `command_timeout`.
    ///
    /// # Errors
    /// [`RedisError::Unavailable`] on timeouts and connection or cluster failures,
    /// [`RedisError::Command`] when the server refuses it.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.bounded(async {
            match &self.pool {
                Pool::Single(p) => Ok(cmd.query_async(&mut *p.get().await?).await?),
                Pool::Cluster(p) => Ok(cmd.query_async(&mut *p.get().await?).await?),
            }
        })
        .await
    }

    /// Runs a pipeline (a `MULTI` transaction when built with `.atomic()`) within
    /// `command_timeout`. In cluster mode every key must hash to one slot: use hash tags.
    ///
    /// # Errors
    /// As [`RedisClient::query`].
    pub async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
    ) -> Result<T, RedisError> {
        self.bounded(async {
            match &self.pool {
                Pool::Single(p) => Ok(pipeline.query_async(&mut *p.get().await?).await?),
                Pool::Cluster(p) => Ok(pipeline.query_async(&mut *p.get().await?).await?),
            }
        })
        .await
    }

    /// `PING`.
    ///
    /// # Errors
    /// As [`RedisClient::query`].
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.query::<String>(&cmd("PING")).await.map(|_| ())
    }

    /// Closes the pool.
    pub fn close(&self) {
        match &self.pool {
            Pool::Single(p) => p.close(),
            Pool::Cluster(p) => p.close(),
        }
    }

    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.command_timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::Unavailable(format!(
                "no answer within {:?}",
                self.command_timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: Mode, addrs: &[&str]) -> Settings {
        Settings {
            enabled: true,
            mode,
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            password: SecretString::from(""),
            db: 0,
            pool_size: 2,
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn empty_addresses_are_refused() {
        assert!(matches!(
            RedisClient::new(&settings(Mode::Single, &[])),
            Err(RedisError::Settings(_))
        ));
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_unavailable_in_time() {
        for mode in [Mode::Single, Mode::Cluster] {
            let client = RedisClient::new(&settings(mode, &["127.0.0.1:1"])).unwrap();
            let started = std::time::Instant::now();
            let err = client.ping().await.unwrap_err();
            assert!(matches!(err, RedisError::Unavailable(_)), "{mode:?}: {err}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{mode:?} bounded"
            );
        }
    }
}

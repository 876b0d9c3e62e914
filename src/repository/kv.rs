//! The key-value client the Redis repositories use: Redis (single or Cluster) when `redis.enabled`,
//! else an in-process store with the same semantics, so the embedded default needs no server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use goex_cache::{Change, ExpiringCache, Full, TtlMap};
use goex_metrics::CallMetrics;
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
    /// `INCRBY key by`, setting the expiry when the key is new (one atomic step); returns the
    /// new count. The window is fixed at the first increment.
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, RepoError>;
    /// `DECRBY key by` when the key exists (an expired counter is not recreated without
    /// expiry).
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn decrement(&self, key: &str, by: i64) -> Result<(), RepoError>;
    /// In one atomic step: when the hash exists and every `expect` field has its value, writes
    /// the `update` fields and sets the expiry (`None`: deletes the hash); otherwise changes
    /// nothing and says why.
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn hash_compare_and_swap(
        &self,
        key: &str,
        expect: &[(&str, &str)],
        update: Option<&[(&str, &str)]>,
        ttl: Duration,
    ) -> Result<HashSwap, RepoError>;
    /// `PING`.
    ///
    /// # Errors
    /// As [`KeyValueClient::get`].
    async fn ping(&self) -> Result<(), RepoError>;
}

/// The outcome of [`KeyValueClient::hash_compare_and_swap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashSwap {
    /// The expected fields matched; the update (or deletion) was applied.
    Swapped,
    /// No such hash.
    Missing,
    /// The hash exists but differs; here is what it holds.
    Mismatch(HashMap<String, String>),
}

/// The dependency name of the in-process stores when one is full.
pub const LOCAL_STORE: &str = "in-process store";

/// `INCR` and a first `PEXPIRE` in one step. `PTTL == -1` also catches a counter that somehow
/// lost its expiry, so no counter lives forever. (Not `PEXPIRE ... NX`: Redis 6 rejects it.)
const INCREMENT_SCRIPT: &str = r"
local new = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if new or redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n";

/// `DECR` only when the key exists: a bare `DECR` on an expired key would create it at -1 with
/// no expiry.
const DECREMENT_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], ARGV[1]) end
return 0";

/// Compare-and-swap on a hash. ARGV: expected pair count, update pair count (-1 deletes the
/// hash), expiry in ms (0 keeps it), then the expected pairs and the update pairs.
const HASH_CAS_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local n, m, ttl, i = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), 4
for _ = 1, n do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    local now = redis.call('HGETALL', KEYS[1])
    table.insert(now, 1, 'mismatch')
    return now
  end
  i = i + 2
end
if m < 0 then
  redis.call('DEL', KEYS[1])
  return {'swapped'}
end
for _ = 1, m do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {'swapped'}";

fn eval(script: &str, key: &str) -> goex_redis::Cmd {
    let mut c = cmd("EVAL");
    c.arg(script).arg(1).arg(key);
    c
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

/// What [`RedisKeyValueClient`] sends, as the `command` label: Redis's own command names, and
/// the scripts and the transaction by what they do. A fixed set, never a key.
#[derive(Clone, Copy, Debug)]
enum Command {
    Get,
    Set,
    Del,
    /// `MULTI` `HSET` `PEXPIRE` `EXEC`.
    Hset,
    Hgetall,
    /// The `INCR` + first `PEXPIRE` script.
    Incr,
    /// The `DECR`-if-it-exists script.
    Decr,
    /// The hash compare-and-swap script.
    HashCas,
    Ping,
}

impl Command {
    const ALL: [Command; 9] = [
        Command::Get,
        Command::Set,
        Command::Del,
        Command::Hset,
        Command::Hgetall,
        Command::Incr,
        Command::Decr,
        Command::HashCas,
        Command::Ping,
    ];

    fn label(self) -> &'static str {
        match self {
            Command::Get => "get",
            Command::Set => "set",
            Command::Del => "del",
            Command::Hset => "hset",
            Command::Hgetall => "hgetall",
            Command::Incr => "incr",
            Command::Decr => "decr",
            Command::HashCas => "hash_cas",
            Command::Ping => "ping",
        }
    }
}

/// The handles of every [`Command`] (`redis_command_duration_seconds` and
/// `redis_command_errors_total`), looked up once when the module is built.
#[derive(Clone, Debug)]
pub struct RedisCommandMetrics([CallMetrics; Command::ALL.len()]);

impl RedisCommandMetrics {
    /// The handles of every command the client sends, on `metrics`.
    pub fn new(metrics: &goex_metrics::Metrics) -> Self {
        Self(Command::ALL.map(|c| metrics.redis_command(c.label(), &RedisError::COMMAND_KINDS)))
    }
}

/// [`KeyValueClient`] over Redis.
#[derive(Component)]
#[shaku(interface = KeyValueClient)]
pub struct RedisKeyValueClient {
    client: RedisClient,
    /// Latency and errors per command, when metrics are on.
    metrics: Option<RedisCommandMetrics>,
}

impl RedisKeyValueClient {
    /// Awaits `call`, a `command` on the client, timing it when metrics are on.
    async fn run<T>(
        &self,
        command: Command,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RepoError> {
        let metrics = self.metrics.as_ref().map(|m| &m.0[command as usize]);
        goex_metrics::timed(metrics, RedisError::kind, call)
            .await
            .map_err(repo_error)
    }
}

#[async_trait]
impl KeyValueClient for RedisKeyValueClient {
    fn backend(&self) -> &'static str {
        REDIS
    }

    async fn get(&self, key: &str) -> Result<Option<String>, RepoError> {
        self.run(Command::Get, self.client.query(cmd("GET").arg(key)))
            .await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError> {
        let mut c = cmd("SET");
        c.arg(key).arg(value);
        if !ttl.is_zero() {
            c.arg("PX").arg(ttl.as_millis() as u64);
        }
        self.run(Command::Set, self.client.query::<()>(&c)).await
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.run(Command::Del, self.client.query::<()>(cmd("DEL").arg(key)))
            .await
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
        self.run(Command::Hset, self.client.query_pipeline::<()>(&p))
            .await
    }

    async fn hash_get_all(&self, key: &str) -> Result<HashMap<String, String>, RepoError> {
        self.run(Command::Hgetall, self.client.query(cmd("HGETALL").arg(key)))
            .await
    }

    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, RepoError> {
        let mut c = eval(INCREMENT_SCRIPT, key);
        c.arg(ttl.as_millis().max(1) as u64).arg(by);
        self.run(Command::Incr, self.client.query(&c)).await
    }

    async fn decrement(&self, key: &str, by: i64) -> Result<(), RepoError> {
        let mut c = eval(DECREMENT_SCRIPT, key);
        c.arg(by);
        self.run(Command::Decr, self.client.query::<i64>(&c))
            .await
            .map(drop)
    }

    async fn hash_compare_and_swap(
        &self,
        key: &str,
        expect: &[(&str, &str)],
        update: Option<&[(&str, &str)]>,
        ttl: Duration,
    ) -> Result<HashSwap, RepoError> {
        let mut c = eval(HASH_CAS_SCRIPT, key);
        c.arg(expect.len())
            .arg(update.map_or(-1, |u| u.len() as i64))
            .arg(ttl.as_millis() as u64);
        for (f, v) in expect.iter().chain(update.unwrap_or_default()) {
            c.arg(*f).arg(*v);
        }
        let reply: Vec<String> = self.run(Command::HashCas, self.client.query(&c)).await?;
        match reply.first().map(String::as_str) {
            Some("swapped") => Ok(HashSwap::Swapped),
            Some("missing") => Ok(HashSwap::Missing),
            Some("mismatch") => Ok(HashSwap::Mismatch(
                reply[1..]
                    .chunks_exact(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            )),
            _ => Err(RepoError::Internal(
                format!("unexpected compare-and-swap reply {reply:?}").into(),
            )),
        }
    }

    async fn ping(&self) -> Result<(), RepoError> {
        self.run(Command::Ping, self.client.ping()).await
    }
}

/// [`KeyValueClient`] in process (the embedded default). Three stores, so that one kind of
/// key can never crowd out another: strings (values; when full, the entry closest to expiry
/// goes), hashes (login records; when full, new ones are refused with 503 rather than anyone
/// being signed out), and counters (throttles; bounded with least-recently-used eviction, and
/// incremented atomically per key).
#[derive(Component)]
#[shaku(interface = KeyValueClient)]
pub struct LocalKeyValueClient {
    strings: TtlMap<String, Arc<str>>,
    hashes: TtlMap<String, Arc<HashMap<String, String>>>,
    counters: ExpiringCache<String, i64>,
}

fn ttl_or_forever(ttl: Duration) -> Duration {
    if ttl.is_zero() { Duration::MAX } else { ttl }
}

fn full(e: Full) -> RepoError {
    RepoError::Unavailable {
        dependency: LOCAL_STORE,
        source: Box::new(e),
    }
}

#[async_trait]
impl KeyValueClient for LocalKeyValueClient {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn get(&self, key: &str) -> Result<Option<String>, RepoError> {
        Ok(self.strings.get(key).map(|v| v.to_string()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RepoError> {
        self.strings
            .insert(key.to_owned(), value.into(), ttl_or_forever(ttl))
            .map_err(full)
    }

    async fn delete(&self, key: &str) -> Result<(), RepoError> {
        self.strings.remove(key);
        self.hashes.remove(key);
        self.counters.remove(key);
        Ok(())
    }

    async fn hash_set(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<(), RepoError> {
        self.hashes
            .compute(key.to_owned(), ttl_or_forever(ttl), |old| {
                let mut hash = old.map(|h| (**h).clone()).unwrap_or_default();
                for (f, v) in fields {
                    hash.insert((*f).to_owned(), (*v).to_owned());
                }
                (Change::Put(Arc::new(hash)), ())
            })
            .map_err(full)
    }

    async fn hash_get_all(&self, key: &str) -> Result<HashMap<String, String>, RepoError> {
        Ok(self
            .hashes
            .get(key)
            .map(|h| (*h).clone())
            .unwrap_or_default())
    }

    async fn hash_compare_and_swap(
        &self,
        key: &str,
        expect: &[(&str, &str)],
        update: Option<&[(&str, &str)]>,
        ttl: Duration,
    ) -> Result<HashSwap, RepoError> {
        self.hashes
            .compute(key.to_owned(), ttl_or_forever(ttl), |old| {
                let Some(hash) = old else {
                    return (Change::Keep, HashSwap::Missing);
                };
                if !expect
                    .iter()
                    .all(|(f, v)| hash.get(*f).is_some_and(|have| have == v))
                {
                    return (Change::Keep, HashSwap::Mismatch((**hash).clone()));
                }
                let Some(update) = update else {
                    return (Change::Remove, HashSwap::Swapped);
                };
                let mut next = (**hash).clone();
                for (f, v) in update {
                    next.insert((*f).to_owned(), (*v).to_owned());
                }
                let next = Arc::new(next);
                // A zero expiry keeps the hash's own, as the Redis script does.
                let change = if ttl.is_zero() {
                    Change::Replace(next)
                } else {
                    Change::Put(next)
                };
                (change, HashSwap::Swapped)
            })
            .map_err(full)
    }

    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, RepoError> {
        Ok(self
            .counters
            .update(key.to_owned(), ttl, |n| Some(n.unwrap_or(0) + by))
            .unwrap_or(by))
    }

    async fn decrement(&self, key: &str, by: i64) -> Result<(), RepoError> {
        // The closure runs only for a live counter's key; an absent one stays absent.
        self.counters
            .update(key.to_owned(), Duration::ZERO, |n| n.map(|n| n - by));
        Ok(())
    }

    async fn ping(&self) -> Result<(), RepoError> {
        Ok(())
    }
}

/// Capacities of the in-process stores.
#[derive(Clone, Copy, Debug)]
pub struct LocalStoreLimits {
    /// Values (`GET`/`SET` keys).
    pub values: usize,
    /// Login records (hashes).
    pub logins: usize,
    /// Throttle counters.
    pub counters: u64,
}

impl LocalKeyValueClient {
    /// In-process stores with these capacities (the assembly puts it in place of the Redis
    /// client when Redis is off).
    pub fn new(limits: LocalStoreLimits) -> Self {
        Self {
            strings: TtlMap::new(limits.values),
            hashes: TtlMap::refusing(limits.logins),
            counters: ExpiringCache::new(limits.counters),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_handles_are_indexed_by_discriminant() {
        for (i, command) in Command::ALL.iter().enumerate() {
            assert_eq!(*command as usize, i, "{command:?}");
        }
    }
}

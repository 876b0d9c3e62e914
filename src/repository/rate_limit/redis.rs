//! The rate-limit store shared by every instance: GCRA in one Lua script on the Redis pools
//! (single or Cluster), and what decides when Redis does not answer (`rate_limit.on_store_error`:
//! the in-process store, allow, or deny), said in a rate-limited warn log and a metric.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use goex_metrics::{CallMetrics, Metrics};
use goex_redis::{RedisClient, RedisError, Script};
use shaku::Component;
use slog::Logger;

use super::memory::{MAX_RULES, MemoryRateLimitStore};
use super::{BucketRef, Decision, Quota, RateLimitStore};
use crate::meta::config::{OnStoreError, RateLimitConfig};

/// [`RateLimitStore::backend`] and [`Decision::store`] when Redis decided.
pub const REDIS: &str = "redis";
/// [`Decision::store`] when Redis did not answer and `rate_limit.on_store_error` decided.
pub const FALLBACK: &str = "fallback";

/// The prefix of every bucket's key: `rl:{<rule>:<key>}`.
pub const KEY_PREFIX: &str = "rl:";

/// GCRA (the algorithm governor runs in process), in one step on the node that owns the key,
/// on that node's clock (`TIME`), so every instance sees one clock per bucket.
/// KEYS[1]: the bucket, holding its theoretical arrival time (TAT) in µs since the epoch.
/// ARGV[1]: the emission interval in µs; ARGV[2]: the burst.
/// Returns {allowed (1|0), remaining, reset_after µs, retry_after µs}.
/// The key expires when the bucket is full again: an idle key is indistinguishable from none.
/// Times stay below 2^53 µs, exact in Lua's doubles; the TAT is written with `%.0f` because a
/// Lua number argument to `redis.call` would be written in exponent notation.
const SPEND_SCRIPT: &str = r"
local t = tonumber(ARGV[1])
local tau = t * (tonumber(ARGV[2]) - 1)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if now < tat - tau then
  return {0, 0, tat - now, tat - tau - now}
end
if tat < now then tat = now end
tat = tat + t
local reset = tat - now
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil(reset / 1000))
return {1, math.floor((tau + t - reset) / t), reset, 0}";

/// `rl:{<rule>:<key>}`: the braces make the whole bucket name Redis Cluster's hash tag, so a
/// script that touched more keys of one bucket (never two buckets) would stay on one slot.
pub fn bucket_key(rule: &str, key: &str) -> String {
    format!("{KEY_PREFIX}{{{rule}:{key}}}")
}

/// The handles of the store's series, looked up once when the module is built.
#[derive(Clone, Debug)]
pub struct RateLimitStoreMetrics {
    metrics: Metrics,
    /// `redis_command_duration_seconds{command="rate_limit"}` and its errors.
    script: CallMetrics,
}

impl RateLimitStoreMetrics {
    /// The store's handles on `metrics`, each rule of `config` with its fallback series at 0
    /// (present from the start, as the decisions are).
    pub fn new(metrics: &Metrics, config: &RateLimitConfig) -> Self {
        for rule in &config.rules {
            metrics.rate_limit_store_fallback_series(&rule.name, action_of(config.on_store_error));
        }
        Self {
            metrics: metrics.clone(),
            script: metrics.redis_command("rate_limit", &RedisError::COMMAND_KINDS),
        }
    }
}

/// The `action` label of `on_store_error`.
fn action_of(on_store_error: OnStoreError) -> &'static str {
    match on_store_error {
        OnStoreError::Local => "local",
        OnStoreError::Allow => "allow",
        OnStoreError::Deny => "deny",
    }
}

/// [`RateLimitStore`] on Redis, with the fallback of `rate_limit.on_store_error`.
#[derive(Component)]
#[shaku(interface = RateLimitStore)]
pub struct RedisRateLimitStore {
    client: RedisClient,
    /// `on_store_error` (the rest of the section is the in-process store's).
    config: RateLimitConfig,
    /// Decides when Redis does not answer and `on_store_error` is `local`.
    local: MemoryRateLimitStore,
    metrics: Option<RateLimitStoreMetrics>,
    logger: Logger,
    script: Script,
    warnings: FallbackWarnings,
}

impl RedisRateLimitStore {
    /// The store on `client`; `local` decides when Redis does not answer and
    /// `config.on_store_error` is `local`.
    pub fn new(
        client: RedisClient,
        config: RateLimitConfig,
        local: MemoryRateLimitStore,
        metrics: Option<RateLimitStoreMetrics>,
        logger: Logger,
    ) -> Self {
        let p = Self::parameters(client, config, local, metrics, logger);
        Self {
            client: p.client,
            config: p.config,
            local: p.local,
            metrics: p.metrics,
            logger: p.logger,
            script: p.script,
            warnings: p.warnings,
        }
    }

    /// The component's parameters (what [`RedisRateLimitStore::new`] takes, and its script).
    pub fn parameters(
        client: RedisClient,
        config: RateLimitConfig,
        local: MemoryRateLimitStore,
        metrics: Option<RateLimitStoreMetrics>,
        logger: Logger,
    ) -> RedisRateLimitStoreParameters {
        RedisRateLimitStoreParameters {
            client,
            config,
            local,
            metrics,
            logger,
            script: Script::new(SPEND_SCRIPT),
            warnings: FallbackWarnings::default(),
        }
    }

    async fn spend_in_redis(&self, bucket: BucketRef<'_>) -> Result<Decision, RedisError> {
        let limit = burst(bucket.quota);
        let interval_us = u64::try_from(bucket.quota.interval.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let key = bucket_key(bucket.rule, bucket.key);
        let mut invocation = self.script.key(&key);
        invocation.arg(interval_us).arg(limit);
        let reply: Vec<i64> = goex_metrics::timed(
            self.metrics.as_ref().map(|m| &m.script),
            RedisError::kind,
            self.client.invoke_script(&invocation),
        )
        .await?;
        let [allowed, remaining, reset_us, retry_us] = reply[..] else {
            return Err(RedisError::Command(format!(
                "rate-limit script answered {reply:?}"
            )));
        };
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_after: micros(reset_us),
            retry_after: micros(retry_us),
            store: REDIS,
        })
    }

    /// What decides `bucket` when Redis did not answer (`error`).
    fn fall_back(&self, bucket: BucketRef<'_>, error: &RedisError) -> Decision {
        let action = action_of(self.config.on_store_error);
        if let Some(metrics) = &self.metrics {
            metrics
                .metrics
                .rate_limit_store_fallback(bucket.rule, action);
        }
        if let Some(suppressed) = self
            .warnings
            .due(bucket.rule, self.config.fallback_log_interval)
        {
            slog::warn!(self.logger, "rate-limit store unavailable: falling back";
                "rule" => bucket.rule, "action" => action, "error" => %error,
                "fallbacks_not_logged" => suppressed);
        }
        let limit = burst(bucket.quota);
        let decision = match self.config.on_store_error {
            OnStoreError::Local => self.local.spend_now(bucket),
            // Nothing is known of the bucket: it is told as a fresh one.
            OnStoreError::Allow => Decision {
                allowed: true,
                limit,
                remaining: limit - 1,
                reset_after: bucket.quota.interval,
                retry_after: Duration::ZERO,
                store: FALLBACK,
            },
            // Try again in one interval, when Redis may be back.
            OnStoreError::Deny => Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after: bucket.quota.interval,
                retry_after: bucket.quota.interval,
                store: FALLBACK,
            },
        };
        Decision {
            store: FALLBACK,
            ..decision
        }
    }
}

fn burst(quota: Quota) -> u32 {
    quota.burst.max(1)
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    fn backend(&self) -> &'static str {
        REDIS
    }

    async fn spend(&self, bucket: BucketRef<'_>) -> Decision {
        match self.spend_in_redis(bucket).await {
            Ok(decision) => decision,
            Err(e) => self.fall_back(bucket, &e),
        }
    }
}

/// When each rule last said it fell back, and how many fallbacks it has not said since.
#[derive(Default)]
pub struct FallbackWarnings(Mutex<HashMap<Box<str>, (Instant, u64)>>);

impl FallbackWarnings {
    /// `Some(fallbacks not logged since the last line)` when `rule` may log again, at most
    /// once per `every` (`rate_limit.fallback_log_interval`).
    fn due(&self, rule: &str, every: Duration) -> Option<u64> {
        let mut warned = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let full = warned.len() >= MAX_RULES;
        match warned.get_mut(rule) {
            Some((last, suppressed)) if now.duration_since(*last) < every => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            // Bounded like the rules themselves.
            None if full => None,
            None => {
                warned.insert(rule.into(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_are_one_hash_tag() {
        assert_eq!(
            bucket_key("hello", "ip:192.0.2.1"),
            "rl:{hello:ip:192.0.2.1}"
        );
    }

    #[test]
    fn a_rule_warns_once_per_period_and_counts_the_rest() {
        const EVERY: Duration = Duration::from_secs(10);
        let warnings = FallbackWarnings::default();
        assert_eq!(warnings.due("a", EVERY), Some(0));
        assert_eq!(warnings.due("a", EVERY), None);
        assert_eq!(warnings.due("a", EVERY), None);
        assert_eq!(warnings.due("b", EVERY), Some(0), "rules are counted apart");
        // As if the period had passed.
        warnings.0.lock().unwrap().get_mut("a").unwrap().0 -= EVERY;
        assert_eq!(warnings.due("a", EVERY), Some(2));
        assert_eq!(warnings.due("a", EVERY), None);
        // At 0s every fallback is logged.
        assert_eq!(warnings.due("a", Duration::ZERO), Some(1));
        assert_eq!(warnings.due("a", Duration::ZERO), Some(0));
    }
}

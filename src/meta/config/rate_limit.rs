//! `rate_limit.*`: request rate limits by route group (docs/overload.md): whether they apply,
//! where their buckets live and what happens when Redis does not answer. The rules themselves
//! (which routes, which keys, what quota) are in `rules`.

use std::time::Duration;

use goex_config::ConfigError;
use serde::Deserialize;

use super::refuse_zero;

/// The `rate_limit` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Off: no rule is applied and nothing is counted (the test profile and the benchmarks turn
    /// it off; the rules' own tests turn it on).
    pub enabled: bool,
    /// When Redis is configured (`redis.enabled`) and does not answer: `local` (the in-process
    /// limiter decides, as go-zero's TokenLimiter falls back), `allow` or `deny`.
    pub on_store_error: OnStoreError,
    /// The most client keys one rule keeps in process; past it idle keys are evicted first, and
    /// a flood of new addresses cannot grow memory without bound.
    pub max_keys: usize,
    /// How often idle keys (buckets that are full again) are evicted from the in-process store.
    #[serde(with = "humantime_serde")]
    pub eviction_interval: Duration,
}

/// What a rule does when its Redis store does not answer.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// The in-process limiter decides (per instance, not shared).
    Local,
    /// The request is admitted.
    Allow,
    /// The request is refused (429).
    Deny,
}

impl RateLimitConfig {
    /// `rate_limit.*`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        refuse_zero(&[
            ("rate_limit.max_keys", self.max_keys == 0),
            (
                "rate_limit.eviction_interval",
                self.eviction_interval.is_zero(),
            ),
        ])
    }
}

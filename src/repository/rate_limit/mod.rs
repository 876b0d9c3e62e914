//! Rate-limit buckets (GCRA): where a rule's allowance per key is kept and spent, in process
//! (the `governor` crate) or shared across instances in Redis (one Lua script, single or
//! Cluster), with a fallback when Redis does not answer (`rate_limit.on_store_error`).
//!
//! The rules (which routes, which keys, what quota) live in the service layer
//! (`service::rate_limit`); this layer only spends a key's allowance atomically and says what is
//! left.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use shaku::Interface;

/// A rule's quota: `burst` requests at once, one more every `interval` (GCRA's emission
/// interval: a rule of 60 per minute has an interval of 1 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Time to earn back one request.
    pub interval: Duration,
    /// Requests that may be spent at once from a full bucket (at least 1).
    pub burst: u32,
}

/// One key's bucket of one rule: `rule` names the rule (its quota is fixed per rule), `key` the
/// client it counts (`ip:198.51.100.7`, `net:198.51.100.0/24`, `user:42`, ...).
#[derive(Clone, Copy, Debug)]
pub struct BucketRef<'a> {
    /// The rule's name, unique in `rate_limit.rules`.
    pub rule: &'a str,
    /// The client key within the rule.
    pub key: &'a str,
    /// The rule's quota.
    pub quota: Quota,
}

/// What spending one request from a bucket decided (what the `RateLimit-*` headers and
/// `Retry-After` say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and its allowance spent).
    pub allowed: bool,
    /// The bucket's size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that could still be spent at once after this one (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`, rounded up to whole seconds).
    pub reset_after: Duration,
    /// When refused: until one request would be admitted (`Retry-After`); zero when allowed.
    pub retry_after: Duration,
    /// Which store decided: `memory`, `redis`, or `fallback` (Redis did not answer and
    /// `rate_limit.on_store_error` decided).
    pub store: &'static str,
}

/// Spends allowances. Every call is atomic per bucket: parallel requests cannot overspend.
#[async_trait]
pub trait RateLimitStore: Interface {
    /// `memory` or `redis`.
    fn backend(&self) -> &'static str;
    /// Spends one request from `bucket`, or refuses it, in one atomic step. Never fails: when
    /// Redis does not answer, `rate_limit.on_store_error` decides (`local`: the in-process
    /// limiter; `allow`; `deny`), with a warn log and a metric.
    async fn spend(&self, bucket: BucketRef<'_>) -> Decision;
}

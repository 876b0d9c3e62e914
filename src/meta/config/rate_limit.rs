//! `rate_limit.*`: request rate limits by route group (docs/overload.md): whether they apply,
//! where their buckets live and what happens when Redis does not answer. The rules themselves
//! (which routes, which keys, what quota) are in `rules`.

use std::time::Duration;

use goex_config::{ConfigError, invalid};
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
    /// While Redis does not answer, each rule logs one warning per this long (the line counts
    /// the fallbacks it stands for), so a flood is not a log line per request. `0s` logs every
    /// fallback.
    #[serde(with = "humantime_serde")]
    pub fallback_log_interval: Duration,
    /// The rules, each with a unique `name` (docs/overload.md).
    #[serde(default)]
    pub rules: Vec<RateLimitRule>,
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

/// The most rules `rate_limit.rules` may name: a store keeps a table per rule name and stops
/// counting new names past this many, so a config with more is refused at start instead.
pub const MAX_RULES: usize = 1024;

impl RateLimitConfig {
    /// `rate_limit.*`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.rules.len() > MAX_RULES {
            return Err(invalid(
                "rate_limit.rules",
                format!("{} rules; at most {MAX_RULES}", self.rules.len()),
            ));
        }
        refuse_zero(&[
            ("rate_limit.max_keys", self.max_keys == 0),
            (
                "rate_limit.eviction_interval",
                self.eviction_interval.is_zero(),
            ),
        ])?;
        for (index, rule) in self.rules.iter().enumerate() {
            rule.check(index)?;
            if self.rules[..index].iter().any(|r| r.name == rule.name) {
                return Err(invalid(
                    &format!("rate_limit.rules[{index}].name"),
                    format!("`{}` names another rule too: names are unique", rule.name),
                ));
            }
        }
        Ok(())
    }
}

/// One rule of `rate_limit.rules`: which requests it counts (`route`, `tag`, `grpc`, narrowed by
/// `query` and `methods`), how they are keyed (`key`, with the address widths), and its quota
/// (`rate` per `period`, `burst` at once). docs/overload.md.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Unique among the rules: the `rule` label of `rate_limit_decisions_total` and the prefix
    /// of the rule's bucket keys.
    pub name: String,
    /// HTTP: a route template prefix, whole segments (`/hello` counts `/hello` and `/hello/x`,
    /// not `/helloworld`; `/` counts every route but health and readiness).
    #[serde(default)]
    pub route: Option<String>,
    /// HTTP: an OpenAPI tag (`auth`, `grpc`, ...): every route with that tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// HTTP: only requests whose query string has this parameter (`id` for `GET /hello?id=`).
    #[serde(default)]
    pub query: Option<String>,
    /// HTTP: only these methods (upper case); empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// gRPC: a full method path prefix (`/hello.HelloService/`, or one method
    /// `/hello.HelloService/SayHello`).
    #[serde(default)]
    pub grpc: Option<String>,
    /// Requests earned back per `period` (with `period`, one request every `period / rate`).
    pub rate: u32,
    /// The period of `rate`.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// Requests that may be spent at once from a full bucket.
    pub burst: u32,
    /// What a request is counted by.
    #[serde(default)]
    pub key: RuleKey,
    /// The IPv4 prefix widths an address is counted at, each its own bucket (one width or a
    /// list: `[32, 24]` counts the host and its /24).
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: PrefixWidths,
    /// The IPv6 prefix widths (`64` by default: one host usually owns a whole /64).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: PrefixWidths,
}

/// What a rule counts a request by.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleKey {
    /// The client address (trusted-proxy-aware), at the rule's prefix widths.
    #[default]
    Address,
    /// The user id of a token that passed the `Authenticated` check; without one, the address.
    User,
    /// Both: a request spends its address buckets and, when signed in, its user's.
    Both,
}

/// One prefix width or a list of them (numbers, or digits as an environment variable spells
/// them: `APP__RATE_LIMIT__RULES__0__IPV4_PREFIX=24`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixWidths {
    /// One width.
    One(u8),
    /// Several, each its own bucket.
    Many(Vec<u8>),
}

impl PrefixWidths {
    /// The widths, in order.
    pub fn widths(&self) -> &[u8] {
        match self {
            PrefixWidths::One(w) => std::slice::from_ref(w),
            PrefixWidths::Many(list) => list,
        }
    }
}

impl<'de> Deserialize<'de> for PrefixWidths {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// One width: a number, or its digits.
        struct Width(u8);
        impl<'de> Deserialize<'de> for Width {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(WidthsVisitor).and_then(|w| match w {
                    PrefixWidths::One(w) => Ok(Width(w)),
                    PrefixWidths::Many(_) => Err(serde::de::Error::custom("a width, not a list")),
                })
            }
        }
        struct WidthsVisitor;
        impl<'de> serde::de::Visitor<'de> for WidthsVisitor {
            type Value = PrefixWidths;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a prefix width (0..=128) or a list of them")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PrefixWidths, E> {
                u8::try_from(v)
                    .map(PrefixWidths::One)
                    .map_err(|_| E::custom(format!("{v} is not a prefix width")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PrefixWidths, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is not a prefix width")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PrefixWidths, E> {
                v.trim()
                    .parse::<u8>()
                    .map(PrefixWidths::One)
                    .map_err(|_| E::custom(format!("`{v}` is not a prefix width")))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PrefixWidths, A::Error> {
                let mut widths = Vec::new();
                while let Some(Width(w)) = seq.next_element()? {
                    widths.push(w);
                }
                Ok(PrefixWidths::Many(widths))
            }
        }
        deserializer.deserialize_any(WidthsVisitor)
    }
}

fn default_ipv4_prefix() -> PrefixWidths {
    PrefixWidths::One(32)
}

fn default_ipv6_prefix() -> PrefixWidths {
    PrefixWidths::One(64)
}

/// The HTTP methods a rule may name.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
];

impl RateLimitRule {
    /// The rule at `rate_limit.rules[index]`.
    fn check(&self, index: usize) -> Result<(), ConfigError> {
        let key = |field: &str| format!("rate_limit.rules[{index}].{field}");
        if self.name.trim().is_empty() {
            return Err(invalid(&key("name"), "must not be empty"));
        }
        refuse_zero(&[
            (&key("rate"), self.rate == 0),
            (&key("period"), self.period.is_zero()),
            (&key("burst"), self.burst == 0),
        ])?;
        if self.route.is_none() && self.tag.is_none() && self.grpc.is_none() {
            return Err(invalid(
                &key("route"),
                "a rule needs route, tag or grpc (what it counts)",
            ));
        }
        if self.route.is_some() && self.tag.is_some() {
            return Err(invalid(&key("tag"), "give route or tag, not both"));
        }
        if let Some(route) = &self.route
            && !route.starts_with('/')
        {
            return Err(invalid(
                &key("route"),
                "a route template prefix starts with /",
            ));
        }
        if let Some(grpc) = &self.grpc
            && !grpc.starts_with('/')
        {
            return Err(invalid(
                &key("grpc"),
                "a full method path prefix starts with / (`/hello.HelloService/`)",
            ));
        }
        if self.query.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(&key("query"), "must not be empty"));
        }
        if let Some(bad) = self.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(invalid(
                &key("methods"),
                format!("`{bad}` is not one of {}", METHODS.join(", ")),
            ));
        }
        for (field, widths, max) in [
            ("ipv4_prefix", &self.ipv4_prefix, 32),
            ("ipv6_prefix", &self.ipv6_prefix, 128),
        ] {
            let list = widths.widths();
            if list.is_empty() {
                return Err(invalid(&key(field), "needs at least one width"));
            }
            if let Some(bad) = list.iter().find(|w| **w == 0 || **w > max) {
                return Err(invalid(
                    &key(field),
                    format!("{bad} is not a width in 1..={max}"),
                ));
            }
        }
        // The emission interval (`period / rate`) must not round to nothing.
        if self.period / self.rate == Duration::ZERO {
            return Err(invalid(
                &key("rate"),
                "more than one request per nanosecond",
            ));
        }
        Ok(())
    }
}

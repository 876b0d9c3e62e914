//! The rate-limit rules (`rate_limit.rules`, docs/overload.md) applied: which rules a request
//! matches (HTTP by route template, OpenAPI tag, query parameter and method; gRPC by full method
//! path), which buckets it spends (the client address at each of the rule's prefix widths, the
//! user id, or both) through the [`RateLimitStore`], and the tightest decision of them all.
//!
//! Where a request is matched and its buckets spent is the edge's business (the HTTP
//! middleware, the `Authenticated` extractor for user keys, the gRPC layer); this service knows
//! only rules, keys and quotas.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::join_all;
use shaku::{Component, Interface};

use crate::meta::config::{RateLimitConfig, RateLimitRule, RuleKey};
use crate::repository::rate_limit::{BucketRef, Quota, RateLimitStore};

/// What spending decided (re-exported for the edge, which reaches repositories only through
/// services).
pub use crate::repository::rate_limit::Decision;

/// A rule's position in `rate_limit.rules`.
pub type RuleId = usize;

/// What one bucket of a rule counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The client address, at each of the rule's prefix widths (each width its own bucket).
    Address(IpAddr),
    /// A user id from a token that passed the `Authenticated` check.
    User(i64),
}

/// Applies the rules.
#[async_trait]
pub trait RateLimitService: Interface {
    /// Whether rules apply at all (`rate_limit.enabled` and at least one rule).
    fn enabled(&self) -> bool;

    /// The rules an HTTP operation matches, query aside: `method` (upper case) of the route
    /// template `template` with OpenAPI `tags`. Computed once per route at start.
    fn http_rules(&self, method: &str, template: &str, tags: &[String]) -> Vec<RuleId>;

    /// Whether `rule` applies to a request with this raw query string (its `query` parameter,
    /// if it names one, is present).
    fn query_matches(&self, rule: RuleId, query: &str) -> bool;

    /// The rules a gRPC call to the full method `path` (`/hello.HelloService/SayHello`) matches.
    fn grpc_rules(&self, path: &str) -> Vec<RuleId>;

    /// What `rule` counts requests by.
    fn key(&self, rule: RuleId) -> RuleKey;

    /// Spends one request from the buckets of every `(rule, subject)` (all of them, at once);
    /// `None` when the list is empty. The answer is the tightest decision: a refusal if any
    /// bucket refused (the longest wait), else the bucket with the least left.
    async fn spend(&self, spends: &[(RuleId, Subject)]) -> Option<Decision>;
}

/// A rule made ready to apply (its quota and metric series resolved once).
#[derive(Debug)]
pub struct Rule {
    config: RateLimitRule,
    quota: Quota,
    decisions: Option<goex_metrics::RateLimitDecisions>,
}

/// [`RateLimitService`] over the configured rules and the store.
#[derive(Component)]
#[shaku(interface = RateLimitService)]
pub struct RateLimitServiceImpl {
    #[shaku(inject)]
    store: Arc<dyn RateLimitStore>,
    /// `rate_limit.rules`, with their quotas and metric series.
    rules: Arc<[Rule]>,
    /// `rate_limit.enabled` and any rule.
    enabled: bool,
}

impl RateLimitServiceImpl {
    /// The component's parameters from the `rate_limit` section (`metrics`: where
    /// `rate_limit_decisions_total` is counted, when metrics are on).
    pub fn parameters(
        config: &RateLimitConfig,
        metrics: Option<&goex_metrics::Metrics>,
    ) -> RateLimitServiceImplParameters {
        RateLimitServiceImplParameters {
            rules: compile(config, metrics),
            enabled: config.enabled && !config.rules.is_empty(),
        }
    }
}

fn compile(config: &RateLimitConfig, metrics: Option<&goex_metrics::Metrics>) -> Arc<[Rule]> {
    config
        .rules
        .iter()
        .map(|rule| Rule {
            quota: Quota {
                // The config check refuses a zero rate and an interval that rounds to nothing.
                interval: rule.period / rule.rate.max(1),
                burst: rule.burst,
            },
            decisions: metrics.map(|m| m.rate_limit_decisions(&rule.name)),
            config: rule.clone(),
        })
        .collect()
}

/// Whether `template` is `prefix` or lies under it, by whole segments (`/hello` covers
/// `/hello` and `/hello/{id}`, not `/helloworld`).
fn under(template: &str, prefix: &str) -> bool {
    match template.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
}

/// Whether the raw query string names `parameter` (`id`, `id=`, `id=7`).
fn has_parameter(query: &str, parameter: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(name, _)| name) == parameter)
}

/// The bucket key of `ip` at prefix `width` (`198.51.100.0/24`, `2001:db8:1:2::/64`).
fn address_key(ip: IpAddr, width: u8) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let width = u32::from(width.min(32));
            let mask = u32::MAX.checked_shl(32 - width).unwrap_or(0);
            format!("{}/{width}", Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let width = u32::from(width.min(128));
            let mask = u128::MAX.checked_shl(128 - width).unwrap_or(0);
            format!("{}/{width}", Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// The tighter of two decisions: a refusal over an admission (the longer wait of two
/// refusals), else the fewer left (the later reset on a tie).
pub fn tighter(a: Decision, b: Decision) -> Decision {
    match (a.allowed, b.allowed) {
        (false, true) => a,
        (true, false) => b,
        (false, false) if b.retry_after > a.retry_after => b,
        (false, false) => a,
        (true, true) if (b.remaining, a.reset_after) < (a.remaining, b.reset_after) => b,
        (true, true) => a,
    }
}

impl RateLimitServiceImpl {
    /// The bucket keys of `subject` under `rule`.
    fn keys(&self, rule: &Rule, subject: Subject) -> Vec<String> {
        match subject {
            Subject::User(id) => vec![format!("user:{id}")],
            Subject::Address(ip) => {
                let ip = crate::meta::trusted_proxies::canonical(ip);
                let widths = match ip {
                    IpAddr::V4(_) => rule.config.ipv4_prefix.widths(),
                    IpAddr::V6(_) => rule.config.ipv6_prefix.widths(),
                };
                widths.iter().map(|w| address_key(ip, *w)).collect()
            }
        }
    }
}

#[async_trait]
impl RateLimitService for RateLimitServiceImpl {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn http_rules(&self, method: &str, template: &str, tags: &[String]) -> Vec<RuleId> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| {
                let c = &rule.config;
                let route = match (&c.route, &c.tag) {
                    (Some(prefix), _) => under(template, prefix),
                    (None, Some(tag)) => tags.contains(tag),
                    (None, None) => false,
                };
                route && (c.methods.is_empty() || c.methods.iter().any(|m| m == method))
            })
            .map(|(id, _)| id)
            .collect()
    }

    fn query_matches(&self, rule: RuleId, query: &str) -> bool {
        match self.rules.get(rule).and_then(|r| r.config.query.as_deref()) {
            Some(parameter) => has_parameter(query, parameter),
            None => true,
        }
    }

    fn grpc_rules(&self, path: &str) -> Vec<RuleId> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| {
                rule.config
                    .grpc
                    .as_deref()
                    .is_some_and(|prefix| path.starts_with(prefix))
            })
            .map(|(id, _)| id)
            .collect()
    }

    fn key(&self, rule: RuleId) -> RuleKey {
        self.rules
            .get(rule)
            .map_or(RuleKey::Address, |r| r.config.key)
    }

    async fn spend(&self, spends: &[(RuleId, Subject)]) -> Option<Decision> {
        let mut buckets = Vec::with_capacity(spends.len());
        for (id, subject) in spends {
            if let Some(rule) = self.rules.get(*id) {
                for key in self.keys(rule, *subject) {
                    buckets.push((*id, key));
                }
            }
        }
        let decisions = join_all(buckets.iter().map(|(id, key)| {
            let rule = &self.rules[*id];
            self.store.spend(BucketRef {
                rule: &rule.config.name,
                key,
                quota: rule.quota,
            })
        }))
        .await;
        // One decision per rule for the metric: refused when any of its buckets refused.
        let mut per_rule: Vec<(RuleId, bool)> = Vec::with_capacity(spends.len());
        for ((id, _), decision) in buckets.iter().zip(&decisions) {
            match per_rule.iter_mut().find(|(r, _)| r == id) {
                Some((_, allowed)) => *allowed &= decision.allowed,
                None => per_rule.push((*id, decision.allowed)),
            }
        }
        for (id, allowed) in per_rule {
            if let Some(counter) = &self.rules[id].decisions {
                counter.record(allowed);
            }
        }
        decisions.into_iter().reduce(tighter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::config::PrefixWidths;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A counting double of the store: `burst` requests per bucket, never refilled; records
    /// every bucket spent.
    #[derive(Default)]
    struct CountingStore {
        spent: Mutex<HashMap<(String, String), u32>>,
    }

    #[async_trait]
    impl RateLimitStore for CountingStore {
        fn backend(&self) -> &'static str {
            "memory"
        }

        async fn spend(&self, bucket: BucketRef<'_>) -> Decision {
            let mut spent = self.spent.lock().unwrap();
            let n = spent
                .entry((bucket.rule.to_owned(), bucket.key.to_owned()))
                .or_default();
            let allowed = *n < bucket.quota.burst;
            if allowed {
                *n += 1;
            }
            Decision {
                allowed,
                limit: bucket.quota.burst,
                remaining: bucket.quota.burst - *n,
                reset_after: bucket.quota.interval * *n,
                retry_after: if allowed {
                    Duration::ZERO
                } else {
                    bucket.quota.interval
                },
                store: "memory",
            }
        }
    }

    fn rule(name: &str) -> RateLimitRule {
        RateLimitRule {
            name: name.to_owned(),
            route: Some("/hello".to_owned()),
            tag: None,
            query: None,
            methods: Vec::new(),
            grpc: None,
            rate: 1,
            period: Duration::from_secs(60),
            burst: 2,
            key: RuleKey::Address,
            ipv4_prefix: PrefixWidths::One(32),
            ipv6_prefix: PrefixWidths::One(64),
        }
    }

    fn service(rules: Vec<RateLimitRule>) -> (RateLimitServiceImpl, Arc<CountingStore>) {
        let store = Arc::new(CountingStore::default());
        let config = RateLimitConfig {
            enabled: true,
            on_store_error: crate::meta::config::OnStoreError::Local,
            max_keys: 10,
            eviction_interval: Duration::from_secs(60),
            fallback_log_interval: Duration::from_secs(10),
            rules,
        };
        let p = RateLimitServiceImpl::parameters(&config, None);
        let service = RateLimitServiceImpl {
            store: store.clone(),
            rules: p.rules,
            enabled: p.enabled,
        };
        (service, store)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn routes_match_by_whole_segments_tags_and_methods() {
        let mut tagged = rule("tagged");
        (tagged.route, tagged.tag) = (None, Some("auth".to_owned()));
        let mut posts = rule("posts");
        posts.route = Some("/".to_owned());
        posts.methods = vec!["POST".to_owned()];
        let (s, _) = service(vec![rule("hello"), tagged, posts]);
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(s.http_rules("GET", "/hello", &tags(&["hello"])), [0]);
        assert_eq!(s.http_rules("GET", "/hello/{id}", &[]), [0]);
        assert!(s.http_rules("GET", "/helloworld", &[]).is_empty());
        assert_eq!(s.http_rules("GET", "/auth/login", &tags(&["auth"])), [1]);
        assert_eq!(
            s.http_rules("POST", "/auth/login", &tags(&["auth"])),
            [1, 2]
        );
        assert!(s.grpc_rules("/hello.HelloService/SayHello").is_empty());
    }

    #[test]
    fn a_query_rule_needs_its_parameter() {
        let mut by_id = rule("by-id");
        by_id.query = Some("id".to_owned());
        let (s, _) = service(vec![by_id, rule("any")]);
        for query in ["id=1", "id", "id=", "x=2&id=3"] {
            assert!(s.query_matches(0, query), "{query}");
        }
        for query in ["", "ids=1", "x=id", "xid=1"] {
            assert!(!s.query_matches(0, query), "{query}");
        }
        assert!(s.query_matches(1, ""));
    }

    #[test]
    fn grpc_rules_match_by_full_method_path_prefix() {
        let mut service_wide = rule("svc");
        (service_wide.route, service_wide.grpc) = (None, Some("/hello.HelloService/".to_owned()));
        let mut one = rule("one");
        one.grpc = Some("/user.UserService/GetUser".to_owned());
        let (s, _) = service(vec![service_wide, one]);
        assert_eq!(s.grpc_rules("/hello.HelloService/SayHello"), [0]);
        assert_eq!(s.grpc_rules("/user.UserService/GetUser"), [1]);
        assert!(s.grpc_rules("/user.UserService/ListUsers").is_empty());
    }

    #[test]
    fn address_keys_are_masked_to_each_width() {
        assert_eq!(address_key(ip("198.51.100.7"), 32), "198.51.100.7/32");
        assert_eq!(address_key(ip("198.51.100.7"), 24), "198.51.100.0/24");
        assert_eq!(address_key(ip("198.51.100.7"), 1), "128.0.0.0/1");
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1"), 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1"), 48),
            "2001:db8:1::/48"
        );
        assert_eq!(address_key(ip("2001:db8::1"), 128), "2001:db8::1/128");
    }

    #[tokio::test]
    async fn every_width_is_its_own_bucket_and_all_are_spent() {
        let mut two = rule("two");
        two.ipv4_prefix = PrefixWidths::Many(vec![32, 24]);
        let (s, store) = service(vec![two]);
        // Burst 2 per bucket: two hosts of one /24 share the /24's two requests.
        let a = Subject::Address(ip("198.51.100.7"));
        let b = Subject::Address(ip("198.51.100.8"));
        assert!(s.spend(&[(0, a)]).await.unwrap().allowed);
        assert!(s.spend(&[(0, b)]).await.unwrap().allowed);
        let refused = s.spend(&[(0, b)]).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(60));
        {
            let spent = store.spent.lock().unwrap();
            assert_eq!(spent[&("two".into(), "198.51.100.0/24".into())], 2);
            assert_eq!(spent[&("two".into(), "198.51.100.7/32".into())], 1);
            // Every bucket was spent, the refusing one too (it stayed at its limit).
            assert_eq!(spent[&("two".into(), "198.51.100.8/32".into())], 2);
        }
        // IPv4-mapped IPv6 is IPv4.
        let mapped = Subject::Address(ip("::ffff:198.51.100.9"));
        assert!(!s.spend(&[(0, mapped)]).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn users_and_addresses_are_separate_buckets_and_the_tightest_decides() {
        let mut users = rule("users");
        users.key = RuleKey::User;
        let mut wide = rule("wide");
        wide.burst = 10;
        let (s, _) = service(vec![users, wide]);
        let client = Subject::Address(ip("203.0.113.5"));
        let first = s
            .spend(&[(0, Subject::User(1)), (1, client)])
            .await
            .unwrap();
        // The user bucket has 1 left, the wide one 9: the headers show the tighter.
        assert_eq!((first.allowed, first.limit, first.remaining), (true, 2, 1));
        assert!(s.spend(&[(0, Subject::User(1))]).await.unwrap().allowed);
        assert!(!s.spend(&[(0, Subject::User(1))]).await.unwrap().allowed);
        assert!(s.spend(&[(0, Subject::User(2))]).await.unwrap().allowed);
        assert!(s.spend(&[]).await.is_none());
        assert_eq!(s.key(0), RuleKey::User);
    }

    #[test]
    fn off_without_rules_or_when_disabled() {
        assert!(service(vec![rule("a")]).0.enabled());
        assert!(!service(vec![]).0.enabled());
    }
}

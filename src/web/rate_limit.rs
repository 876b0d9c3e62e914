//! The rate limits at the HTTP edge, between the middleware that matches a request to its
//! rules (`middleware::rate_limit`) and the `Authenticated` / `Admin` extractors that spend the
//! user buckets once a token passed: the extensions they hand each other, and the
//! `RateLimit-*` / `Retry-After` headers (draft-ietf-httpapi-ratelimit-headers).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest};

use crate::meta::config::RuleKey;
use crate::service::error::ServiceError;
use crate::service::rate_limit::{Decision, RateLimitService, RuleId, Subject};

/// `RateLimit-Limit`: the bucket's size.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests that could still be made at once.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the bucket is full again.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Whole seconds, rounded up (a client told 0 would retry at once and be refused again).
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Writes the `RateLimit-*` headers of `decision`, and `Retry-After` (at least 1 s) when it
/// refused.
pub fn insert_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        RATELIMIT_RESET,
        HeaderValue::from(seconds(decision.reset_after)),
    );
    if !decision.allowed {
        let wait = seconds(decision.retry_after).max(1);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
}

/// Copies the rate-limit headers of `from` onto `to` (an error envelope re-rendered in the
/// client's language keeps them).
pub fn carry_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in [
        RATELIMIT_LIMIT,
        RATELIMIT_REMAINING,
        RATELIMIT_RESET,
        header::RETRY_AFTER,
    ] {
        if let Some(value) = from.get(&name)
            && !to.contains_key(&name)
        {
            to.insert(name, value.clone());
        }
    }
}

/// The tightest decision spent for the request so far (what its `RateLimit-*` headers say),
/// left in the request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitSeen(pub Decision);

/// The user buckets a request's rules still have to spend, left by the middleware on a route
/// that requires a token: the extractor spends them by user once the token passed, or by
/// address when it did not.
#[derive(Clone)]
pub struct PendingUserSpend {
    /// The rules' service.
    pub service: Arc<dyn RateLimitService>,
    /// The rules keyed `user` or `both`.
    pub rules: Vec<RuleId>,
    /// The client's address.
    pub client: IpAddr,
}

/// Merges `decision` into the request's [`RateLimitSeen`].
pub fn record(req: &HttpRequest, decision: Decision) {
    let mut extensions = req.extensions_mut();
    let tightest = match extensions.get::<RateLimitSeen>() {
        Some(RateLimitSeen(seen)) => crate::service::rate_limit::tighter(*seen, decision),
        None => decision,
    };
    extensions.insert(RateLimitSeen(tightest));
}

/// Spends what the middleware left for the extractor (nothing when it left nothing): by the
/// user `user` whose token passed, else (`None`) by address for the rules keyed `user` (a
/// `both` rule spent its address bucket already).
///
/// # Errors
/// [`ServiceError::RateLimited`] when a bucket refused.
pub async fn spend_pending(req: &HttpRequest, user: Option<i64>) -> Result<(), ServiceError> {
    let Some(pending) = req.extensions_mut().remove::<PendingUserSpend>() else {
        return Ok(());
    };
    let spends: Vec<(RuleId, Subject)> = pending
        .rules
        .iter()
        .filter_map(|rule| match (user, pending.service.key(*rule)) {
            (Some(id), _) => Some((*rule, Subject::User(id))),
            (None, RuleKey::User) => Some((*rule, Subject::Address(pending.client))),
            (None, _) => None,
        })
        .collect();
    let Some(decision) = pending.service.spend(&spends).await else {
        return Ok(());
    };
    record(req, decision);
    if decision.allowed {
        Ok(())
    } else {
        Err(ServiceError::RateLimited(decision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool) -> Decision {
        Decision {
            allowed,
            limit: 20,
            remaining: 0,
            reset_after: Duration::from_millis(1_200_500),
            retry_after: Duration::from_millis(if allowed { 0 } else { 59_001 }),
            store: "memory",
        }
    }

    #[test]
    fn headers_are_whole_seconds_rounded_up() {
        let mut h = HeaderMap::new();
        insert_headers(&mut h, &decision(false));
        assert_eq!(h.get(&RATELIMIT_LIMIT).unwrap(), "20");
        assert_eq!(h.get(&RATELIMIT_REMAINING).unwrap(), "0");
        assert_eq!(h.get(&RATELIMIT_RESET).unwrap(), "1201");
        assert_eq!(h.get(header::RETRY_AFTER).unwrap(), "60");
        let mut h = HeaderMap::new();
        insert_headers(&mut h, &decision(true));
        assert!(!h.contains_key(header::RETRY_AFTER));
        let mut to = HeaderMap::new();
        to.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        let mut from = HeaderMap::new();
        insert_headers(&mut from, &decision(false));
        carry_headers(&from, &mut to);
        assert_eq!(
            (
                to.get(&RATELIMIT_RESET).unwrap().to_str().unwrap(),
                to.get(header::RETRY_AFTER).unwrap().to_str().unwrap()
            ),
            ("1201", "1")
        );
    }
}

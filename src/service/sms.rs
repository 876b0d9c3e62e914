//! SMS verification codes (the original's `SmsService.SendCode`), fixed: the code comes from the
//! operating system's CSPRNG, is stored as a keyed digest with a lifetime and never returned to
//! the caller, sends are limited per phone and per address, and the provider's answer is
//! checked. The code is spent by `POST /auth/login_sms` (`service::auth`).

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use async_trait::async_trait;
use goex_sms::SmsError;
use shaku::{Component, Interface};
use slog::Logger;

use crate::meta::config::SmsConfig;
use crate::repository::mysql::user::UserRepository;
use crate::repository::redis::sms_code::VerificationCodeRepository;
use crate::repository::redis::throttle::LoginThrottleRepository;
use crate::repository::sms::SmsSender;
use crate::service::error::ServiceError;

/// What a sent code tells the caller: when it expires and when another may be asked for. Never
/// the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentCode {
    /// Seconds the code is good for.
    pub expires_in: u64,
    /// Seconds before the next code for this phone can be sent.
    pub resend_after: u64,
}

/// The SMS use cases.
#[async_trait]
pub trait SmsService: Interface {
    /// Sends a new code to `phone` (replacing an unspent one), limited per phone, per `client`
    /// address bucket and per its wider `network` (IPv4 /24, IPv6 /48), and by the global
    /// budget (of which numbers no user has get only the unreserved share).
    ///
    /// # Errors
    /// [`ServiceError::TooManyRequests`] past a limit, [`ServiceError::SmsSend`] when the
    /// provider refuses or cannot be reached, [`ServiceError::Unavailable`] when the store
    /// does not answer.
    async fn send_code(
        &self,
        phone: &str,
        client: &str,
        network: &str,
    ) -> Result<SentCode, ServiceError>;
}

/// [`SmsService`] over the code store, the throttle counters and the provider.
#[derive(Component)]
#[shaku(interface = SmsService)]
pub struct SmsServiceImpl {
    #[shaku(inject)]
    codes: Arc<dyn VerificationCodeRepository>,
    #[shaku(inject)]
    throttle: Arc<dyn LoginThrottleRepository>,
    #[shaku(inject)]
    sender: Arc<dyn SmsSender>,
    #[shaku(inject)]
    users: Arc<dyn UserRepository>,
    /// `sms.*`: lifetimes and limits of codes, as configured.
    sms: SmsConfig,
    /// Refusals at warn (SMS bombing shows here).
    logger: Logger,
    /// Throttle hits, when metrics are on.
    metrics: Option<goex_metrics::Metrics>,
}

/// A uniformly drawn six-digit code (rejection sampling: no modulo bias).
pub fn new_code() -> String {
    // The largest multiple of a million below 2^32.
    const LIMIT: u32 = u32::MAX - u32::MAX % 1_000_000;
    loop {
        let n = OsRng.next_u32();
        if n < LIMIT {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

impl SmsServiceImpl {
    /// Reserves one send on each (subject, limit, window), in order, giving every reservation
    /// back as soon as one is over its limit.
    /// Reserves one send on every limit, in order, refusing (and giving back what it reserved)
    /// at the first one over; answers the last limit's count (the global budget's).
    async fn admit(
        &self,
        limits: &[(String, i64, Duration)],
        client: &str,
    ) -> Result<i64, ServiceError> {
        let mut last = 0;
        for (i, (subject, limit, window)) in limits.iter().enumerate() {
            let count = match self.throttle.reserve(subject, *window).await {
                Ok(count) => count,
                Err(e) => {
                    self.release(&limits[..i]).await;
                    return Err(e.into());
                }
            };
            if count > *limit {
                self.release(&limits[..=i]).await;
                // The limit's name, not its subject: subjects hold phone numbers.
                let throttle = subject.split(':').next().unwrap_or_default();
                slog::warn!(self.logger, "sms throttled";
                    "throttle" => throttle, "client" => client, "limit" => limit);
                if let Some(metrics) = &self.metrics {
                    metrics.throttled("sms");
                }
                return Err(ServiceError::TooManyRequests);
            }
            last = count;
        }
        Ok(last)
    }

    async fn release(&self, limits: &[(String, i64, Duration)]) {
        for (subject, ..) in limits {
            if let Err(e) = self.throttle.release(subject).await {
                let throttle = subject.split(':').next().unwrap_or_default();
                slog::warn!(self.logger, "sms throttle slot not released"; "throttle" => throttle, "error" => %e);
            }
        }
    }
}

#[async_trait]
impl SmsService for SmsServiceImpl {
    async fn send_code(
        &self,
        phone: &str,
        client: &str,
        network: &str,
    ) -> Result<SentCode, ServiceError> {
        let p = &self.sms;
        // The address and its network first: one client cannot spread a bombing over many
        // numbers or many addresses; then the phone's cooldown and its daily count. Counted
        // before anything is looked up, so a refused flood costs no database read.
        let mut limits = vec![
            (
                format!("sms-ip:{client}"),
                p.max_per_address,
                p.address_window,
            ),
            (
                format!("sms-net:{network}"),
                p.max_per_network,
                p.address_window,
            ),
            (format!("sms-wait:{phone}"), 1, p.resend_interval),
            (format!("sms-day:{phone}"), p.max_per_phone, p.phone_window),
        ];
        self.admit(&limits, client).await?;
        // Then the budgets of all sends: a number no user has shares only the unreserved part
        // (pumping floods of fresh numbers cannot spend what users' numbers are kept).
        let known = match self.users.find_by_phone(phone).await {
            Ok(user) => user.is_some(),
            Err(e) => {
                self.release(&limits).await;
                return Err(e.into());
            }
        };
        let mut budgets = Vec::with_capacity(2);
        if !known {
            budgets.push((
                "sms-new:".to_owned(),
                p.max_total - p.reserved_for_users(),
                p.total_window,
            ));
        }
        budgets.push(("sms-all:".to_owned(), p.max_total, p.total_window));
        let spent = match self.admit(&budgets, client).await {
            Ok(spent) => spent,
            Err(e) => {
                self.release(&limits).await;
                return Err(e);
            }
        };
        limits.extend(budgets);
        if spent == p.max_total / 2 {
            // Once per window: the count passes this value once.
            slog::warn!(self.logger, "half of the sms budget is spent";
                "max_total" => p.max_total, "window" => ?p.total_window);
            if let Some(metrics) = &self.metrics {
                metrics.sms_budget_half_spent();
            }
        }
        let code = new_code();
        if let Err(e) = self.codes.save(phone, &code, p.code_ttl).await {
            self.release(&limits).await;
            return Err(e.into());
        }
        if let Err(e) = self.sender.send_code(phone, &code).await {
            // Surely not delivered: the code goes (unless a newer one replaced it), and the send
            // does not count against the address, the day or the budget. The cooldown stays, so
            // a failing provider is not hammered. A send that may have gone out keeps its code
            // and its counts.
            if e.surely_not_sent() {
                if let Err(e) = self.codes.discard(phone, &code).await {
                    slog::warn!(self.logger, "undelivered sms code not discarded"; "error" => %e);
                }
                let counted: Vec<_> = limits
                    .into_iter()
                    .filter(|(subject, ..)| !subject.starts_with("sms-wait:"))
                    .collect();
                self.release(&counted).await;
            }
            return Err(ServiceError::SmsSend(describe(&e)));
        }
        Ok(SentCode {
            expires_in: p.code_ttl.as_secs(),
            resend_after: p.resend_interval.as_secs(),
        })
    }
}

/// What a client may learn of a failed send: whether to expect the message, never the
/// provider's code (it tells configuration and billing state; the log has it).
fn describe(e: &SmsError) -> String {
    if e.surely_not_sent() {
        "the message was not sent; try again later".into()
    } else {
        "the provider did not confirm the message; it may still arrive".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_spread_over_the_range() {
        let codes: Vec<String> = (0..2000).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 1990, "{} distinct of 2000", distinct.len());
        // Every leading digit shows up (a generator stuck in a sub-range would not).
        for d in b'0'..=b'9' {
            assert!(codes.iter().any(|c| c.as_bytes()[0] == d));
        }
    }
}

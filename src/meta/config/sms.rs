//! `sms.*`, `alibaba_sms.*` and `alibaba_sms_code.*` (docs/sms.md): verification codes, their
//! limits, and the provider that sends them.

use std::time::Duration;

use goex_config::{ConfigError, Profile, invalid};
use serde::Deserialize;

use super::refuse_zero;

/// Which provider sends codes (`sms.provider`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsProvider {
    /// Alibaba Cloud `SendSms` (`alibaba_sms.*`, `alibaba_sms_code.*`).
    Alibaba,
    /// Nothing is sent: the code is logged at info (development only; refused in prod).
    Log,
}

/// `sms.*` (docs/sms.md): codes, their limits and login by code.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// `alibaba` or `log`.
    pub provider: SmsProvider,
    /// How long a code is good for.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// One code per phone per this interval (429 / 10008 sooner).
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Codes per phone per `phone_window`.
    pub max_per_phone: i64,
    /// The window of `max_per_phone`.
    #[serde(with = "humantime_serde")]
    pub phone_window: Duration,
    /// Codes per client address per `address_window`.
    pub max_per_address: i64,
    /// The window of `max_per_address`.
    #[serde(with = "humantime_serde")]
    pub address_window: Duration,
    /// Codes sent to all phones together per `total_window`: the budget many addresses
    /// together cannot exceed (SMS pumping).
    pub max_total: i64,
    /// The window of `max_total`.
    #[serde(with = "humantime_serde")]
    pub total_window: Duration,
    /// Codes per wider client network (IPv4 /24, IPv6 /48) per `address_window`.
    pub max_per_network: i64,
    /// The share of `max_total` kept for numbers that already belong to users (0 to below 1;
    /// numbers nobody has share the rest).
    pub reserved_share: f64,
    /// Wrong tries a code allows; the last one spends it.
    pub max_attempts: u32,
    /// An SMS login with a number no user has creates that user (else 404 / 10005).
    pub register_on_login: bool,
    /// The HMAC key of stored code digests (set it through `APP__SMS__CODE_SECRET`); empty: a
    /// random key per process, which is right only when one process checks the codes it sent
    /// (the embedded default; with Redis the app warns at start). At least 16 bytes when set.
    pub code_secret: secrecy::SecretString,
}

impl SmsConfig {
    /// Of `max_total`, the codes only numbers that already belong to users may take (numbers
    /// nobody has, the usual SMS-pumping targets, share the rest): `reserved_share` of it,
    /// rounded up so a share of a small budget still keeps at least one.
    pub fn reserved_for_users(&self) -> i64 {
        (self.max_total as f64 * self.reserved_share).ceil() as i64
    }

    /// `sms.*`.
    pub(super) fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        if !(0.0..1.0).contains(&self.reserved_share) {
            return Err(invalid(
                "sms.reserved_share",
                "from 0 to below 1 (numbers nobody has need a share too)",
            ));
        }
        if self.max_per_network < 1 {
            return Err(invalid("sms.max_per_network", "must be greater than 0"));
        }
        if profile.is_releasing() && self.provider == SmsProvider::Log {
            return Err(invalid(
                "sms.provider",
                "log sends nothing and logs codes: not in the prod profile",
            ));
        }
        let code_secret = secrecy::ExposeSecret::expose_secret(&self.code_secret);
        if !code_secret.is_empty() && code_secret.len() < 16 {
            return Err(invalid("sms.code_secret", "16 bytes or more (or empty)"));
        }
        if self.code_ttl < Duration::from_secs(1) {
            return Err(invalid("sms.code_ttl", "at least 1s"));
        }
        refuse_zero(&[
            ("sms.resend_interval", self.resend_interval.is_zero()),
            ("sms.max_per_phone", self.max_per_phone <= 0),
            ("sms.phone_window", self.phone_window.is_zero()),
            ("sms.max_per_address", self.max_per_address <= 0),
            ("sms.address_window", self.address_window.is_zero()),
            ("sms.max_attempts", self.max_attempts == 0),
            ("sms.max_total", self.max_total <= 0),
            ("sms.total_window", self.total_window.is_zero()),
        ])
    }
}

/// `alibaba_sms.*` (the client's own settings type lives in `goex_sms`).
pub(super) fn check_alibaba_sms(settings: &goex_sms::Settings) -> Result<(), ConfigError> {
    refuse_zero(&[("alibaba_sms.timeout", settings.timeout.is_zero())])
}

/// `alibaba_sms_code.*`: the original's keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlibabaSmsCodeConfig {
    /// The approved signature (`SignName`).
    pub sign_name: String,
    /// The approved template (`TemplateCode`), with a `${code}` variable.
    pub template_code: String,
}

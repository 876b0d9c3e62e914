//! The settings of one breaker (one gRPC method): which policy guards it and that policy's knobs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which algorithm decides whether a call may go out (`policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The Hystrix state machine (closed → open → half-open), as hystrix-go in the original.
    #[default]
    Hystrix,
    /// Google SRE client-side adaptive throttling, as go-zero and kratos.
    Sre,
}

/// The settings of one breaker, read from YAML (the application keeps one per gRPC method).
///
/// Every key is optional: a missing key takes its default, which are the original's hystrix-go
/// settings. Unknown keys are refused, so a misspelt key fails at start instead of being ignored.
/// Keys of the policy that is not selected are accepted and unused, so switching `policy` is a
/// one-line change.
///
/// | key | default | policy |
/// |---|---|---|
/// | `policy` | `hystrix` | — |
/// | `timeout` | `1s` | both |
/// | `max_concurrent_requests` | `10` | both |
/// | `window` | `10s` | both |
/// | `buckets` | `10` | both |
/// | `request_volume_threshold` | `10` | hystrix |
/// | `error_percent_threshold` | `50` | hystrix |
/// | `sleep_window` | `5s` | hystrix |
/// | `k` | `1.5` | sre |
/// | `count_rejections` | `true` | hystrix |
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `hystrix` or `sre`.
    pub policy: Policy,
    /// A call still running after this long is cut off, answered with
    /// [`BreakerError::Timeout`](crate::BreakerError::Timeout) and counted as a failure (not
    /// accepted, for `sre`). Must be above zero.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Calls in flight at once; one more is rejected at once
    /// ([`BreakerError::Rejected`](crate::BreakerError::Rejected)) and counted against the
    /// backend, as Hystrix counts semaphore rejections. At least 1.
    pub max_concurrent_requests: u32,
    /// Length of the rolling window the counts are kept over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Buckets the window is cut into; a whole bucket is forgotten at once, so the window really
    /// covers between `window - window / buckets` and `window`. From 1 to 1000, and each bucket
    /// at least 1 ms long.
    pub buckets: u32,
    /// `hystrix`: requests (successes, failures, timeouts, rejections) the window must hold
    /// before the breaker may trip; 0 behaves as 1.
    pub request_volume_threshold: u32,
    /// `hystrix`: the breaker trips when `errors * 100 >= error_percent_threshold * requests`
    /// in the window (no rounding, unlike hystrix-go's `int(pct + 0.5)`). From 1 to 100.
    pub error_percent_threshold: u32,
    /// `hystrix`: how long the breaker stays open before one trial call is let through.
    #[serde(with = "humantime_serde")]
    pub sleep_window: Duration,
    /// `sre`: the multiplier K of `max(0, (requests - K * accepts) / (requests + 1))`. Lower is
    /// more aggressive; at least 1, since below 1 a backend that accepts everything would still
    /// see calls dropped. The SRE book suggests 2, go-zero and kratos use 1.5.
    pub k: f64,
    /// `hystrix`: whether calls rejected at `max_concurrent_requests` count as errors of the
    /// backend, as Hystrix counts semaphore rejections (default). Off, a rejection is this
    /// process shedding its own load: a flood of callers cannot open the breaker for everyone
    /// while the backend answers well.
    pub count_rejections: bool,
}

impl Default for Settings {
    /// The original's hystrix-go settings, with go-zero's K for `sre`.
    fn default() -> Self {
        Settings {
            policy: Policy::Hystrix,
            timeout: Duration::from_millis(1000),
            max_concurrent_requests: 10,
            window: Duration::from_secs(10),
            buckets: 10,
            request_volume_threshold: 10,
            error_percent_threshold: 50,
            sleep_window: Duration::from_millis(5000),
            k: 1.5,
            count_rejections: true,
        }
    }
}

/// A setting out of its range, found by [`Settings::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("breaker setting `{key}`: {message}")]
pub struct SettingsError {
    /// The key at fault, as spelt in YAML (`timeout`, `buckets`, ...).
    pub key: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl Settings {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    /// The first key out of range, named as in YAML.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let fail = |key, message: &str| {
            Err(SettingsError {
                key,
                message: message.to_owned(),
            })
        };
        if self.timeout.is_zero() {
            return fail("timeout", "must be above zero");
        }
        if self.max_concurrent_requests == 0 {
            return fail("max_concurrent_requests", "must be at least 1");
        }
        if !(1..=1000).contains(&self.buckets) {
            return fail("buckets", "must be from 1 to 1000");
        }
        if self.bucket_width() < Duration::from_millis(1) {
            return fail(
                "window",
                "must give each bucket at least 1ms (window / buckets)",
            );
        }
        if !(1..=100).contains(&self.error_percent_threshold) {
            return fail("error_percent_threshold", "must be from 1 to 100");
        }
        if !self.k.is_finite() || self.k < 1.0 {
            return fail("k", "must be a finite number of at least 1");
        }
        Ok(())
    }

    /// The length of one bucket of the rolling window.
    pub fn bucket_width(&self) -> Duration {
        self.window / self.buckets.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals_hystrix_settings_and_valid() {
        let s = Settings::default();
        assert_eq!(s.policy, Policy::Hystrix);
        assert_eq!(s.timeout, Duration::from_millis(1000));
        assert_eq!(s.max_concurrent_requests, 10);
        assert_eq!(s.request_volume_threshold, 10);
        assert_eq!(s.sleep_window, Duration::from_millis(5000));
        assert_eq!(s.error_percent_threshold, 50);
        assert_eq!(s.window, Duration::from_secs(10));
        assert_eq!(s.buckets, 10);
        assert_eq!(s.bucket_width(), Duration::from_secs(1));
        assert_eq!(s.k, 1.5);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_key_out_of_range() {
        type Spoil = fn(&mut Settings);
        let cases: [(&str, Spoil); 8] = [
            ("timeout", |s| s.timeout = Duration::ZERO),
            ("max_concurrent_requests", |s| s.max_concurrent_requests = 0),
            ("buckets", |s| s.buckets = 0),
            ("buckets", |s| s.buckets = 1001),
            ("window", |s| s.window = Duration::from_micros(999)),
            ("error_percent_threshold", |s| s.error_percent_threshold = 0),
            ("error_percent_threshold", |s| {
                s.error_percent_threshold = 101
            }),
            ("k", |s| s.k = 0.99),
        ];
        for (key, spoil) in cases {
            let mut s = Settings::default();
            spoil(&mut s);
            assert_eq!(s.validate().map_err(|e| e.key), Err(key));
        }
        let nan = Settings {
            k: f64::NAN,
            ..Settings::default()
        };
        assert_eq!(nan.validate().map_err(|e| e.key), Err("k"));
    }
}

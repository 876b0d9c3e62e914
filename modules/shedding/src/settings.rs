//! The shedder's settings (`shedding.*`): whether it runs, its CPU threshold, its rolling window
//! and how the CPU reading is sampled and smoothed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The settings of one shedder, read from YAML.
///
/// Every key is optional: a missing key takes go-zero's default. Unknown keys are refused, so a
/// misspelt key fails at start instead of being ignored.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `enabled` | `true` | off, every request is admitted and nothing is measured |
/// | `cpu_threshold` | `0.9` | shedding may start when the smoothed CPU reading reaches this |
/// | `window` | `5s` | the rolling window the capacity is estimated over |
/// | `buckets` | `50` | buckets the window is cut into (100 ms each by default) |
/// | `cool_off` | `1s` | after a drop, shedding stays possible this long whatever the CPU |
/// | `sample_interval` | `250ms` | how often [`ProcessCpu`](crate::ProcessCpu) reads the CPU time |
/// | `ema_beta` | `0.95` | weight of the previous reading in the CPU moving average |
/// | `min_factor` | `0.1` | the capacity is never scaled below this share |
/// | `rt_floor_window` | `60s` | how long the lowest response time seen is remembered for the capacity (not go-zero's; `0s` turns it off) |
/// | `min_limit` | `1` | the in-flight count over which a request may be dropped is never under this (not go-zero's; `0` is go-zero's rule) |
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Whether requests may be dropped at all. Off, [`Shedder::allow`](crate::Shedder::allow)
    /// always admits, records nothing, and no CPU sampler is started.
    pub enabled: bool,
    /// The share of the CPU this process may use (0 to 1) from which it counts as overloaded.
    /// Strictly between 0 and 1: at 1 the capacity could never be scaled down.
    pub cpu_threshold: f64,
    /// Length of the rolling window of passes and response times.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Buckets the window is cut into; the capacity reads the best bucket, so a bucket is the
    /// time unit of the throughput estimate. From 1 to 1000, each at least 1 ms long.
    pub buckets: u32,
    /// How long after a drop the shedder keeps dropping when in-flight is over capacity, even
    /// if the CPU reading fell under the threshold (so it does not flap). Zero turns it off.
    #[serde(with = "humantime_serde")]
    pub cool_off: Duration,
    /// Interval between two readings of this process's CPU time. From 10 ms (the kernel's
    /// accounting is too coarse below) to 10 s.
    #[serde(with = "humantime_serde")]
    pub sample_interval: Duration,
    /// The CPU reading is `previous * ema_beta + sample * (1 - ema_beta)`. From 0 (no
    /// smoothing) to below 1. At 0.95 and 250 ms a sample's weight halves in about 3.4 s.
    pub ema_beta: f64,
    /// The lowest factor the capacity is scaled by as the CPU climbs from the threshold to
    /// 100 %: even a saturated process admits this share of its estimated capacity. Above 0,
    /// at most 1.
    pub min_factor: f64,
    /// How long the lowest average response time of a bucket is remembered after the window
    /// forgot it (not in go-zero). The capacity uses the lower of the window's lowest and this
    /// floor, so queueing that began after the floor was seen cannot inflate the estimate
    /// during a long overload; a service that genuinely got slower is underestimated until
    /// its faster past leaves this horizon. Zero turns it off (go-zero's estimate); otherwise
    /// from `window` to 1 hour.
    #[serde(with = "humantime_serde")]
    pub rt_floor_window: Duration,
    /// The lowest in-flight limit, whatever the capacity estimate and the CPU factor (not in
    /// go-zero, where the scaled limit can fall under 1 and a request is then admitted only
    /// onto an empty process, the CPU idling from each end to the next arrival). Higher keeps
    /// more requests queued behind the one running: fewer idle gaps, longer waits. From 0 (go-zero's rule) to 1000.
    pub min_limit: f64,
}

impl Default for Settings {
    /// go-zero's constants, and a response-time floor over 60 s.
    fn default() -> Self {
        Settings {
            enabled: true,
            cpu_threshold: 0.9,
            window: Duration::from_secs(5),
            buckets: 50,
            cool_off: Duration::from_secs(1),
            sample_interval: Duration::from_millis(250),
            ema_beta: 0.95,
            min_factor: 0.1,
            rt_floor_window: Duration::from_secs(60),
            min_limit: 1.0,
        }
    }
}

/// A setting out of its range, found by [`Settings::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("shedding setting `{key}`: {message}")]
pub struct SettingsError {
    /// The key at fault, as spelt in YAML (`cpu_threshold`, `buckets`, ...).
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
        if !(self.cpu_threshold > 0.0 && self.cpu_threshold < 1.0) {
            return fail("cpu_threshold", "must be above 0 and below 1");
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
        if self.sample_interval < Duration::from_millis(10)
            || self.sample_interval > Duration::from_secs(10)
        {
            return fail("sample_interval", "must be from 10ms to 10s");
        }
        if !(self.ema_beta >= 0.0 && self.ema_beta < 1.0) {
            return fail("ema_beta", "must be from 0 to below 1");
        }
        if !(self.min_factor > 0.0 && self.min_factor <= 1.0) {
            return fail("min_factor", "must be above 0 and at most 1");
        }
        if !self.rt_floor_window.is_zero()
            && (self.rt_floor_window < self.window
                || self.rt_floor_window > Duration::from_secs(3600))
        {
            return fail(
                "rt_floor_window",
                "must be 0s (off) or from the window's length to 1h",
            );
        }
        if !(0.0..=1000.0).contains(&self.min_limit) {
            return fail("min_limit", "must be from 0 to 1000");
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
    fn defaults_are_go_zeros_constants_and_valid() {
        let s = Settings::default();
        assert!(s.enabled);
        assert_eq!(s.cpu_threshold, 0.9);
        assert_eq!((s.window, s.buckets), (Duration::from_secs(5), 50));
        assert_eq!(s.bucket_width(), Duration::from_millis(100));
        assert_eq!(s.cool_off, Duration::from_secs(1));
        assert_eq!(s.sample_interval, Duration::from_millis(250));
        assert_eq!((s.ema_beta, s.min_factor), (0.95, 0.1));
        assert_eq!(s.rt_floor_window, Duration::from_secs(60));
        assert_eq!(s.min_limit, 1.0);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_key_out_of_range() {
        type Spoil = fn(&mut Settings);
        let cases: [(&str, Spoil); 17] = [
            ("cpu_threshold", |s| s.cpu_threshold = 0.0),
            ("cpu_threshold", |s| s.cpu_threshold = 1.0),
            ("cpu_threshold", |s| s.cpu_threshold = f64::NAN),
            ("buckets", |s| s.buckets = 0),
            ("buckets", |s| s.buckets = 1001),
            ("window", |s| s.window = Duration::from_micros(49_999)),
            ("sample_interval", |s| {
                s.sample_interval = Duration::from_millis(9)
            }),
            ("sample_interval", |s| {
                s.sample_interval = Duration::from_secs(11)
            }),
            ("ema_beta", |s| s.ema_beta = 1.0),
            ("ema_beta", |s| s.ema_beta = -0.1),
            ("min_factor", |s| s.min_factor = 0.0),
            ("min_factor", |s| s.min_factor = 1.5),
            ("rt_floor_window", |s| {
                s.rt_floor_window = Duration::from_secs(4)
            }),
            ("rt_floor_window", |s| {
                s.rt_floor_window = Duration::from_secs(3601)
            }),
            ("min_limit", |s| s.min_limit = -0.5),
            ("min_limit", |s| s.min_limit = 1000.5),
            ("min_limit", |s| s.min_limit = f64::NAN),
        ];
        for (key, spoil) in cases {
            let mut s = Settings::default();
            spoil(&mut s);
            assert_eq!(s.validate().map_err(|e| e.key), Err(key), "{s:?}");
        }
    }

    #[test]
    fn reads_humantime_durations_and_refuses_unknown_keys() {
        let s: Settings = serde_json::from_str(
            r#"{"enabled": false, "window": "10s", "buckets": 100, "cool_off": "500ms"}"#,
        )
        .unwrap();
        assert!(!s.enabled);
        assert_eq!(s.bucket_width(), Duration::from_millis(100));
        assert_eq!(s.cool_off, Duration::from_millis(500));
        assert_eq!(s.cpu_threshold, 0.9);
        let err = serde_json::from_str::<Settings>(r#"{"threshold": 0.8}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `threshold`"),
            "{err}"
        );
    }
}

//! Adaptive load shedding: each request is admitted or dropped at once from this process's CPU
//! use and the number of requests it has in flight, so an overloaded process answers most
//! callers on time and refuses the rest quickly, instead of answering everyone late.
//!
//! ```no_run
//! # fn serve() -> Result<(), goex_shedding::Error> {
//! let shedder = goex_shedding::Shedder::new(&goex_shedding::Settings::default())?;
//! match shedder.allow() {
//!     Ok(admitted) => {
//!         // ... do the work ...
//!         admitted.pass(); // or .fail(); dropping it unreported is a fail
//!     }
//!     Err(goex_shedding::Dropped) => { /* 503 + Retry-After, or RESOURCE_EXHAUSTED */ }
//! }
//! # Ok(()) }
//! ```
//!
//! # The algorithm
//!
//! go-zero's adaptive shedder (`core/load/adaptiveshedder.go`), described here and written
//! afresh, no code copied:
//!
//! - **Window.** A rolling window of `window` (5 s) cut into `buckets` (50) of 100 ms records,
//!   per bucket, the requests that passed and their summed response time. Only closed buckets
//!   are read (the current one is partial).
//! - **Capacity** (Little's law): the most passes of a bucket × buckets per second × the lowest
//!   average response time of a bucket (in seconds), at least 1. With no pass in the window the
//!   response time is taken as 1 s ([`DEFAULT_MIN_RT`]) and the best count as 1: 10 by default.
//! - **Response-time floor** (not in go-zero): the lowest average response time of a bucket over
//!   `rt_floor_window` (60 s), kept in [`RT_FLOOR_SLOTS`] coarse slots; the capacity takes it
//!   instead of the window's lowest when lower (never when the window has no pass).
//! - **In flight.** An atomic count of admitted requests not yet ended, and its smoothed value,
//!   `avg = avg × 0.9 + in_flight × 0.1` ([`IN_FLIGHT_BETA`]) each time a request is admitted
//!   or ends (go-zero moves it only as requests end: a burst that arrives faster than requests
//!   end is then admitted whole, however far over the limit, before the smoothed count moves).
//! - **Overload.** The CPU reading (0 to 1) is at or over `cpu_threshold` (0.9), or a request
//!   was dropped less than `cool_off` (1 s) ago, so shedding does not flap as the smoothed CPU
//!   reading wavers around the threshold.
//! - **Drop** when overloaded and both the in-flight count and its smoothed value exceed the
//!   capacity × `factor`, where `factor = (1 − cpu) / (1 − cpu_threshold)` kept within
//!   [`min_factor` (0.1), 1]: 1 up to the threshold, shrinking as the CPU climbs to 100 %, but
//!   a saturated process still admits a tenth of its estimate. The scaled limit is never under
//!   1 (not in go-zero, where it can be): under 1 a request is admitted only onto an empty
//!   process, and the CPU idles from each end to the next arrival. Each drop renews the
//!   cool-off.
//! - **Response time** (not go-zero's wall time when the request's future is polled through
//!   [`Admitted::poll_timed`]): the wall time less the request's waits to run, from its
//!   admission to its first poll and from each wake to the poll that follows, which under
//!   overload is the run queue. Waits that are not wakes are not seen: tokio's `yield_now`
//!   defers its wake until the runtime next polls its I/O driver, so part of a yielding
//!   request's queueing is still counted.
//! - **CPU** ([`ProcessCpu`]): every `sample_interval` (250 ms) the CPU time this process used
//!   (user + system) over the wall time elapsed, divided by the CPUs it may use (its affinity
//!   mask, capped by its cgroup quota: v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, v2
//!   `cpu.max`), smoothed as `reading × ema_beta + sample × (1 − ema_beta)` with `ema_beta`
//!   0.95 (about the last 5 s). go-zero reads the container's cgroup usage instead; this reads
//!   the process, so two apps in one container each see their own share.
//!
//! Differences from go-zero: response times are kept in nanoseconds, not rounded up to whole
//! milliseconds, and the summary of the closed buckets is computed once as a bucket closes
//! rather than on every decision. And the floor: under an overload longer than the window,
//! every bucket's response time holds the queueing of what was admitted, so go-zero's lowest
//! average is about in-flight × service time and its estimate stays near the in-flight count
//! at which dropping began; the floor remembers the response time from before the queue (or
//! any quieter moment of the horizon), so the queue cannot prop the estimate up. The price: a
//! service that genuinely got slower is underestimated (old response time × new throughput)
//! until its faster past leaves the horizon; `rt_floor_window: 0s` restores go-zero's estimate.
//!
//! # Cost per request
//!
//! No allocation to decide and record. Under the threshold and outside the cool-off, a
//! decision is two clock/CPU reads and three atomic operations; over it, a short mutex section
//! reading the cached window summary. Each pass takes the window's mutex for a counter update.
//! Polling through [`Admitted::poll_timed`] adds one allocation per admitted request (the
//! waker that notes its wakes) and two clock reads per poll.
//!
//! # Determinism
//!
//! The CPU reading and the clock are traits ([`CpuSource`], [`Clock`]);
//! [`Shedder::with_sources`] with [`ManualCpu`] and [`ManualClock`] makes the state machine
//! testable without load or sleeps.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cgroup;
mod clock;
mod cpu;
mod queueing;
mod settings;
mod shedder;
mod window;

pub use cgroup::{CgroupVersion, CpuLimit};
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use cpu::{CpuMeter, CpuSource, ManualCpu, ProcessCpu, SAMPLER_THREAD, running_samplers};
pub use settings::{Settings, SettingsError};
pub use shedder::{Admitted, DEFAULT_MIN_RT, Dropped, Error, IN_FLIGHT_BETA, Shedder, Snapshot};
pub use window::RT_FLOOR_SLOTS;

//! The shedder: admits or drops each request ([`Shedder::allow`]) and learns from each outcome
//! ([`Admitted::pass`], [`Admitted::fail`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::{Clock, MonotonicClock};
use crate::cpu::{CpuSource, ProcessCpu};
use crate::queueing::Queueing;
use crate::settings::{Settings, SettingsError};
use crate::window::{Summary, Window};

/// Weight of the previous value in the smoothed in-flight count, updated as each request is
/// admitted and as each ends (go-zero's `flyingBeta`; go-zero updates it only at the end).
pub const IN_FLIGHT_BETA: f64 = 0.9;

/// The response time assumed while the window holds no pass (go-zero's `defaultMinRt`): large,
/// so a process with no history is not shed for a low estimate.
pub const DEFAULT_MIN_RT: Duration = Duration::from_secs(1);

/// A request refused because the process is overloaded: answer it at once (HTTP 503 with
/// `Retry-After`, gRPC `RESOURCE_EXHAUSTED`) without doing its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("load shed: the server is busy")]
pub struct Dropped;

/// Why a shedder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The CPU sampler could not start.
    #[error("shedding: cannot start the CPU sampler: {0}")]
    CpuSampler(#[source] std::io::Error),
}

/// The adaptive load shedder of one process (or one app in it). Cheap to clone: clones share
/// their state.
#[derive(Clone)]
pub struct Shedder {
    /// `None` when disabled: every request is admitted and nothing is counted.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    cpu: Arc<dyn CpuSource>,
    clock: Arc<dyn Clock>,
    cpu_threshold: f64,
    min_factor: f64,
    /// `min_limit`: the floor of the scaled limit.
    min_limit: f64,
    cool_off: Duration,
    in_flight: AtomicU64,
    /// `f64` bits of the smoothed in-flight count.
    avg_in_flight: AtomicU64,
    /// Clock time of the last drop in nanoseconds, plus one; 0 before the first.
    last_drop: AtomicU64,
    window: Mutex<Window>,
}

/// The state a decision is made from, for metrics and readiness reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// The CPU reading, 0 to 1.
    pub cpu: f64,
    /// Requests admitted and not yet ended.
    pub in_flight: u64,
    /// The smoothed in-flight count.
    pub avg_in_flight: f64,
    /// The estimated capacity (requests in flight at once) by Little's law, before scaling.
    pub capacity: f64,
    /// The factor the capacity is scaled by at this CPU reading, `min_factor` to 1.
    pub factor: f64,
    /// Whether a drop happened within the cool-off.
    pub hot: bool,
    /// The floor of the limit (`min_limit`).
    pub min_limit: f64,
}

impl Snapshot {
    /// The in-flight count over which requests are dropped when overloaded or hot:
    /// `capacity * factor`, at least `min_limit`.
    pub fn limit(&self) -> f64 {
        limit(self.capacity, self.factor, self.min_limit)
    }
}

impl Shedder {
    /// A shedder on this process's CPU ([`ProcessCpu`], whose sampler thread starts here) and
    /// the monotonic clock; a pass-through one when `settings.enabled` is off.
    ///
    /// Each call starts its own sampler thread; shedders that should share one reading (two
    /// apps in one process) take clones of one [`ProcessCpu`] through
    /// [`with_sources`](Shedder::with_sources).
    ///
    /// # Errors
    /// A setting out of range, or the CPU sampler cannot start.
    pub fn new(settings: &Settings) -> Result<Shedder, Error> {
        settings.validate()?;
        if !settings.enabled {
            return Ok(Shedder::disabled());
        }
        let cpu = ProcessCpu::start(settings).map_err(Error::CpuSampler)?;
        Ok(Shedder::with_sources(settings, cpu, MonotonicClock::new())?)
    }

    /// A shedder on the given CPU reading and clock (tests use
    /// [`ManualCpu`](crate::ManualCpu) and [`ManualClock`](crate::ManualClock)); a pass-through
    /// one when `settings.enabled` is off.
    ///
    /// # Errors
    /// A setting out of range.
    pub fn with_sources(
        settings: &Settings,
        cpu: impl CpuSource,
        clock: impl Clock,
    ) -> Result<Shedder, SettingsError> {
        settings.validate()?;
        if !settings.enabled {
            return Ok(Shedder::disabled());
        }
        Ok(Shedder {
            inner: Some(Arc::new(Inner {
                cpu: Arc::new(cpu),
                clock: Arc::new(clock),
                cpu_threshold: settings.cpu_threshold,
                min_factor: settings.min_factor,
                min_limit: settings.min_limit,
                cool_off: settings.cool_off,
                in_flight: AtomicU64::new(0),
                avg_in_flight: AtomicU64::new(0f64.to_bits()),
                last_drop: AtomicU64::new(0),
                window: Mutex::new(Window::new(
                    settings.buckets,
                    settings.bucket_width(),
                    settings.rt_floor_window,
                )),
            })),
        })
    }

    /// A shedder that admits everything and counts nothing.
    pub fn disabled() -> Shedder {
        Shedder { inner: None }
    }

    /// Whether this shedder may drop requests.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Decides on one request: [`Admitted`] (report its outcome, or drop it to count a
    /// failure) or [`Dropped`].
    ///
    /// # Errors
    /// [`Dropped`] when the CPU reading is at or over the threshold, or a drop happened within
    /// the cool-off, and both the in-flight count and its smoothed value exceed the capacity
    /// scaled for the CPU reading.
    pub fn allow(&self) -> Result<Admitted, Dropped> {
        let Some(inner) = &self.inner else {
            return Ok(Admitted {
                inner: None,
                start: Duration::ZERO,
                queueing: Queueing::default(),
            });
        };
        let now = inner.clock.now();
        if inner.should_drop(now) {
            let stamp = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX - 1) + 1;
            inner.last_drop.store(stamp, Ordering::Relaxed);
            return Err(Dropped);
        }
        let in_flight = inner.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        inner.smooth_in_flight(in_flight);
        Ok(Admitted {
            inner: Some(inner.clone()),
            start: now,
            queueing: Queueing::default(),
        })
    }

    /// The state decisions are made from now; `None` when disabled.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let inner = self.inner.as_ref()?;
        let now = inner.clock.now();
        let cpu = inner.cpu.usage();
        Some(Snapshot {
            cpu,
            in_flight: inner.in_flight.load(Ordering::Relaxed),
            avg_in_flight: inner.avg_in_flight(),
            capacity: inner.capacity(now),
            factor: inner.factor(cpu),
            hot: inner.hot(now),
            min_limit: inner.min_limit,
        })
    }
}

impl std::fmt::Debug for Shedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shedder")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl Inner {
    fn should_drop(&self, now: Duration) -> bool {
        let cpu = self.cpu.usage();
        if cpu < self.cpu_threshold && !self.hot(now) {
            return false;
        }
        let limit = limit(self.capacity(now), self.factor(cpu), self.min_limit);
        let in_flight = self.in_flight.load(Ordering::Relaxed) as f64;
        self.avg_in_flight() > limit && in_flight > limit
    }

    /// A drop happened less than `cool_off` ago.
    fn hot(&self, now: Duration) -> bool {
        match self.last_drop.load(Ordering::Relaxed) {
            0 => false,
            stamp => now.saturating_sub(Duration::from_nanos(stamp - 1)) < self.cool_off,
        }
    }

    /// `(1 - cpu) / (1 - threshold)` kept within `[min_factor, 1]`: 1 up to the threshold,
    /// falling to the floor as the CPU reading nears 100 %.
    fn factor(&self, cpu: f64) -> f64 {
        ((1.0 - cpu) / (1.0 - self.cpu_threshold)).clamp(self.min_factor, 1.0)
    }

    /// Little's law: the best passes per bucket × buckets per second × the lowest average
    /// response time in seconds (the window's, or the floor when lower), which is
    /// `max_pass × min_rt / bucket width`; at least 1.
    fn capacity(&self, now: Duration) -> f64 {
        let (summary, width) = {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            (window.summary(now), window.width_nanos())
        };
        capacity(summary, width)
    }

    /// Moves the smoothed in-flight count towards `in_flight`, the count just after a request
    /// was admitted or ended.
    fn smooth_in_flight(&self, in_flight: u64) {
        let _ = self
            .avg_in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let avg = f64::from_bits(bits);
                let next = avg * IN_FLIGHT_BETA + in_flight as f64 * (1.0 - IN_FLIGHT_BETA);
                Some(next.to_bits())
            });
    }

    fn avg_in_flight(&self) -> f64 {
        f64::from_bits(self.avg_in_flight.load(Ordering::Relaxed))
    }

    /// One admitted request ended: one fewer in flight, the smoothed count moved towards the
    /// new count, and a pass (with its response time less `waited`) recorded in the window.
    fn finish(&self, pass_started: Option<Duration>, waited: Duration) {
        let in_flight = self.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        self.smooth_in_flight(in_flight);
        if let Some(start) = pass_started {
            let now = self.clock.now();
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            window.record(now, now.saturating_sub(start).saturating_sub(waited));
        }
    }
}

/// The in-flight count over which an overloaded process drops: the capacity scaled by the
/// CPU factor, never under one. Under one (go-zero lets the factor take it there), a request
/// is admitted only when none is in flight, and the CPU idles from each end to the next
/// arrival; one allows a request to wait behind the one running and no more.
fn limit(capacity: f64, factor: f64, min_limit: f64) -> f64 {
    (capacity * factor).max(min_limit)
}

/// The capacity estimate from a window summary and the bucket width in nanoseconds. The floor
/// only lowers a response time the window has: with no pass in the window there is no history
/// to correct, and the estimate is go-zero's default.
fn capacity(summary: Summary, width_nanos: u64) -> f64 {
    let max_pass = summary.max_pass.max(1) as f64;
    let min_rt = match (summary.min_rt_nanos, summary.rt_floor_nanos) {
        (Some(window), Some(floor)) => window.min(floor),
        (Some(window), None) => window,
        (None, _) => DEFAULT_MIN_RT.as_nanos() as f64,
    };
    (max_pass * min_rt / width_nanos as f64).max(1.0)
}

/// An admitted request. Report how it ended with [`pass`](Admitted::pass) or
/// [`fail`](Admitted::fail); dropping it unreported counts as a failure (a cancelled request).
/// Only passes teach the shedder the process's throughput and response time, so a failure
/// that never did the work (a refused token, a bad request) should be a `fail`.
#[must_use = "an admitted request counts as in flight until it passes, fails or is dropped"]
pub struct Admitted {
    inner: Option<Arc<Inner>>,
    start: Duration,
    queueing: Queueing,
}

impl Admitted {
    /// Polls the request's future `fut` on its behalf, so the time it waits to run after each
    /// wake (the run queue, under overload) is left out of the response time it passes with:
    /// the shedder learns the service time, not the queue. Poll the request's future through
    /// this on every poll, or never (then the whole wall time counts).
    ///
    /// Costs one allocation on the first poll (the waker that notes the wakes) and two clock
    /// reads a poll; a disabled shedder polls `fut` as it is.
    pub fn poll_timed<F: Future>(
        &mut self,
        fut: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let Some(inner) = &self.inner else {
            return fut.poll(cx);
        };
        let waker = self
            .queueing
            .before_poll(&inner.clock, self.start, cx.waker());
        fut.poll(&mut Context::from_waker(waker))
    }

    /// The request was served: counts a pass with its response time (less its waits to run,
    /// when polled through [`poll_timed`](Admitted::poll_timed)).
    pub fn pass(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.finish(Some(self.start), self.queueing.waited());
        }
    }

    /// The request failed: only leaves the in-flight count.
    pub fn fail(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.finish(None, Duration::ZERO);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.finish(None, Duration::ZERO);
        }
    }
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("counted", &self.inner.is_some())
            .field("start", &self.start)
            .finish()
    }
}

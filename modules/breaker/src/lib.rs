//! Circuit breaking for outgoing calls (the HTTP app's gRPC client), as one tower
//! [`Layer`](tower::Layer) with two selectable policies, so that when the backend fails the
//! caller gets a prompt, honest error ([`BreakerError`]) instead of piling up slow calls.
//!
//! ```no_run
//! # use goex_breaker::{Breaker, BreakerError, Outcome, Settings};
//! # use tower::ServiceBuilder;
//! # fn wire<S>(channel: S) -> Result<(), goex_breaker::SettingsError> {
//! let breaker = Breaker::new("/hello.Greeter/SayHello", &Settings::default())?;
//! let guarded = ServiceBuilder::new()
//!     .layer(breaker.layer()) // `.with_classifier(|r: &Result<_, _>| ...)` to ignore some errors
//!     .service(channel);
//! // keep `breaker` to report `breaker.snapshot()` in /readyz
//! # let _ = guarded; Ok(())
//! # }
//! ```
//!
//! # Policies
//!
//! **`hystrix`** (the original used hystrix-go with the defaults below). A state machine:
//!
//! ```text
//!                 trip (after an error)                      first call after
//!   ┌────────┐ ─────────────────────────────▶ ┌──────┐ ─────sleep_window─────▶ ┌──────────┐
//!   │ Closed │                                │ Open │                         │ HalfOpen │
//!   └────────┘ ◀───┐                          └──────┘ ◀──probe failed/timed── └──────────┘
//!                  │                                          out                   │
//!                  └──── probe succeeded (or ignored error): window reset ──────────┘
//! ```
//!
//! - *Closed*: calls go out. Each ends as a success, a failure, a timeout (cut off at
//!   `timeout`), or is rejected at once because `max_concurrent_requests` are in flight; all
//!   four are counted in a rolling window of `window` cut into `buckets`. Failures, timeouts and
//!   rejections are errors (as in Hystrix). After each error the breaker trips to *Open* when
//!   the window holds at least `request_volume_threshold` requests and
//!   `errors * 100 >= error_percent_threshold * requests`.
//! - *Open*: calls are refused ([`BreakerError::Open`]) for `sleep_window`.
//! - *HalfOpen*: the first call after the sleep window is the probe; every other call is
//!   refused while it is out, even under concurrency. A probe that succeeds (or ends in an
//!   [`Outcome::Ignored`] error, which proves the backend answered) closes the breaker with an
//!   empty window; one that fails or times out opens it for another sleep window; one that is
//!   abandoned (its future dropped) or rejected for concurrency gives no verdict and the next
//!   call becomes the probe.
//!
//! Calls let out before the breaker last closed are not counted in the new window.
//!
//! **`sre`** (Google SRE "client-side throttling", as go-zero and kratos). No states: each call is
//! dropped locally ([`BreakerError::Throttled`]) with probability
//! `max(0, (requests - k * accepts) / (requests + 1))` over the rolling window, where `requests`
//! counts every attempt (those dropped or rejected locally too, as the SRE book says) and
//! `accepts` those the backend answered: successes and [`Outcome::Ignored`] errors. A backend
//! that answers everything is never throttled; one that answers nothing sees almost every call
//! dropped, and a trickle still goes out to notice when it is back. In a steady state the
//! backend is sent about `k` times the calls it accepts, so one that keeps failing a fixed share
//! of more than `1 - 1/k` of its calls (a third, at 1.5) sees the drop rate climb towards almost
//! everything: the policy is meant for overload, where fewer calls mean fewer failures. `timeout` and
//! `max_concurrent_requests` apply as for `hystrix` (a timeout or a rejection is a request that
//! was not accepted). The random draw is injectable ([`BreakerBuilder::random`]).
//!
//! # Settings
//!
//! [`Settings`], one per guarded method, every key optional:
//!
//! | key | default | policy | meaning |
//! |---|---|---|---|
//! | `policy` | `hystrix` | | `hystrix` or `sre` |
//! | `timeout` | `1s` | both | a slower call is cut off and counts as a failure |
//! | `max_concurrent_requests` | `10` | both | more in flight are rejected at once |
//! | `window` | `10s` | both | length of the rolling window |
//! | `buckets` | `10` | both | the window forgets a whole bucket at a time |
//! | `request_volume_threshold` | `10` | hystrix | requests in the window before it may trip |
//! | `error_percent_threshold` | `50` | hystrix | trips at errors ≥ this % of requests |
//! | `sleep_window` | `5s` | hystrix | time open before a probe is let through |
//! | `k` | `1.5` | sre | the K of the formula; ≥ 1 |
//!
//! # Classifying outcomes
//!
//! The layer takes a [`Classify`] (any `Fn(&Result<T, E>) -> Outcome`); the default
//! ([`OkIsSuccess`]) calls `Ok` a success and `Err` a failure. For gRPC the application calls
//! client-side codes (`InvalidArgument`, `NotFound`, `Unauthenticated`, ...) [`Outcome::Ignored`].
//!
//! # Observing
//!
//! [`Breaker::state`] and [`Breaker::snapshot`] (state, window counts, in-flight calls, error
//! percentage, drop probability, time until a probe) for readiness reports; a
//! [`StateObserver`] (any `Fn(&str, State, State)`) is told of each state change.
//!
//! # Time
//!
//! The window, the sleep window and the timeouts read one [`Clock`]: [`TokioClock`] in
//! production, [`ManualClock`] in tests, so the state machine is tested without sleeping. State is
//! kept behind one mutex per breaker, held only for arithmetic and never across an `.await`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod breaker;
mod clock;
mod random;
mod service;
mod settings;
mod window;

pub use breaker::{Breaker, BreakerBuilder, Snapshot, State, StateObserver, drop_probability};
pub use clock::{Clock, ManualClock, Sleep, TokioClock};
pub use random::{RandomSource, SplitMix64};
pub use service::{
    BreakerError, BreakerLayer, BreakerService, Classify, OkIsSuccess, Outcome, ResponseFuture,
};
pub use settings::{Policy, Settings, SettingsError};
pub use window::Counts;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering it if a thread panicked while holding it: the critical sections of
/// this crate are counter arithmetic (plus `Clock::now`), so a poisoned lock holds sound
/// data (and a breaker that stopped working after an unrelated panic would be worse).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

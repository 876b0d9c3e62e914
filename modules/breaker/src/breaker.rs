//! One breaker's shared state and its decisions: whether a call may go out, and what its outcome
//! does to the state. The tower service ([`crate::BreakerService`]) is a thin shell over this.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, TokioClock};
use crate::lock;
use crate::random::{RandomSource, SplitMix64};
use crate::settings::{Policy, Settings, SettingsError};
use crate::window::{Counts, Event, Window};

/// Where a breaker's state machine stands. An `sre` breaker is always `Closed`: it has no
/// states, only a drop probability ([`Snapshot::drop_probability`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Calls go out; outcomes are counted.
    Closed,
    /// Calls are refused until the sleep window has passed. The breaker moves to `HalfOpen` on
    /// the first call after that, so it may read `Open` for a while after the window ended.
    Open,
    /// One trial call (the probe) is out or about to be; every other call is refused.
    HalfOpen,
}

impl State {
    /// `closed`, `open` or `half_open`, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Told of every state change of a breaker (to log it, count it, show it in `/readyz`).
///
/// Any `Fn(&str, State, State) + Send + Sync` is one. It is called after the breaker's lock is
/// released, on the task whose call caused the change; two changes made at nearly the same
/// moment on different threads may therefore be reported in either order ([`Breaker::state`]
/// is the authority). It must not panic: it may run inside a `Drop`.
pub trait StateObserver: Send + Sync + 'static {
    /// The breaker `name` went from `from` to `to`.
    fn on_state_change(&self, name: &str, from: State, to: State);
}

impl<F> StateObserver for F
where
    F: Fn(&str, State, State) + Send + Sync + 'static,
{
    fn on_state_change(&self, name: &str, from: State, to: State) {
        self(name, from, to)
    }
}

/// A breaker's state at one moment, for readiness reports and metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// The breaker's name (the application uses the gRPC method).
    pub name: String,
    /// Its policy.
    pub policy: Policy,
    /// Its state (always `closed` for `sre`).
    pub state: State,
    /// `hystrix` and `Open`: how long until a probe may go out (zero once it may).
    #[serde(with = "humantime_serde")]
    pub probe_in: Option<Duration>,
    /// Calls in flight now.
    pub in_flight: u32,
    /// The counts in the rolling window.
    pub window: Counts,
    /// `hystrix`: errors as a percentage of requests in the window (0 when there are none).
    pub error_percent: f64,
    /// `sre`: the probability the next call is dropped; 0 for `hystrix`.
    pub drop_probability: f64,
}

/// The SRE throttle's drop probability: `max(0, (requests - k * accepts) / (requests + 1))`.
pub fn drop_probability(requests: u64, accepts: u64, k: f64) -> f64 {
    let requests = requests as f64;
    ((requests - k * accepts as f64) / (requests + 1.0)).max(0.0)
}

/// Why a call was not let out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    Open,
    Rejected,
    Throttled,
}

/// How an admitted call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Completion {
    Success,
    Failure,
    Timeout,
    Ignored,
}

impl Completion {
    fn event(self) -> Event {
        match self {
            Completion::Success => Event::Success,
            Completion::Failure => Event::Failure,
            Completion::Timeout => Event::Timeout,
            Completion::Ignored => Event::Ignored,
        }
    }
}

type Transition = (State, State);

/// One breaker: its settings and its state, shared by every clone (clones are cheap).
///
/// Build one per guarded method with [`Breaker::new`] or [`Breaker::builder`], keep a clone for
/// readiness reporting ([`Breaker::snapshot`]) and wrap the client with [`Breaker::layer`].
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    settings: Settings,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    observer: Option<Arc<dyn StateObserver>>,
    core: Mutex<Core>,
}

/// Everything that changes, behind one lock held only for arithmetic (never across an await,
/// never while calling the observer, the classifier or the inner service).
struct Core {
    state: State,
    opened_at: Duration,
    /// `HalfOpen`: the probe is out.
    probe_out: bool,
    /// Bumped when the breaker closes and its window is reset, so that calls let out before
    /// then do not count in the new window.
    generation: u64,
    in_flight: u32,
    window: Window,
}

/// What an admitted call must report back: whether it is the probe and which window it counts in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    probe: bool,
    generation: u64,
}

/// Builds a [`Breaker`] with a clock, a random source or an observer other than the defaults.
pub struct BreakerBuilder {
    name: String,
    settings: Settings,
    clock: Option<Arc<dyn Clock>>,
    random: Option<Arc<dyn RandomSource>>,
    observer: Option<Arc<dyn StateObserver>>,
}

impl BreakerBuilder {
    /// The clock (default [`TokioClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The random source of the `sre` throttle (default [`SplitMix64::from_entropy`]).
    pub fn random(mut self, random: impl RandomSource) -> Self {
        self.random = Some(Arc::new(random));
        self
    }

    /// Who is told of state changes (default: nobody).
    pub fn observer(mut self, observer: impl StateObserver) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The breaker, closed, with an empty window.
    ///
    /// # Errors
    /// A setting is out of range ([`Settings::validate`]).
    pub fn build(self) -> Result<Breaker, SettingsError> {
        self.settings.validate()?;
        let window = Window::new(self.settings.bucket_width(), self.settings.buckets);
        Ok(Breaker {
            shared: Arc::new(Shared {
                name: self.name,
                clock: self.clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
                random: self
                    .random
                    .unwrap_or_else(|| Arc::new(SplitMix64::from_entropy())),
                observer: self.observer,
                settings: self.settings,
                core: Mutex::new(Core {
                    state: State::Closed,
                    opened_at: Duration::ZERO,
                    probe_out: false,
                    generation: 0,
                    in_flight: 0,
                    window,
                }),
            }),
        })
    }
}

impl Breaker {
    /// A breaker named `name` (logged and reported) with the default clock and randomness.
    ///
    /// # Errors
    /// A setting is out of range ([`Settings::validate`]).
    pub fn new(name: impl Into<String>, settings: &Settings) -> Result<Breaker, SettingsError> {
        Breaker::builder(name, settings).build()
    }

    /// A builder, to choose the clock, the random source or the observer.
    pub fn builder(name: impl Into<String>, settings: &Settings) -> BreakerBuilder {
        BreakerBuilder {
            name: name.into(),
            settings: settings.clone(),
            clock: None,
            random: None,
            observer: None,
        }
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The settings given at construction.
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// The current state.
    pub fn state(&self) -> State {
        lock(&self.shared.core).state
    }

    /// The state and the window's counts now.
    pub fn snapshot(&self) -> Snapshot {
        let s = &self.shared.settings;
        let core = lock(&self.shared.core);
        let now = self.shared.clock.now();
        let window = core.window.sum(now);
        let (requests, errors) = window.hystrix_health(s.count_rejections);
        let error_percent = if requests == 0 {
            0.0
        } else {
            errors as f64 * 100.0 / requests as f64
        };
        let probe_in = (s.policy == Policy::Hystrix && core.state == State::Open)
            .then(|| (core.opened_at + s.sleep_window).saturating_sub(now));
        let drop_probability = match s.policy {
            Policy::Hystrix => 0.0,
            Policy::Sre => drop_probability(window.sre_requests(), window.sre_accepts(), s.k),
        };
        Snapshot {
            name: self.shared.name.clone(),
            policy: s.policy,
            state: core.state,
            probe_in,
            in_flight: core.in_flight,
            window,
            error_percent,
            drop_probability,
        }
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.shared.clock.as_ref()
    }

    /// Decides whether a call may go out now; an admitted call holds a [`Permit`] until it ends.
    pub(crate) fn admit(&self) -> Result<Permit, Rejection> {
        let s = &self.shared.settings;
        // Drawn before the lock: the random source is the caller's code.
        let draw = match s.policy {
            Policy::Hystrix => 0.0,
            Policy::Sre => self.shared.random.next_f64(),
        };
        let (admitted, transition) = {
            let mut core = lock(&self.shared.core);
            let now = self.shared.clock.now();
            match s.policy {
                Policy::Hystrix => core.admit_hystrix(now, s),
                Policy::Sre => (core.admit_sre(now, s, draw), None),
            }
        };
        self.notify(transition);
        admitted.map(|ticket| Permit {
            breaker: self.clone(),
            ticket,
            finished: false,
        })
    }

    /// Counts how an admitted call ended (`None`: abandoned, its future dropped before the end).
    fn finish(&self, ticket: Ticket, completion: Option<Completion>) {
        let transition = {
            let mut core = lock(&self.shared.core);
            let now = self.shared.clock.now();
            core.finish(now, &self.shared.settings, ticket, completion)
        };
        self.notify(transition);
    }

    fn notify(&self, transition: Option<Transition>) {
        if let (Some((from, to)), Some(observer)) = (transition, &self.shared.observer) {
            observer.on_state_change(&self.shared.name, from, to);
        }
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.shared.name)
            .field("policy", &self.shared.settings.policy)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Core {
    fn admit_hystrix(
        &mut self,
        now: Duration,
        s: &Settings,
    ) -> (Result<Ticket, Rejection>, Option<Transition>) {
        let mut transition = None;
        if self.state == State::Open {
            if now.saturating_sub(self.opened_at) < s.sleep_window {
                self.window.record(now, Event::ShortCircuited);
                return (Err(Rejection::Open), None);
            }
            self.state = State::HalfOpen;
            transition = Some((State::Open, State::HalfOpen));
        }
        let probe = self.state == State::HalfOpen;
        if probe && self.probe_out {
            self.window.record(now, Event::ShortCircuited);
            return (Err(Rejection::Open), transition);
        }
        if self.in_flight >= s.max_concurrent_requests {
            // A probe refused here was never out: the next call may be the probe.
            self.window.record(now, Event::Rejected);
            if self.state == State::Closed {
                transition = self.trip_if_unhealthy(now, s);
            }
            return (Err(Rejection::Rejected), transition);
        }
        self.in_flight += 1;
        self.probe_out |= probe;
        let ticket = Ticket {
            probe,
            generation: self.generation,
        };
        (Ok(ticket), transition)
    }

    fn admit_sre(&mut self, now: Duration, s: &Settings, draw: f64) -> Result<Ticket, Rejection> {
        let window = self.window.sum(now);
        let p = drop_probability(window.sre_requests(), window.sre_accepts(), s.k);
        if draw < p {
            self.window.record(now, Event::Throttled);
            return Err(Rejection::Throttled);
        }
        if self.in_flight >= s.max_concurrent_requests {
            self.window.record(now, Event::Rejected);
            return Err(Rejection::Rejected);
        }
        self.in_flight += 1;
        Ok(Ticket {
            probe: false,
            generation: self.generation,
        })
    }

    fn finish(
        &mut self,
        now: Duration,
        s: &Settings,
        ticket: Ticket,
        completion: Option<Completion>,
    ) -> Option<Transition> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if ticket.probe {
            self.probe_out = false;
            if self.state != State::HalfOpen {
                return None;
            }
            return match completion {
                // Abandoned: no verdict, the next call is the probe.
                None => None,
                // An ignored (business) error proves the backend answered.
                Some(Completion::Success | Completion::Ignored) => {
                    self.state = State::Closed;
                    self.generation += 1;
                    self.window.clear();
                    Some((State::HalfOpen, State::Closed))
                }
                Some(c @ (Completion::Failure | Completion::Timeout)) => {
                    self.window.record(now, c.event());
                    self.state = State::Open;
                    self.opened_at = now;
                    Some((State::HalfOpen, State::Open))
                }
            };
        }
        let completion = completion?;
        if ticket.generation != self.generation {
            return None;
        }
        self.window.record(now, completion.event());
        let error = matches!(completion, Completion::Failure | Completion::Timeout);
        if s.policy == Policy::Hystrix && self.state == State::Closed && error {
            self.trip_if_unhealthy(now, s)
        } else {
            None
        }
    }

    /// Closed → Open when the window holds enough requests and enough of them are errors.
    fn trip_if_unhealthy(&mut self, now: Duration, s: &Settings) -> Option<Transition> {
        let window = self.window.sum(now);
        let (requests, errors) = window.hystrix_health(s.count_rejections);
        let unhealthy = requests >= u64::from(s.request_volume_threshold)
            && errors * 100 >= u64::from(s.error_percent_threshold) * requests;
        unhealthy.then(|| {
            self.state = State::Open;
            self.opened_at = now;
            (State::Closed, State::Open)
        })
    }
}

/// An admitted call's right to be counted; released (and counted) when it ends or is dropped.
pub(crate) struct Permit {
    breaker: Breaker,
    ticket: Ticket,
    finished: bool,
}

impl Permit {
    /// Counts the call's end.
    pub(crate) fn finish(mut self, completion: Completion) {
        self.finished = true;
        self.breaker.finish(self.ticket, Some(completion));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.finished {
            self.breaker.finish(self.ticket, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_probability_is_the_sre_formula() {
        assert_eq!(drop_probability(0, 0, 1.5), 0.0);
        assert_eq!(drop_probability(100, 100, 1.5), 0.0);
        assert_eq!(drop_probability(100, 0, 1.5), 100.0 / 101.0);
        assert_eq!(drop_probability(10, 4, 1.5), 4.0 / 11.0);
        assert_eq!(drop_probability(10, 4, 2.0), 2.0 / 11.0);
        assert_eq!(drop_probability(10, 5, 2.0), 0.0);
    }

    #[test]
    fn an_abandoned_permit_frees_its_slot_without_counting() {
        let b = Breaker::builder("m", &Settings::default())
            .clock(crate::ManualClock::new())
            .build()
            .expect("valid");
        let permit = b.admit().expect("admitted");
        assert_eq!(b.snapshot().in_flight, 1);
        drop(permit);
        let snap = b.snapshot();
        assert_eq!((snap.in_flight, snap.window), (0, Counts::default()));
    }

    #[test]
    fn a_snapshot_serialises_for_readiness_reports() {
        let clock = crate::ManualClock::new();
        let b = Breaker::builder("/hello.Greeter/SayHello", &Settings::default())
            .clock(clock.clone())
            .build()
            .expect("valid");
        for _ in 0..10 {
            b.admit().expect("closed").finish(Completion::Failure);
        }
        clock.advance(Duration::from_secs(2));
        let json = serde_json::to_value(b.snapshot()).expect("serialisable");
        assert_eq!(json["name"], "/hello.Greeter/SayHello");
        assert_eq!(json["policy"], "hystrix");
        assert_eq!(json["state"], "open");
        assert_eq!(json["probe_in"], "3s");
        assert_eq!(json["window"]["failures"], 10);
        assert_eq!(json["error_percent"], 100.0);
    }
}

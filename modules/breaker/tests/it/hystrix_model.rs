//! The Hystrix state machine against a reference model written straight from the rules (a
//! plain list of timestamped events for the window): for random settings and random sequences
//! of clock advances, immediate calls, slow calls, and calls held open, then finished or
//! abandoned, the breaker's state, admission decisions, window counts, in-flight count and
//! reported transitions equal the model's after every step.

use std::task::Poll;
use std::time::Duration;

use goex_breaker::{BreakerError, Clock, Counts, Settings, State};
use proptest::prelude::*;
use tokio::sync::oneshot;

use crate::support::{
    BackendError, Classifier, Guarded, Script, call_now, changes, grpc_like, guarded_with,
    manual_breaker, ms, poll_once,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Success,
    Failure,
    Ignored,
}

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    /// A call the backend answers at once.
    Call(Answer),
    /// A call the backend never answers; the clock is then moved on by the timeout.
    Slow,
    /// A call held open until `Finish` (or cut off by the timeout when the clock passes it).
    Start(Answer),
    Finish(usize),
    Abandon(usize),
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        Just(Answer::Success),
        Just(Answer::Failure),
        Just(Answer::Ignored)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..2500).prop_map(Op::Advance),
        6 => answer().prop_map(Op::Call),
        1 => Just(Op::Slow),
        2 => answer().prop_map(Op::Start),
        2 => any::<usize>().prop_map(Op::Finish),
        1 => any::<usize>().prop_map(Op::Abandon),
    ]
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        1u64..3000,  // timeout ms
        1u32..4,     // max concurrent
        0u32..8,     // volume
        1u32..=100,  // error %
        0u64..2000,  // sleep window ms
        1u32..6,     // buckets
        100u64..800, // bucket width ms
    )
        .prop_map(
            |(timeout, max, volume, pct, sleep, buckets, width)| Settings {
                timeout: ms(timeout),
                max_concurrent_requests: max,
                request_volume_threshold: volume,
                error_percent_threshold: pct,
                sleep_window: ms(sleep),
                buckets,
                window: ms(width * u64::from(buckets)),
                ..Settings::default()
            },
        )
}

// ---- the reference model ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Success,
    Failure,
    Timeout,
    Rejected,
    Short,
    Ignored,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Open,
    Rejected,
}

#[derive(Clone, Copy, Debug)]
struct Ticket {
    probe: bool,
    era: u64,
}

struct Model {
    s: Settings,
    now: Duration,
    state: State,
    opened_at: Duration,
    probe_out: bool,
    /// How many times the breaker has closed after being open.
    era: u64,
    in_flight: u32,
    events: Vec<(Duration, Ev)>,
    transitions: Vec<(State, State)>,
}

impl Model {
    fn new(s: Settings) -> Self {
        Model {
            s,
            now: Duration::ZERO,
            state: State::Closed,
            opened_at: Duration::ZERO,
            probe_out: false,
            era: 0,
            in_flight: 0,
            events: Vec::new(),
            transitions: Vec::new(),
        }
    }

    fn go(&mut self, to: State) {
        self.transitions.push((self.state, to));
        self.state = to;
    }

    /// Events less than `buckets` bucket widths older than now, counted by whole buckets.
    fn counts(&self) -> Counts {
        let width = self.s.bucket_width().as_nanos();
        let current = self.now.as_nanos() / width;
        let mut c = Counts::default();
        for (at, ev) in &self.events {
            if current - at.as_nanos() / width >= u128::from(self.s.buckets) {
                continue;
            }
            match ev {
                Ev::Success => c.successes += 1,
                Ev::Failure => c.failures += 1,
                Ev::Timeout => c.timeouts += 1,
                Ev::Rejected => c.rejected += 1,
                Ev::Short => c.short_circuited += 1,
                Ev::Ignored => c.ignored += 1,
            }
        }
        c
    }

    fn push(&mut self, ev: Ev) {
        self.events.push((self.now, ev));
    }

    fn maybe_trip(&mut self) {
        let c = self.counts();
        let requests = c.successes + c.failures + c.timeouts + c.rejected;
        let errors = c.failures + c.timeouts + c.rejected;
        let enough = requests >= u64::from(self.s.request_volume_threshold);
        let pct = errors as f64 * 100.0 / requests as f64;
        if enough && pct >= f64::from(self.s.error_percent_threshold) {
            self.go(State::Open);
            self.opened_at = self.now;
        }
    }

    fn admit(&mut self) -> Result<Ticket, Refusal> {
        if self.state == State::Open {
            if self.now - self.opened_at >= self.s.sleep_window {
                self.go(State::HalfOpen);
            } else {
                self.push(Ev::Short);
                return Err(Refusal::Open);
            }
        }
        if self.state == State::HalfOpen && self.probe_out {
            self.push(Ev::Short);
            return Err(Refusal::Open);
        }
        if self.in_flight == self.s.max_concurrent_requests {
            self.push(Ev::Rejected);
            if self.state == State::Closed {
                self.maybe_trip();
            }
            return Err(Refusal::Rejected);
        }
        self.in_flight += 1;
        let probe = self.state == State::HalfOpen;
        if probe {
            self.probe_out = true;
        }
        Ok(Ticket {
            probe,
            era: self.era,
        })
    }

    /// `None`: abandoned.
    fn end(&mut self, t: Ticket, ev: Option<Ev>) {
        self.in_flight -= 1;
        if t.probe {
            self.probe_out = false;
            match ev {
                None => {}
                Some(Ev::Success | Ev::Ignored) => {
                    self.go(State::Closed);
                    self.era += 1;
                    self.events.clear();
                }
                Some(ev) => {
                    self.push(ev);
                    self.go(State::Open);
                    self.opened_at = self.now;
                }
            }
            return;
        }
        let Some(ev) = ev else { return };
        if t.era != self.era {
            return;
        }
        self.push(ev);
        if self.state == State::Closed && matches!(ev, Ev::Failure | Ev::Timeout) {
            self.maybe_trip();
        }
    }
}

// ---- driving the real breaker ----

struct Held {
    future: <Guarded<Classifier> as tower::Service<Script>>::Future,
    answer: Option<(Answer, oneshot::Sender<Result<u32, BackendError>>)>,
    ticket: Ticket,
    started: Duration,
}

fn result_of(a: Answer) -> Result<u32, BackendError> {
    match a {
        Answer::Success => Ok(7),
        Answer::Failure => Err(BackendError::Unavailable),
        // `grpc_like` calls it ignored.
        Answer::Ignored => Err(BackendError::InvalidArgument),
    }
}

fn ev_of(a: Answer) -> Ev {
    match a {
        Answer::Success => Ev::Success,
        Answer::Failure => Ev::Failure,
        Answer::Ignored => Ev::Ignored,
    }
}

fn refusal_of(e: &BreakerError<BackendError>) -> Option<Refusal> {
    match e {
        BreakerError::Open => Some(Refusal::Open),
        BreakerError::Rejected => Some(Refusal::Rejected),
        _ => None,
    }
}

/// After the clock moved: every held call whose timeout has passed is cut off, in start order.
fn expire(held: &mut Vec<Held>, model: &mut Model) -> Result<(), TestCaseError> {
    let mut i = 0;
    while i < held.len() {
        let due = model.now >= held[i].started + model.s.timeout;
        let polled = poll_once(&mut held[i].future);
        if due {
            prop_assert!(
                matches!(polled, Poll::Ready(Err(BreakerError::Timeout))),
                "a held call past its timeout must time out, got {:?}",
                polled
            );
            let h = held.remove(i);
            model.end(h.ticket, Some(Ev::Timeout));
        } else {
            prop_assert!(polled.is_pending());
            i += 1;
        }
    }
    Ok(())
}

fn run(settings: Settings, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (breaker, clock, log) = manual_breaker(&settings);
    let mut svc: Guarded<Classifier> = guarded_with(&breaker, grpc_like);
    let mut model = Model::new(settings.clone());
    let mut held: Vec<Held> = Vec::new();

    for op in ops {
        match op {
            Op::Advance(d) => {
                clock.advance(ms(d));
                model.now += ms(d);
                expire(&mut held, &mut model)?;
            }
            Op::Call(a) => {
                let mut fut = call_now(&mut svc, Script::Now(result_of(a)));
                let got = poll_once(&mut fut);
                let Poll::Ready(got) = got else {
                    return Err(TestCaseError::fail("an immediate call must be ready"));
                };
                match (model.admit(), got) {
                    (Ok(t), got) => {
                        prop_assert_eq!(
                            got.map_err(|e| e.into_inner()),
                            result_of(a).map_err(Some)
                        );
                        model.end(t, Some(ev_of(a)));
                    }
                    (Err(r), Err(e)) => prop_assert_eq!(refusal_of(&e), Some(r)),
                    (Err(r), Ok(v)) => {
                        return Err(TestCaseError::fail(format!(
                            "model refused ({r:?}), breaker answered {v}"
                        )));
                    }
                }
            }
            Op::Slow | Op::Start(_) => {
                let (script, answer) = match op {
                    Op::Start(a) => {
                        let (tx, rx) = oneshot::channel();
                        (Script::Later(rx), Some((a, tx)))
                    }
                    _ => (Script::Never, None),
                };
                let mut fut = call_now(&mut svc, script);
                let got = poll_once(&mut fut);
                match model.admit() {
                    Ok(ticket) => {
                        prop_assert!(got.is_pending(), "an admitted held call must wait");
                        held.push(Held {
                            future: fut,
                            answer,
                            ticket,
                            started: model.now,
                        });
                    }
                    Err(r) => match got {
                        Poll::Ready(Err(e)) => prop_assert_eq!(refusal_of(&e), Some(r)),
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "model refused ({r:?}), breaker gave {other:?}"
                            )));
                        }
                    },
                }
                if matches!(op, Op::Slow) {
                    clock.advance(settings.timeout);
                    model.now += settings.timeout;
                    expire(&mut held, &mut model)?;
                }
            }
            Op::Finish(i) => {
                if held.is_empty() {
                    continue;
                }
                let i = i % held.len();
                let Some((a, tx)) = held[i].answer.take() else {
                    continue; // a `Slow` call: only its timeout ends it
                };
                let _ = tx.send(result_of(a));
                let mut h = held.remove(i);
                let got = poll_once(&mut h.future);
                let Poll::Ready(got) = got else {
                    return Err(TestCaseError::fail("an answered call must be ready"));
                };
                prop_assert_eq!(got.map_err(|e| e.into_inner()), result_of(a).map_err(Some));
                model.end(h.ticket, Some(ev_of(a)));
            }
            Op::Abandon(i) => {
                if held.is_empty() {
                    continue;
                }
                let h = held.remove(i % held.len());
                drop(h.future);
                model.end(h.ticket, None);
            }
        }
        prop_assert_eq!(clock.now(), model.now);
        prop_assert_eq!(breaker.state(), model.state);
        let snap = breaker.snapshot();
        prop_assert_eq!(snap.window, model.counts());
        prop_assert_eq!(snap.in_flight, model.in_flight);
        prop_assert_eq!(&changes(&log), &model.transitions);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hystrix_matches_the_reference_model(
        settings in settings(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(settings, ops)?;
    }
}

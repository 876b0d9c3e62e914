//! The SRE throttle: its decisions against an exact model fed the same random draws, its
//! observed drop rate against the formula, its silence while the backend accepts everything,
//! and its counts under concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use goex_breaker::{
    Breaker, BreakerError, Counts, ManualClock, Policy, RandomSource, Settings, SplitMix64, State,
};
use proptest::prelude::*;
use tower::ServiceExt;

use crate::support::{
    BackendError, Classifier, Guarded, Script, call_now, grpc_like, guarded_with, ms, poll_once,
};

fn sre(k: f64, buckets: u32, width_ms: u64) -> Settings {
    Settings {
        policy: Policy::Sre,
        k,
        buckets,
        window: ms(width_ms * u64::from(buckets)),
        ..Settings::default()
    }
}

/// The formula, written again here.
fn formula(requests: u64, accepts: u64, k: f64) -> f64 {
    let r = requests as f64;
    let p = (r - k * accepts as f64) / (r + 1.0);
    if p > 0.0 { p } else { 0.0 }
}

fn breaker_with(settings: &Settings, random: impl RandomSource) -> (Breaker, ManualClock) {
    let clock = ManualClock::new();
    let breaker = Breaker::builder("sre", settings)
        .clock(clock.clone())
        .random(random)
        .build()
        .unwrap();
    (breaker, clock)
}

/// A random source that replays `draws` in order (then 0.999...).
fn replay(draws: Vec<f64>) -> impl RandomSource {
    let next = AtomicUsize::new(0);
    move || {
        let i = next.fetch_add(1, Ordering::SeqCst);
        draws.get(i).copied().unwrap_or(0.999_999)
    }
}

fn once(
    svc: &mut Guarded<Classifier>,
    script: Script,
) -> Poll<Result<u32, BreakerError<BackendError>>> {
    poll_once(&mut call_now(svc, script))
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Advance(u64),
    Success,
    Failure,
    Ignored,
    Slow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u64..3000).prop_map(Op::Advance),
        3 => Just(Op::Success),
        4 => Just(Op::Failure),
        1 => Just(Op::Ignored),
        1 => Just(Op::Slow),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Success,
    Failure,
    Timeout,
    Throttled,
    Ignored,
}

struct Model {
    s: Settings,
    now: Duration,
    events: Vec<(Duration, Ev)>,
}

impl Model {
    fn counts(&self) -> Counts {
        let width = self.s.bucket_width().as_nanos();
        let current = self.now.as_nanos() / width;
        let mut c = Counts::default();
        for (at, ev) in &self.events {
            if current - at.as_nanos() / width < u128::from(self.s.buckets) {
                match ev {
                    Ev::Success => c.successes += 1,
                    Ev::Failure => c.failures += 1,
                    Ev::Timeout => c.timeouts += 1,
                    Ev::Throttled => c.throttled += 1,
                    Ev::Ignored => c.ignored += 1,
                }
            }
        }
        c
    }

    fn p(&self) -> f64 {
        let c = self.counts();
        let requests = c.successes + c.failures + c.timeouts + c.throttled + c.ignored;
        formula(requests, c.successes + c.ignored, self.s.k)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Fed the same draws, the throttle drops exactly the calls the formula says
    /// (`draw < p`), counts exactly what the model counts, and reports the model's p.
    #[test]
    fn sre_matches_an_exact_model(
        k in 1.0f64..3.0,
        buckets in 1u32..6,
        width in 100u64..1000,
        ops in prop::collection::vec(op(), 1..120),
        draws in prop::collection::vec(0.0f64..1.0, 120),
    ) {
        let settings = sre(k, buckets, width);
        let (breaker, clock) = breaker_with(&settings, replay(draws.clone()));
        let mut svc = guarded_with(&breaker, grpc_like as Classifier);
        let mut model = Model { s: settings.clone(), now: Duration::ZERO, events: Vec::new() };
        let mut draws = draws.into_iter();
        for op in ops {
            if let Op::Advance(d) = op {
                clock.advance(ms(d));
                model.now += ms(d);
            } else {
                let draw = draws.next().unwrap_or(0.999_999);
                let throttle = draw < model.p();
                let (script, ev) = match op {
                    Op::Success => (Script::Now(Ok(1)), Ev::Success),
                    Op::Failure => (Script::Now(Err(BackendError::Unavailable)), Ev::Failure),
                    Op::Ignored => (Script::Now(Err(BackendError::InvalidArgument)), Ev::Ignored),
                    _ => (Script::Never, Ev::Timeout),
                };
                let mut fut = call_now(&mut svc, script);
                let mut got = poll_once(&mut fut);
                if throttle {
                    prop_assert!(matches!(got, Poll::Ready(Err(BreakerError::Throttled))), "{:?}", got);
                    model.events.push((model.now, Ev::Throttled));
                } else {
                    if ev == Ev::Timeout {
                        prop_assert!(got.is_pending());
                        clock.advance(settings.timeout);
                        model.now += settings.timeout;
                        got = poll_once(&mut fut);
                        prop_assert!(matches!(got, Poll::Ready(Err(BreakerError::Timeout))), "{:?}", got);
                    } else {
                        prop_assert!(
                            !matches!(got, Poll::Ready(Err(BreakerError::Throttled))),
                            "throttled at p = {}", model.p()
                        );
                    }
                    model.events.push((model.now, ev));
                }
            }
            let snap = breaker.snapshot();
            prop_assert_eq!(snap.state, State::Closed);
            prop_assert_eq!(snap.window, model.counts());
            prop_assert!((snap.drop_probability - model.p()).abs() < 1e-12);
        }
    }

    /// Over many calls with a seeded generator, the number dropped is the sum of the per-call
    /// probabilities given by the formula, within six standard deviations.
    #[test]
    fn the_drop_rate_follows_the_formula(
        seed in any::<u64>(),
        failure_rate in 0.0f64..=1.0,
        k in 1.0f64..3.0,
    ) {
        let settings = sre(k, 10, 1000);
        let (breaker, clock) = breaker_with(&settings, SplitMix64::seeded(seed));
        let mut svc = guarded_with(&breaker, grpc_like as Classifier);
        let backend_dice = SplitMix64::seeded(seed ^ 0xdead_beef);
        let (mut expected, mut variance, mut dropped) = (0.0f64, 0.0f64, 0u64);
        for _ in 0..3000 {
            let w = breaker.snapshot().window;
            let p = formula(w.sre_requests(), w.sre_accepts(), k);
            expected += p;
            variance += p * (1.0 - p);
            let result = if backend_dice.next_f64() < failure_rate {
                Err(BackendError::Unavailable)
            } else {
                Ok(1)
            };
            if let Poll::Ready(Err(BreakerError::Throttled)) = once(&mut svc, Script::Now(result)) {
                dropped += 1;
            }
            clock.advance(ms(7)); // 21 s in all: the window rolls twice
        }
        let tolerance = 6.0 * variance.sqrt() + 6.0;
        prop_assert!(
            (dropped as f64 - expected).abs() <= tolerance,
            "dropped {} of 3000, expected {:.1} ± {:.1}", dropped, expected, tolerance
        );
    }

    /// A backend that accepts every call (successes and ignored errors) is never throttled,
    /// even with a random source that always draws 0, whatever the timing and K.
    #[test]
    fn never_throttles_a_backend_that_accepts_everything(
        k in 1.0f64..4.0,
        ops in prop::collection::vec(
            prop_oneof![
                (0u64..5000).prop_map(Op::Advance),
                Just(Op::Success),
                Just(Op::Ignored),
            ],
            1..300,
        ),
    ) {
        let settings = sre(k, 10, 1000);
        let (breaker, clock) = breaker_with(&settings, || 0.0);
        let mut svc = guarded_with(&breaker, grpc_like as Classifier);
        for op in ops {
            let got = match op {
                Op::Advance(d) => { clock.advance(ms(d)); continue; }
                Op::Success => once(&mut svc, Script::Now(Ok(1))),
                _ => once(&mut svc, Script::Now(Err(BackendError::InvalidArgument))),
            };
            prop_assert!(!matches!(got, Poll::Ready(Err(BreakerError::Throttled))));
            prop_assert_eq!(breaker.snapshot().drop_probability, 0.0);
        }
    }
}

#[test]
fn drops_when_the_draw_is_below_p_and_not_at_it() {
    // Draws: call 1 (p = 0), call 2 at p = 1/2, call 3 at p = 2/3, call 4 at p = 3/4.
    let draws = vec![0.0, 0.5, 0.66, 0.75];
    let (breaker, _clock) = breaker_with(&sre(1.5, 10, 1000), replay(draws));
    let mut svc = guarded_with(&breaker, grpc_like as Classifier);
    let fail = || Script::Now(Err(BackendError::Unavailable));
    assert!(matches!(
        once(&mut svc, fail()),
        Poll::Ready(Err(BreakerError::Inner(_)))
    ));
    assert!(matches!(
        once(&mut svc, fail()),
        Poll::Ready(Err(BreakerError::Inner(_)))
    ));
    assert!(matches!(
        once(&mut svc, fail()),
        Poll::Ready(Err(BreakerError::Throttled))
    ));
    assert!(matches!(
        once(&mut svc, fail()),
        Poll::Ready(Err(BreakerError::Inner(_)))
    ));
    let snap = breaker.snapshot();
    assert_eq!((snap.window.failures, snap.window.throttled), (3, 1));
    assert_eq!(snap.drop_probability, 4.0 / 5.0);
}

#[test]
fn a_recovered_backend_is_let_through_again_as_the_window_rolls() {
    let (breaker, clock) = breaker_with(&sre(1.5, 10, 1000), SplitMix64::seeded(1));
    let mut svc = guarded_with(&breaker, grpc_like as Classifier);
    for _ in 0..100 {
        let _ = once(&mut svc, Script::Now(Err(BackendError::Unavailable)));
    }
    assert!(breaker.snapshot().drop_probability > 0.95);
    clock.advance(Duration::from_secs(10));
    assert_eq!(breaker.snapshot().drop_probability, 0.0);
    assert!(matches!(
        once(&mut svc, Script::Now(Ok(3))),
        Poll::Ready(Ok(3))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_under_concurrency() {
    let settings = Settings {
        max_concurrent_requests: 1000,
        ..sre(1.5, 10, 1000)
    };
    let (breaker, _clock) = breaker_with(&settings, SplitMix64::seeded(99));
    let svc = guarded_with(&breaker, grpc_like as Classifier);
    let (tasks, per_task) = (16, 200);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let svc = svc.clone();
        handles.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut throttled) = (0u64, 0u64, 0u64);
            for i in 0..per_task {
                let script = if (t + i) % 2 == 0 {
                    Script::Now(Ok(1))
                } else {
                    Script::Now(Err(BackendError::Unavailable))
                };
                match svc.clone().oneshot(script).await {
                    Ok(_) => ok += 1,
                    Err(BreakerError::Inner(_)) => failed += 1,
                    Err(BreakerError::Throttled) => throttled += 1,
                    Err(other) => panic!("unexpected {other:?}"),
                }
                tokio::task::yield_now().await;
            }
            (ok, failed, throttled)
        }));
    }
    let (mut ok, mut failed, mut throttled) = (0, 0, 0);
    for h in handles {
        let (a, b, c) = h.await.unwrap();
        (ok, failed, throttled) = (ok + a, failed + b, throttled + c);
    }
    let snap = breaker.snapshot();
    assert_eq!(
        (
            snap.window.successes,
            snap.window.failures,
            snap.window.throttled
        ),
        (ok, failed, throttled)
    );
    assert_eq!(snap.window.sre_requests(), (tasks * per_task) as u64);
    assert_eq!(snap.in_flight, 0);
}

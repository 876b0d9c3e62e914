//! The Hystrix policy's rules one by one, those that count under real concurrency (tokio tasks
//! on a multi-threaded runtime).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use goex_breaker::{Breaker, BreakerError, BreakerService, Counts, ManualClock, Settings, State};
use tokio::sync::{Barrier, Semaphore, mpsc};
use tower::{ServiceExt, service_fn};

use crate::support::{
    BackendError, Script, call_now, changes, grpc_like, guarded, guarded_with, manual_breaker, ms,
    poll_once,
};

/// Runs one immediate call; `Ok(())` when it reached the backend (whatever it answered).
fn call(
    svc: &mut crate::support::Guarded,
    result: Result<u32, BackendError>,
) -> Result<u32, BreakerError<BackendError>> {
    match poll_once(&mut call_now(svc, Script::Now(result))) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("an immediate call is ready at once"),
    }
}

fn fail(svc: &mut crate::support::Guarded, n: usize) {
    for _ in 0..n {
        assert!(matches!(
            call(svc, Err(BackendError::Unavailable)),
            Err(BreakerError::Inner(BackendError::Unavailable))
        ));
    }
}

fn succeed(svc: &mut crate::support::Guarded, n: usize) {
    for _ in 0..n {
        assert_eq!(call(svc, Ok(1)).ok(), Some(1));
    }
}

#[test]
fn does_not_trip_below_the_request_volume_threshold() {
    let (breaker, _clock, _) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    fail(&mut svc, 9); // 100 % errors, but 9 < 10 requests
    assert_eq!(breaker.state(), State::Closed);
    fail(&mut svc, 1);
    assert_eq!(breaker.state(), State::Open);
    assert!(matches!(call(&mut svc, Ok(1)), Err(BreakerError::Open)));
}

#[test]
fn trips_at_exactly_the_error_percentage() {
    // 6 successes then 5 failures: 5/11 = 45 % < 50 %, still closed.
    let (breaker, _clock, _) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    succeed(&mut svc, 6);
    fail(&mut svc, 5);
    assert_eq!(breaker.state(), State::Closed);
    assert!((breaker.snapshot().error_percent - 500.0 / 11.0).abs() < 1e-9);
    // One more: 6/12 = exactly 50 %: open.
    fail(&mut svc, 1);
    assert_eq!(breaker.state(), State::Open);

    // 5 successes then 5 failures: the 10th request, 50 %, trips it.
    let (breaker, _clock, log) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    succeed(&mut svc, 5);
    fail(&mut svc, 4);
    assert_eq!(breaker.state(), State::Closed);
    fail(&mut svc, 1);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(changes(&log), [(State::Closed, State::Open)]);
    let first = log.lock().unwrap()[0].0.clone();
    assert_eq!(first, "test.Method");
}

#[test]
fn open_short_circuits_without_calling_the_backend_until_the_sleep_window_ends() {
    let (breaker, clock, _) = manual_breaker(&Settings::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let backend = service_fn(move |_: ()| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<(), _>(BackendError::Unavailable))
    });
    let mut svc = BreakerService::new(backend, breaker.clone(), goex_breaker::OkIsSuccess);
    for _ in 0..10 {
        let _ = poll_once(&mut call_now(&mut svc, ()));
    }
    assert_eq!(
        (breaker.state(), calls.load(Ordering::SeqCst)),
        (State::Open, 10)
    );
    clock.advance(ms(4999));
    for _ in 0..5 {
        let got = poll_once(&mut call_now(&mut svc, ()));
        assert!(matches!(got, Poll::Ready(Err(BreakerError::Open))));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    let snap = breaker.snapshot();
    assert_eq!(snap.window.short_circuited, 5);
    assert_eq!(snap.probe_in, Some(ms(1)));
    clock.advance(ms(1));
    let _ = poll_once(&mut call_now(&mut svc, ()));
    assert_eq!(calls.load(Ordering::SeqCst), 11, "the probe went out");
}

#[test]
fn a_successful_probe_closes_with_a_fresh_window() {
    let (breaker, clock, log) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    fail(&mut svc, 10);
    clock.advance(ms(5000));
    succeed(&mut svc, 1);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().window, Counts::default());
    assert_eq!(
        changes(&log),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed),
        ]
    );
    // A fresh window: 9 failures are below the volume again.
    fail(&mut svc, 9);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_failed_probe_reopens_for_another_sleep_window() {
    let (breaker, clock, log) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    fail(&mut svc, 10);
    clock.advance(ms(5000));
    fail(&mut svc, 1);
    assert_eq!(breaker.state(), State::Open);
    clock.advance(ms(4999));
    assert!(matches!(call(&mut svc, Ok(1)), Err(BreakerError::Open)));
    clock.advance(ms(1));
    succeed(&mut svc, 1);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        changes(&log),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed),
        ]
    );
}

#[test]
fn an_ignored_error_is_not_counted_and_an_ignored_probe_closes() {
    let (breaker, clock, _) = manual_breaker(&Settings::default());
    let mut svc = guarded_with(&breaker, grpc_like as crate::support::Classifier);
    let mut once = |r| match poll_once(&mut call_now(&mut svc, Script::Now(r))) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("ready at once"),
    };
    for _ in 0..50 {
        assert!(matches!(
            once(Err(BackendError::InvalidArgument)),
            Err(BreakerError::Inner(BackendError::InvalidArgument))
        ));
    }
    let snap = breaker.snapshot();
    assert_eq!(
        (snap.state, snap.window.ignored, snap.error_percent),
        (State::Closed, 50, 0.0)
    );
    for _ in 0..10 {
        let _ = once(Err(BackendError::Unavailable));
    }
    assert_eq!(breaker.state(), State::Open);
    clock.advance(ms(5000));
    let _ = once(Err(BackendError::InvalidArgument));
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the backend answered the probe"
    );
}

#[test]
fn timeouts_cut_the_call_off_and_count_as_failures() {
    let (breaker, clock, _) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    for i in 0..10 {
        let mut fut = call_now(&mut svc, Script::Never);
        assert!(poll_once(&mut fut).is_pending());
        clock.advance(ms(999));
        assert!(poll_once(&mut fut).is_pending(), "not yet at {i}");
        clock.advance(ms(1));
        assert!(matches!(
            poll_once(&mut fut),
            Poll::Ready(Err(BreakerError::Timeout))
        ));
    }
    let snap = breaker.snapshot();
    assert_eq!((snap.window.timeouts, snap.in_flight), (10, 0));
    assert_eq!(snap.state, State::Open);
}

#[test]
fn an_answer_ready_with_the_timer_wins() {
    let (breaker, clock, _) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut fut = call_now(&mut svc, Script::Later(rx));
    assert!(poll_once(&mut fut).is_pending());
    clock.advance(ms(1000));
    tx.send(Ok(5)).unwrap();
    assert!(matches!(poll_once(&mut fut), Poll::Ready(Ok(5))));
    assert_eq!(breaker.snapshot().window.successes, 1);
}

#[tokio::test]
async fn the_tokio_clock_times_calls_out_in_real_time() {
    let settings = Settings {
        timeout: ms(30),
        ..Settings::default()
    };
    let breaker = Breaker::new("real", &settings).unwrap();
    let started = tokio::time::Instant::now();
    let got = guarded(&breaker).oneshot(Script::Never).await;
    assert!(matches!(got, Err(BreakerError::Timeout)));
    assert!(started.elapsed() >= ms(30));
    assert_eq!(breaker.snapshot().window.timeouts, 1);
}

#[test]
fn the_window_forgets_old_buckets() {
    let (breaker, clock, _) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    fail(&mut svc, 5); // bucket [0 s, 1 s)
    clock.advance(ms(5500));
    fail(&mut svc, 4); // bucket [5 s, 6 s): 9 in the window
    assert_eq!(breaker.snapshot().window.failures, 9);
    clock.advance(ms(4500)); // 10 s: the first bucket is a window old
    assert_eq!(breaker.snapshot().window.failures, 4);
    fail(&mut svc, 5); // 9 again, not 14: still below the volume
    assert_eq!(breaker.state(), State::Closed);
    clock.advance(ms(10_000));
    assert_eq!(breaker.snapshot().window, Counts::default());
}

#[test]
fn an_abandoned_probe_lets_the_next_call_probe() {
    let (breaker, clock, _) = manual_breaker(&Settings::default());
    let mut svc = guarded(&breaker);
    fail(&mut svc, 10);
    clock.advance(ms(5000));
    let mut probe = call_now(&mut svc, Script::Never);
    assert!(poll_once(&mut probe).is_pending());
    assert!(matches!(call(&mut svc, Ok(1)), Err(BreakerError::Open)));
    drop(probe); // e.g. the HTTP client went away
    assert_eq!(breaker.state(), State::HalfOpen);
    succeed(&mut svc, 1);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn calls_let_out_before_the_breaker_closed_do_not_count_in_the_new_window() {
    let settings = Settings {
        max_concurrent_requests: 20,
        ..Settings::default()
    };
    let (breaker, clock, _) = manual_breaker(&settings);
    let mut svc = guarded(&breaker);
    let mut old = Vec::new();
    for _ in 0..5 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut fut = call_now(&mut svc, Script::Later(rx));
        assert!(poll_once(&mut fut).is_pending());
        old.push((tx, fut));
    }
    fail(&mut svc, 10);
    clock.advance(ms(5000));
    succeed(&mut svc, 1); // the probe: closed, fresh window
    for (tx, mut fut) in old {
        tx.send(Err(BackendError::Unavailable)).unwrap();
        assert!(poll_once(&mut fut).is_ready());
    }
    let snap = breaker.snapshot();
    assert_eq!((snap.window.failures, snap.in_flight), (0, 0));
}

/// A breaker whose backend waits at a gate: each call that reaches it is counted, then waits for
/// a permit.
fn gated(
    breaker: &Breaker,
) -> (
    BreakerService<
        impl tower::Service<(), Response = (), Error = BackendError, Future: Send>
        + Clone
        + Send
        + 'static,
        goex_breaker::OkIsSuccess,
    >,
    Arc<AtomicUsize>,
    Arc<Semaphore>,
) {
    let entered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (e, g) = (Arc::clone(&entered), Arc::clone(&gate));
    let backend = service_fn(move |_: ()| {
        let (e, g) = (Arc::clone(&e), Arc::clone(&g));
        async move {
            e.fetch_add(1, Ordering::SeqCst);
            let permit = g.acquire().await.map_err(|_| BackendError::Unavailable)?;
            permit.forget();
            Ok::<(), BackendError>(())
        }
    });
    (
        BreakerService::new(backend, breaker.clone(), goex_breaker::OkIsSuccess),
        entered,
        gate,
    )
}

/// Fires `n` calls at once from `n` tasks; their results arrive on the returned channel.
async fn fire<S>(
    svc: &S,
    n: usize,
) -> mpsc::UnboundedReceiver<Result<(), BreakerError<BackendError>>>
where
    S: tower::Service<(), Response = (), Error = BreakerError<BackendError>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let barrier = Arc::new(Barrier::new(n));
    for _ in 0..n {
        let (svc, tx, barrier) = (svc.clone(), tx.clone(), Arc::clone(&barrier));
        tokio::spawn(async move {
            barrier.wait().await;
            let _ = tx.send(svc.oneshot(()).await);
        });
    }
    rx
}

/// The next result, failing the test instead of hanging when none comes.
async fn next(
    results: &mut mpsc::UnboundedReceiver<Result<(), BreakerError<BackendError>>>,
) -> Result<(), BreakerError<BackendError>> {
    tokio::time::timeout(Duration::from_secs(5), results.recv())
        .await
        .expect("a result within 5 s")
        .expect("a task still sending")
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !cond() {
            tokio::time::sleep(ms(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_admits_exactly_one_probe_among_concurrent_callers() {
    let clock = ManualClock::new();
    let settings = Settings {
        max_concurrent_requests: 100,
        ..Settings::default()
    };
    let breaker = Breaker::builder("probe", &settings)
        .clock(clock.clone())
        .build()
        .unwrap();
    // Trip it with ten failures.
    let mut failing = guarded(&breaker);
    fail(&mut failing, 10);
    assert_eq!(breaker.state(), State::Open);
    clock.advance(ms(5000));

    let (svc, entered, gate) = gated(&breaker);
    let n = 64;
    let mut results = fire(&svc, n).await;
    for _ in 0..n - 1 {
        let got = next(&mut results).await;
        assert!(matches!(got, Err(BreakerError::Open)), "{got:?}");
    }
    wait_for("the probe to reach the backend", || {
        entered.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(breaker.state(), State::HalfOpen);
    let snap = breaker.snapshot();
    assert_eq!(
        (snap.in_flight, snap.window.short_circuited),
        (1, n as u64 - 1)
    );
    gate.add_permits(1);
    assert!(matches!(next(&mut results).await, Ok(())));
    assert_eq!(entered.load(Ordering::SeqCst), 1);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_eleventh_concurrent_call_is_rejected() {
    let (breaker, _clock, _) = manual_breaker(&Settings::default());
    let (svc, entered, gate) = gated(&breaker);
    let mut results = fire(&svc, 11).await;
    let first = next(&mut results).await;
    assert!(matches!(first, Err(BreakerError::Rejected)), "{first:?}");
    assert_eq!(breaker.snapshot().in_flight, 10);
    wait_for("ten calls to reach the backend", || {
        entered.load(Ordering::SeqCst) == 10
    })
    .await;
    gate.add_permits(10);
    for _ in 0..10 {
        assert!(matches!(next(&mut results).await, Ok(())));
    }
    let snap = breaker.snapshot();
    assert_eq!(
        (
            snap.in_flight,
            snap.window.successes,
            snap.window.rejected,
            snap.state
        ),
        (0, 10, 1, State::Closed)
    );
    // The slots are free again.
    let mut results = fire(&svc, 1).await;
    gate.add_permits(1);
    assert!(matches!(next(&mut results).await, Ok(())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_gets_exactly_max_concurrent_calls_through() {
    let settings = Settings {
        request_volume_threshold: 1000, // rejections are errors: keep it from tripping
        ..Settings::default()
    };
    let (breaker, _clock, _) = manual_breaker(&settings);
    let (svc, entered, gate) = gated(&breaker);
    let mut results = fire(&svc, 200).await;
    for _ in 0..190 {
        let got = next(&mut results).await;
        assert!(matches!(got, Err(BreakerError::Rejected)), "{got:?}");
    }
    wait_for("ten calls to reach the backend", || {
        entered.load(Ordering::SeqCst) == 10
    })
    .await;
    gate.add_permits(10);
    for _ in 0..10 {
        assert!(matches!(next(&mut results).await, Ok(())));
    }
    assert_eq!(entered.load(Ordering::SeqCst), 10);
    let snap = breaker.snapshot();
    assert_eq!(
        (snap.window.successes, snap.window.rejected, snap.in_flight),
        (10, 190, 0)
    );
}

/// Issue 22: a flood of callers over `max_concurrent_requests` kept the breaker open for
/// everyone, because rejections count as the backend's errors (as Hystrix counts them). With
/// `count_rejections: false` they are this process shedding load: 190 rejected out of 200 at
/// once, the backend answering all it got, and the breaker stays closed (with them counted, it
/// trips).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejections_left_uncounted_do_not_trip_the_breaker() {
    for count_rejections in [false, true] {
        let settings = Settings {
            count_rejections,
            ..Settings::default()
        };
        let (breaker, _clock, _) = manual_breaker(&settings);
        let (svc, entered, gate) = gated(&breaker);
        let mut results = fire(&svc, 200).await;
        let mut refused = 0;
        for _ in 0..190 {
            match next(&mut results).await {
                Err(BreakerError::Rejected) => refused += 1,
                // Counted, the rejections trip it: later callers find it open.
                Err(BreakerError::Open) if count_rejections => {}
                other => panic!("{other:?}"),
            }
        }
        wait_for("ten calls to reach the backend", || {
            entered.load(Ordering::SeqCst) == 10
        })
        .await;
        gate.add_permits(10);
        for _ in 0..10 {
            assert!(matches!(next(&mut results).await, Ok(())));
        }
        if !count_rejections {
            assert_eq!(refused, 190);
            assert_eq!(breaker.snapshot().window.rejected, 190, "still shown");
        }
        let expected = if count_rejections {
            State::Open
        } else {
            State::Closed
        };
        assert_eq!(
            breaker.state(),
            expected,
            "count_rejections {count_rejections}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_under_concurrency() {
    let settings = Settings {
        max_concurrent_requests: 1000,
        request_volume_threshold: 1_000_000,
        ..Settings::default()
    };
    let (breaker, _clock, _) = manual_breaker(&settings);
    let svc = guarded_with(&breaker, grpc_like as crate::support::Classifier);
    let tasks = 16;
    let per_task = 250;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let svc = svc.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let result = match (t + i) % 3 {
                    0 => Ok(1),
                    1 => Err(BackendError::Unavailable),
                    _ => Err(BackendError::InvalidArgument),
                };
                let _ = svc.clone().oneshot(Script::Now(result)).await;
                tokio::task::yield_now().await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = (tasks * per_task) as u64;
    let third = |r: usize| -> u64 {
        (0..tasks)
            .flat_map(|t| (0..per_task).map(move |i| (t + i) % 3))
            .filter(|m| *m == r)
            .count() as u64
    };
    let w = breaker.snapshot().window;
    assert_eq!(
        (w.successes, w.failures, w.ignored),
        (third(0), third(1), third(2))
    );
    assert_eq!(w.successes + w.failures + w.ignored, total);
    assert_eq!(breaker.snapshot().in_flight, 0);
}

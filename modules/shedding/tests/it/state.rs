//! The state machine on hand-built histories: go-zero's defaults (threshold 90 %, 50 × 100 ms
//! window, 1 s cool-off, factor floor 0.1) and the response-time floor over 60 s, a
//! [`ManualCpu`] and a [`ManualClock`].

use std::time::Duration;

use goex_shedding::{Admitted, Dropped, ManualClock, ManualCpu, Settings, SettingsError, Shedder};

const MS: Duration = Duration::from_millis(1);

struct Rig {
    shedder: Shedder,
    cpu: ManualCpu,
    clock: ManualClock,
}

fn rig_with(settings: Settings) -> Result<Rig, SettingsError> {
    let (cpu, clock) = (ManualCpu::new(0.5), ManualClock::new());
    let shedder = Shedder::with_sources(&settings, cpu.clone(), clock.clone())?;
    Ok(Rig {
        shedder,
        cpu,
        clock,
    })
}

fn rig() -> Rig {
    rig_with(Settings::default()).unwrap()
}

impl Rig {
    /// For `buckets` buckets of 100 ms: `passes` requests admitted at the bucket's start and
    /// passed `rt_ms` later. The capacity becomes `passes × rt_ms / 100` (Little's law: the
    /// best pass count × 10 buckets per second × the lowest response time).
    fn warm(&self, passes: usize, rt_ms: u32, buckets: usize) {
        for _ in 0..buckets {
            let admitted: Vec<Admitted> = (0..passes).map(|_| self.admit()).collect();
            self.clock.advance(rt_ms * MS);
            admitted.into_iter().for_each(Admitted::pass);
            self.clock.advance((100 - rt_ms) * MS);
        }
    }

    fn admit(&self) -> Admitted {
        self.shedder.allow().expect("admitted")
    }

    /// `n` requests admitted and kept in flight.
    fn hold(&self, n: usize) -> Vec<Admitted> {
        (0..n).map(|_| self.admit()).collect()
    }

    /// Brings the smoothed in-flight count near the current count: requests that end at once
    /// (failures, so the window learns nothing from them).
    fn settle(&self) {
        for _ in 0..100 {
            self.admit().fail();
        }
    }

    fn capacity(&self) -> f64 {
        self.shedder.snapshot().unwrap().capacity
    }

    fn limit(&self) -> f64 {
        self.shedder.snapshot().unwrap().limit()
    }
}

#[test]
fn with_no_history_the_capacity_is_ten() {
    // One pass per bucket × 10 buckets per second × 1 s.
    assert_eq!(rig().capacity(), 10.0);
}

#[test]
fn the_capacity_is_littles_law_over_the_closed_buckets() {
    let r = rig();
    r.warm(20, 50, 3);
    assert_eq!(r.capacity(), 10.0);
    let r = rig();
    r.warm(8, 30, 3);
    assert!((r.capacity() - 2.4).abs() < 1e-9, "{}", r.capacity());
    // The best count and the lowest response time may come from different buckets.
    r.warm(2, 20, 1); // best count 8 (earlier), lowest response time 20 ms (this bucket)
    assert!((r.capacity() - 1.6).abs() < 1e-9, "{}", r.capacity());
    // Never under one request in flight.
    r.warm(1, 1, 1);
    assert_eq!(r.capacity(), 1.0);
}

#[test]
fn the_window_forgets_after_five_seconds() {
    let r = rig();
    r.warm(8, 30, 5); // buckets 0-4, passes at 30 ms into each
    assert!((r.capacity() - 2.4).abs() < 1e-9, "{}", r.capacity());
    r.clock.advance(4_400 * MS); // 4.9 s: bucket 49 is the current one
    assert!((r.capacity() - 2.4).abs() < 1e-9, "{}", r.capacity());
    r.clock.advance(400 * MS); // 5.3 s: buckets 0-3 forgotten, bucket 4 still in
    assert!((r.capacity() - 2.4).abs() < 1e-9, "{}", r.capacity());
    r.clock.advance(100 * MS); // 5.4 s: all forgotten
    assert_eq!(r.capacity(), 10.0, "back to the no-history default");
    let s = r.shedder.snapshot().unwrap();
    assert_eq!((s.in_flight, s.hot), (0, false));
}

/// Light load (20 passes of 10 ms per bucket for 1 s), then a long overload in which the same
/// throughput answers each request 80 ms late because of the queue in front of it.
fn light_then_queueing(r: &Rig, overload_buckets: usize) {
    r.warm(20, 10, 10);
    assert!((r.capacity() - 2.0).abs() < 1e-9, "{}", r.capacity());
    r.warm(20, 80, overload_buckets);
}

#[test]
fn queueing_during_a_long_overload_does_not_prop_the_capacity_up() {
    let r = rig();
    light_then_queueing(&r, 100); // 10 s: the window holds only the queued buckets
    assert!(
        (r.capacity() - 2.0).abs() < 1e-9,
        "the floor remembers 10 ms: {}",
        r.capacity()
    );
    let _held = r.hold(6);
    r.settle();
    r.cpu.set(0.95); // limit 2 × 0.5 = 1
    assert!(r.shedder.allow().is_err());

    // go-zero's estimate follows the queueing: 20 × 80 ms / 100 ms = 16, limit 8.
    let r = rig_with(Settings {
        rt_floor_window: Duration::ZERO,
        ..Settings::default()
    })
    .unwrap();
    light_then_queueing(&r, 100);
    assert!((r.capacity() - 16.0).abs() < 1e-9, "{}", r.capacity());
    let _held = r.hold(6);
    r.settle();
    r.cpu.set(0.95);
    assert!(
        r.shedder.allow().is_ok(),
        "6 in flight, under the limit of 8"
    );
}

#[test]
fn the_floor_ages_out_after_its_horizon() {
    // The fast buckets started in the floor's first 5 s slot; it leaves the 60 s horizon when
    // the clock reaches 60 s, and a service that stays slower is then estimated as it is.
    let r = rig();
    light_then_queueing(&r, 589); // to 59.9 s
    assert!((r.capacity() - 2.0).abs() < 1e-9, "{}", r.capacity());
    r.warm(20, 80, 1); // 60 s
    assert!((r.capacity() - 16.0).abs() < 1e-9, "{}", r.capacity());
}

#[test]
fn the_floor_never_stands_in_for_an_empty_window() {
    let r = rig();
    r.warm(20, 10, 5);
    r.clock.advance(5_400 * MS); // the window is empty, the floor still holds 10 ms
    assert_eq!(r.capacity(), 10.0, "the no-history default");
}

#[test]
fn over_the_threshold_with_in_flight_over_capacity_requests_are_dropped() {
    let r = rig();
    r.warm(20, 50, 5); // capacity 10
    let _held = r.hold(30);
    r.settle();
    r.cpu.set(0.95); // factor (1 - 0.95) / (1 - 0.9) = 0.5: limit 5
    assert!((r.limit() - 5.0).abs() < 1e-9, "{}", r.limit());
    assert_eq!(r.shedder.allow().unwrap_err(), Dropped);
    let s = r.shedder.snapshot().unwrap();
    assert!(s.hot);
    assert_eq!(s.in_flight, 30, "a dropped request is not in flight");
}

#[test]
fn at_half_cpu_nothing_is_dropped_however_many_are_in_flight() {
    let r = rig();
    r.warm(20, 50, 5);
    let _held = r.hold(30);
    r.settle();
    r.cpu.set(0.5);
    let more = r.hold(500);
    assert_eq!(r.shedder.snapshot().unwrap().in_flight, 530);
    drop(more);
    r.cpu.set(0.899);
    r.settle();
}

#[test]
fn the_cool_off_keeps_dropping_for_one_second_after_a_drop_then_stops() {
    let r = rig();
    r.warm(20, 50, 5);
    let _held = r.hold(30);
    r.settle();
    r.cpu.set(0.95);
    assert!(r.shedder.allow().is_err());
    // The CPU falls under the threshold: with in-flight still over capacity (factor 1 now:
    // limit 10), the cool-off keeps dropping, each drop renewing it.
    r.cpu.set(0.5);
    r.clock.advance(999 * MS);
    assert!(r.shedder.snapshot().unwrap().hot);
    assert!(
        r.shedder.allow().is_err(),
        "still hot 999 ms after the drop"
    );
    r.clock.advance(999 * MS);
    assert!(
        r.shedder.allow().is_err(),
        "the drop at 999 ms renewed the cool-off"
    );
    r.clock.advance(1000 * MS);
    assert!(!r.shedder.snapshot().unwrap().hot);
    let _more = r.hold(100);
}

#[test]
fn the_cool_off_only_drops_over_capacity() {
    let r = rig();
    r.warm(20, 50, 5);
    let held = r.hold(30);
    r.settle();
    r.cpu.set(0.95);
    assert!(r.shedder.allow().is_err());
    r.cpu.set(0.5);
    drop(held); // in flight 0, under the limit of 10 while hot
    r.settle();
    assert!(r.shedder.snapshot().unwrap().hot);
    let _more = r.hold(10);
}

#[test]
fn the_factor_never_falls_under_its_floor() {
    let factor = |cpu: f64, min_factor: f64| {
        let r = rig_with(Settings {
            min_factor,
            ..Settings::default()
        })
        .unwrap();
        r.cpu.set(cpu);
        r.shedder.snapshot().unwrap().factor
    };
    assert_eq!(factor(0.5, 0.1), 1.0);
    assert_eq!(factor(0.9, 0.1), 1.0);
    assert!((factor(0.95, 0.1) - 0.5).abs() < 1e-9);
    assert!((factor(0.99, 0.1) - 0.1).abs() < 1e-9);
    assert_eq!(factor(1.0, 0.1), 0.1);
    assert_eq!(factor(1.0, 0.25), 0.25);

    // At 100 % CPU the limit is a tenth of the capacity of 10: one request in flight.
    for (held, dropped) in [(1, false), (2, true)] {
        let r = rig();
        r.warm(20, 50, 5);
        let _held = r.hold(held);
        r.settle();
        r.cpu.set(1.0);
        assert_eq!(r.shedder.allow().is_err(), dropped, "{held} in flight");
    }
}

#[test]
fn in_flight_under_capacity_is_never_dropped() {
    let r = rig();
    r.warm(20, 50, 5);
    let _held = r.hold(5); // the limit at 95 % is 5: not exceeded
    r.settle();
    r.cpu.set(0.95);
    r.settle(); // 100 more admissions with 5 in flight: none dropped
    let r = rig();
    r.warm(20, 50, 5);
    r.cpu.set(1.0); // limit 1
    let _held = r.admit(); // one in flight: never over 1
    for _ in 0..200 {
        r.admit().fail();
    }
}

#[test]
fn both_the_current_and_the_smoothed_counts_must_exceed_the_limit() {
    let r = rig();
    r.warm(20, 50, 5);
    r.settle(); // smoothed count near 0
    // Under the threshold: 11 admitted at once, the smoothed count rising with each
    // admission towards the current count (0.47 → 4.97).
    let _burst = r.hold(11);
    let s = r.shedder.snapshot().unwrap();
    assert_eq!(s.in_flight, 11);
    assert!((4.0..5.0).contains(&s.avg_in_flight), "{}", s.avg_in_flight);
    r.cpu.set(0.95); // limit 5: the count is over it, the smoothed count not yet
    let twelfth = r.shedder.allow();
    assert!(twelfth.is_ok(), "a sudden burst alone is not shed");
    assert!(
        r.shedder.snapshot().unwrap().avg_in_flight > 5.0,
        "that admission moved the smoothed count over the limit"
    );
    assert_eq!(
        r.shedder.allow().unwrap_err(),
        Dropped,
        "a burst is shed once the smoothed count has caught up"
    );
}

#[test]
fn a_dropped_admission_counts_as_a_failure() {
    let r = rig();
    r.warm(20, 50, 5);
    let admitted = r.admit();
    assert_eq!(r.shedder.snapshot().unwrap().in_flight, 1);
    r.clock.advance(100 * MS);
    drop(admitted);
    r.clock.advance(100 * MS);
    let s = r.shedder.snapshot().unwrap();
    assert_eq!((s.in_flight, s.capacity), (0, 10.0), "no pass recorded");
}

#[test]
fn disabled_admits_everything_and_counts_nothing() {
    let settings = Settings {
        enabled: false,
        ..Settings::default()
    };
    let r = rig_with(settings.clone()).unwrap();
    r.cpu.set(1.0);
    assert!(!r.shedder.is_enabled());
    let _held = r.hold(10_000);
    assert_eq!(r.shedder.snapshot(), None);
    let shedder = Shedder::new(&settings).unwrap();
    assert!(!shedder.is_enabled() && shedder.allow().is_ok());
}

#[test]
fn bad_settings_are_refused() {
    let bad = Settings {
        cpu_threshold: 1.0,
        ..Settings::default()
    };
    assert_eq!(
        rig_with(bad.clone()).err().map(|e| e.key),
        Some("cpu_threshold")
    );
    assert!(Shedder::new(&bad).is_err());
}

#[test]
fn the_production_shedder_starts_on_this_process() {
    let shedder = Shedder::new(&Settings::default()).unwrap();
    let admitted = shedder.allow().unwrap();
    admitted.pass();
    let s = shedder.snapshot().unwrap();
    assert!((0.0..=1.0).contains(&s.cpu));
    assert_eq!(s.in_flight, 0);
}

#[test]
fn the_scaled_limit_never_falls_under_one_request() {
    // A capacity of 2 (20 passes of 10 ms per bucket) at 100 % CPU: 2 × 0.1 = 0.2, held at 1.
    let r = rig();
    r.warm(20, 10, 5);
    r.cpu.set(1.0);
    assert!((r.capacity() - 2.0).abs() < 1e-9, "{}", r.capacity());
    assert_eq!(r.limit(), 1.0);
    for (held, dropped) in [(1, false), (2, true)] {
        let r = rig();
        r.warm(20, 10, 5);
        let _held = r.hold(held);
        r.settle();
        r.cpu.set(1.0);
        assert_eq!(r.shedder.allow().is_err(), dropped, "{held} in flight");
    }
}

#[test]
fn min_limit_sets_the_floor_of_the_scaled_limit() {
    // The same capacity of 2 at 100 % CPU (0.2 scaled), with the floor at 2, then at 0.
    let floor = |min_limit: f64| {
        rig_with(Settings {
            min_limit,
            ..Settings::default()
        })
        .unwrap()
    };
    let r = floor(2.0);
    r.warm(20, 10, 5);
    r.cpu.set(1.0);
    assert_eq!(r.limit(), 2.0);
    for (held, dropped) in [(2, false), (3, true)] {
        let r = floor(2.0);
        r.warm(20, 10, 5);
        let _held = r.hold(held);
        r.settle();
        r.cpu.set(1.0);
        assert_eq!(r.shedder.allow().is_err(), dropped, "{held} in flight");
    }
    // go-zero's rule: 0.2, so one request in flight is over it.
    let r = floor(0.0);
    r.warm(20, 10, 5);
    let _held = r.hold(1);
    r.settle();
    r.cpu.set(1.0);
    assert!((r.limit() - 0.2).abs() < 1e-9, "{}", r.limit());
    assert!(r.shedder.allow().is_err());
}

mod timed {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    /// A request's work: pending until woken through the waker it was last polled with.
    #[derive(Default)]
    struct Parked {
        waker: Arc<Mutex<Option<Waker>>>,
        ready: bool,
    }

    impl Future for Parked {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.ready {
                return Poll::Ready(());
            }
            self.ready = true;
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// The task polling the request: counts its wakes.
    #[derive(Default)]
    struct Task(Mutex<u32>);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            *self.0.lock().unwrap() += 1;
        }
    }

    /// `n` requests admitted at once: `before_first_poll` until their first poll, then parked
    /// `elsewhere` (a database), then `queued` between their wake and the poll that ends them.
    /// Returns the tasks that polled them.
    fn serve(
        r: &Rig,
        n: usize,
        [before_first_poll, elsewhere, queued]: [Duration; 3],
        timed: bool,
    ) -> Vec<Arc<Task>> {
        let mut requests: Vec<(Admitted, Pin<Box<Parked>>, Arc<Task>)> = (0..n)
            .map(|_| (r.admit(), Box::pin(Parked::default()), Arc::default()))
            .collect();
        let poll = |(admitted, work, task): &mut (Admitted, Pin<Box<Parked>>, Arc<Task>)| {
            let waker = Waker::from(task.clone());
            let mut cx = Context::from_waker(&waker);
            if timed {
                admitted.poll_timed(work.as_mut(), &mut cx)
            } else {
                work.as_mut().poll(&mut cx)
            }
        };
        r.clock.advance(before_first_poll);
        assert!(requests.iter_mut().all(|r| poll(r).is_pending()));
        r.clock.advance(elsewhere);
        for (_, work, _) in &requests {
            work.waker.lock().unwrap().take().expect("parked").wake();
        }
        r.clock.advance(queued);
        assert!(requests.iter_mut().all(|r| poll(r).is_ready()));
        requests
            .into_iter()
            .map(|(admitted, _, task)| {
                admitted.pass();
                task
            })
            .collect()
    }

    /// The response time learned from 20 such requests in each of 5 buckets, read back from
    /// the capacity (20 × rt / 100 ms).
    fn learned_rt_ms(waits_ms: [u32; 3], timed: bool) -> f64 {
        let r = rig();
        let spent: u32 = waits_ms.iter().sum();
        for _ in 0..5 {
            for task in serve(&r, 20, waits_ms.map(|ms| ms * MS), timed) {
                assert_eq!(
                    *task.0.lock().unwrap(),
                    1,
                    "the polling task was woken once"
                );
            }
            r.clock.advance((100 - spent) * MS);
        }
        r.capacity() / 20.0 * 100.0
    }

    #[test]
    fn waits_to_run_are_left_out_of_the_response_time_and_waits_elsewhere_are_not() {
        // 2 ms before the first poll and 5 ms after the wake are the run queue; the 10 ms
        // parked are the request's own (its database).
        let rt = learned_rt_ms([2, 10, 5], true);
        assert!((rt - 10.0).abs() < 1e-6, "{rt}");
        // Polled as it is, the whole wall time counts, as in go-zero.
        let rt = learned_rt_ms([2, 10, 5], false);
        assert!((rt - 17.0).abs() < 1e-6, "{rt}");
    }

    #[test]
    fn a_wake_after_the_request_ended_is_harmless() {
        let r = rig();
        let task = Arc::new(Task::default());
        let waker = Waker::from(task.clone());
        let mut admitted = r.admit();
        let mut work = Box::pin(Parked::default());
        let parked = work.waker.clone();
        assert!(
            admitted
                .poll_timed(work.as_mut(), &mut Context::from_waker(&waker))
                .is_pending()
        );
        admitted.pass();
        parked.lock().unwrap().take().unwrap().wake();
        assert_eq!(*task.0.lock().unwrap(), 1);
        assert_eq!(r.shedder.snapshot().unwrap().in_flight, 0);
    }

    #[test]
    fn a_disabled_shedder_polls_the_future_as_it_is() {
        let shedder = Shedder::disabled();
        let mut admitted = shedder.allow().unwrap();
        let mut work = Box::pin(Parked::default());
        let task = Arc::new(Task::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(admitted.poll_timed(work.as_mut(), &mut cx).is_pending());
        let stored = work.waker.lock().unwrap().clone().unwrap();
        assert!(stored.will_wake(&waker), "the caller's own waker");
        admitted.pass();
    }
}

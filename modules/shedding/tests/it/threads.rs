//! One shedder shared by threads, as the HTTP app's workers share it: the counts stay exact.

use std::sync::Barrier;
use std::time::Duration;

use goex_shedding::{ManualClock, ManualCpu, Settings, Shedder};

#[test]
fn threads_admitting_and_ending_at_once_leave_nothing_in_flight() {
    let (cpu, clock) = (ManualCpu::new(0.5), ManualClock::new());
    let shedder = Shedder::with_sources(&Settings::default(), cpu.clone(), clock.clone()).unwrap();
    let barrier = Barrier::new(4);
    let admitted_total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let (shedder, cpu, clock, barrier) = (&shedder, &cpu, &clock, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let mut admitted = 0;
                    for round in 0..5_000u32 {
                        if worker == 0 && round % 100 == 0 {
                            clock.advance(Duration::from_millis(10));
                            cpu.set(if round % 1000 < 500 { 0.5 } else { 1.0 });
                        }
                        let held: Vec<_> = (0..3).filter_map(|_| shedder.allow().ok()).collect();
                        admitted += held.len();
                        for (i, a) in held.into_iter().enumerate() {
                            if i % 2 == 0 { a.pass() } else { a.fail() }
                        }
                    }
                    admitted
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert!(admitted_total > 0);
    let s = shedder.snapshot().unwrap();
    assert_eq!(s.in_flight, 0);
    assert!(
        s.avg_in_flight >= 0.0 && s.avg_in_flight < 12.0,
        "{}",
        s.avg_in_flight
    );
}

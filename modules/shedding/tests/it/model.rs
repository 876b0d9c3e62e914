//! A property test: the shedder against a reference model that recomputes everything from the
//! full history on each decision (every pass kept with its time, the window's buckets and the
//! response-time floor's buckets rebuilt from them), over random sequences of clock moves, CPU
//! readings, admissions and outcomes, under random settings. (Measured when written: about 7,000 drops over the 256 cases, so the
//! dropping paths are exercised, not only admissions.)

use std::time::Duration;

use goex_shedding::{
    Admitted, DEFAULT_MIN_RT, IN_FLIGHT_BETA, ManualClock, ManualCpu, RT_FLOOR_SLOTS, Settings,
    Shedder,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Cpu(f64),
    Allow,
    Pass(usize),
    Fail(usize),
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u64..300).prop_map(Op::Advance),
        1 => prop_oneof![(0u32..=100).prop_map(|p| p as f64 / 100.0), Just(1.0), Just(0.95)]
            .prop_map(Op::Cpu),
        6 => Just(Op::Allow),
        2 => any::<usize>().prop_map(Op::Pass),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Drop),
    ]
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        (1u32..=8, 10u64..=200, 0u64..=1500, 50u32..=95, 5u32..=100),
        // The floor's horizon: off, or 1 to 20 windows plus up to 999 ms.
        prop_oneof![Just(None), (1u32..=20, 0u64..1000).prop_map(Some)],
        // The limit's floor, in quarters: 0 (go-zero's rule) to 4.
        0u32..=16,
    )
        .prop_map(
            |((buckets, width_ms, cool_off_ms, threshold, min_factor), floor, min_limit)| {
                let window = Duration::from_millis(width_ms) * buckets;
                Settings {
                    buckets,
                    window,
                    cool_off: Duration::from_millis(cool_off_ms),
                    cpu_threshold: threshold as f64 / 100.0,
                    min_factor: min_factor as f64 / 100.0,
                    rt_floor_window: floor.map_or(Duration::ZERO, |(windows, extra_ms)| {
                        window * windows + Duration::from_millis(extra_ms)
                    }),
                    min_limit: f64::from(min_limit) / 4.0,
                    ..Settings::default()
                }
            },
        )
}

/// go-zero's algorithm, with the response-time floor, as plainly as it can be written.
struct Model {
    settings: Settings,
    width: u64,
    /// Every pass: (clock time it was recorded, response time), in nanoseconds.
    passes: Vec<(u64, u64)>,
    in_flight: u64,
    avg: f64,
    last_drop: Option<u64>,
}

impl Model {
    fn new(settings: Settings) -> Self {
        let width = settings.bucket_width().as_nanos() as u64;
        Model {
            settings,
            width,
            passes: Vec::new(),
            in_flight: 0,
            avg: 0.0,
            last_drop: None,
        }
    }

    /// A closed bucket's pass count and average response time; `None` without a pass.
    fn bucket(&self, bucket: u64) -> Option<(u64, f64)> {
        let (count, sum) = self
            .passes
            .iter()
            .filter(|(at, _)| at / self.width == bucket)
            .fold((0u64, 0u64), |(n, s), (_, rt)| (n + 1, s + rt));
        (count > 0).then(|| (count, sum as f64 / count as f64))
    }

    /// The floor: the lowest average of every closed bucket that started in one of the last
    /// `RT_FLOOR_SLOTS` slots of `rt_floor_window / RT_FLOOR_SLOTS` (the current one included).
    fn rt_floor(&self, now: u64) -> Option<f64> {
        let slot = self.settings.rt_floor_window.as_nanos() as u64 / RT_FLOOR_SLOTS;
        if slot == 0 {
            return None;
        }
        let current = now / self.width;
        let now_slot = current * self.width / slot;
        (0..current)
            .filter(|b| now_slot - b * self.width / slot < RT_FLOOR_SLOTS)
            .filter_map(|b| self.bucket(b).map(|(_, avg)| avg))
            .reduce(f64::min)
    }

    fn capacity(&self, now: u64) -> f64 {
        let current = now / self.width;
        let oldest = current.saturating_sub(u64::from(self.settings.buckets) - 1);
        let mut max_pass = 0u64;
        let mut min_rt: Option<f64> = None;
        for bucket in oldest..current {
            let Some((count, avg)) = self.bucket(bucket) else {
                continue;
            };
            max_pass = max_pass.max(count);
            min_rt = Some(min_rt.map_or(avg, |m: f64| m.min(avg)));
        }
        // The floor lowers the window's response time; it never stands in for an empty window.
        let min_rt = match (min_rt, self.rt_floor(now)) {
            (Some(window), Some(floor)) => window.min(floor),
            (Some(window), None) => window,
            (None, _) => DEFAULT_MIN_RT.as_nanos() as f64,
        };
        (max_pass.max(1) as f64 * min_rt / self.width as f64).max(1.0)
    }

    fn factor(&self, cpu: f64) -> f64 {
        let t = self.settings.cpu_threshold;
        let f = (1.0 - cpu) / (1.0 - t);
        f.max(self.settings.min_factor).min(1.0)
    }

    fn hot(&self, now: u64) -> bool {
        self.last_drop
            .is_some_and(|at| now - at < self.settings.cool_off.as_nanos() as u64)
    }

    fn allow(&mut self, now: u64, cpu: f64) -> bool {
        if cpu >= self.settings.cpu_threshold || self.hot(now) {
            // Never under `min_limit` requests in flight.
            let limit = (self.capacity(now) * self.factor(cpu)).max(self.settings.min_limit);
            if self.avg > limit && self.in_flight as f64 > limit {
                self.last_drop = Some(now);
                return false;
            }
        }
        self.in_flight += 1;
        self.smooth();
        true
    }

    /// The smoothed count moves at each admission and each end.
    fn smooth(&mut self) {
        self.avg = self.avg * IN_FLIGHT_BETA + self.in_flight as f64 * (1.0 - IN_FLIGHT_BETA);
    }

    fn end(&mut self, now: u64, pass_started: Option<u64>) {
        self.in_flight -= 1;
        self.smooth();
        if let Some(start) = pass_started {
            self.passes.push((now, now - start));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_shedder_decides_as_the_model(
        settings in settings(),
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        let (cpu, clock) = (ManualCpu::new(0.0), ManualClock::new());
        let shedder = Shedder::with_sources(&settings, cpu.clone(), clock.clone()).unwrap();
        let mut model = Model::new(settings);
        let mut reading = 0.0;
        // Admitted requests with their admission time, for the model's response times.
        let mut open: Vec<(Admitted, u64)> = Vec::new();
        for op in ops {
            let now = clock.now_nanos();
            match op {
                Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                Op::Cpu(value) => {
                    reading = value;
                    cpu.set(value);
                }
                Op::Allow => {
                    let admitted = shedder.allow();
                    prop_assert_eq!(admitted.is_ok(), model.allow(now, reading), "at {}", now);
                    if let Ok(a) = admitted {
                        open.push((a, now));
                    }
                }
                Op::Pass(i) | Op::Fail(i) | Op::Drop(i) if !open.is_empty() => {
                    let (admitted, start) = open.swap_remove(i % open.len());
                    match op {
                        Op::Pass(_) => {
                            admitted.pass();
                            model.end(now, Some(start));
                        }
                        Op::Fail(_) => {
                            admitted.fail();
                            model.end(now, None);
                        }
                        _ => {
                            drop(admitted);
                            model.end(now, None);
                        }
                    }
                }
                _ => {}
            }
            let now = clock.now_nanos();
            let s = shedder.snapshot().unwrap();
            prop_assert_eq!(s.in_flight, model.in_flight);
            prop_assert_eq!(s.avg_in_flight.to_bits(), model.avg.to_bits());
            prop_assert_eq!(s.capacity.to_bits(), model.capacity(now).to_bits());
            prop_assert_eq!(s.factor.to_bits(), model.factor(reading).to_bits());
            prop_assert_eq!(s.hot, model.hot(now));
        }
    }
}

trait NowNanos {
    fn now_nanos(&self) -> u64;
}

impl NowNanos for ManualClock {
    fn now_nanos(&self) -> u64 {
        use goex_shedding::Clock;
        self.now().as_nanos() as u64
    }
}

//! The CPU reading the shedder decides on: a [`CpuSource`], in production [`ProcessCpu`] (this
//! process's CPU time over the CPUs it may use, smoothed), in tests [`ManualCpu`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::cgroup::CpuLimit;
use crate::settings::Settings;

/// A CPU reading from 0 (idle) to 1 (this process uses all the CPU it may have).
///
/// Read on every request while the shedder decides, so it must be a cheap load, not a
/// measurement.
pub trait CpuSource: Send + Sync + 'static {
    /// The current, smoothed reading, from 0 to 1.
    fn usage(&self) -> f64;
}

/// A reading set by hand, for tests. Clones share one value.
#[derive(Clone, Debug, Default)]
pub struct ManualCpu {
    bits: Arc<AtomicU64>,
}

impl ManualCpu {
    /// A reading of `usage` (0 to 1).
    pub fn new(usage: f64) -> Self {
        let cpu = ManualCpu::default();
        cpu.set(usage);
        cpu
    }

    /// Sets the reading.
    pub fn set(&self, usage: f64) {
        self.bits.store(usage.to_bits(), Ordering::Relaxed);
    }
}

impl CpuSource for ManualCpu {
    fn usage(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// The smoothing of [`ProcessCpu`], a pure function of the samples it is given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuMeter {
    beta: f64,
    reading: f64,
}

impl CpuMeter {
    /// A meter at 0 (go-zero starts there too: the first seconds read low).
    pub fn new(beta: f64) -> Self {
        CpuMeter { beta, reading: 0.0 }
    }

    /// Takes one sample, `cpu_time` of CPU used over `wall` of elapsed time by a process that
    /// may use `cpus` CPUs, and returns the new reading:
    /// `reading * beta + min(cpu_time / (wall * cpus), 1) * (1 - beta)`. A sample over no time
    /// (or no CPUs) leaves the reading as it was.
    pub fn sample(&mut self, cpu_time: Duration, wall: Duration, cpus: f64) -> f64 {
        let capacity = wall.as_secs_f64() * cpus;
        if capacity > 0.0 {
            let usage = (cpu_time.as_secs_f64() / capacity).clamp(0.0, 1.0);
            self.reading = self.reading * self.beta + usage * (1.0 - self.beta);
        }
        self.reading
    }

    /// The last reading.
    pub fn reading(&self) -> f64 {
        self.reading
    }
}

/// This process's CPU use, from 0 to 1 of what it may use: the CPU time it spent (user +
/// system, `getrusage(RUSAGE_SELF)`, microsecond resolution) over each `sample_interval`,
/// divided by [`CpuLimit::cpus`] (its affinity mask, capped by its cgroup quota), smoothed by
/// [`CpuMeter`] with `ema_beta`.
///
/// A machine-wide reading (`/proc/stat`) would never reach the threshold for a server pinned to
/// one core of two; this one reaches 1 when the process uses all it may.
///
/// **Sampling runs on its own thread** (`goex-cpu-sampler`), started by [`ProcessCpu::start`]
/// and stopped when the last clone is dropped. A thread rather than a tokio task because the
/// reading matters most when the runtimes are saturated, when a task would be polled late, and
/// because one reading serves the HTTP app's actix runtimes and the gRPC app's tokio runtime
/// alike. Each sample measures the wall time since the previous one, so a late wake-up skews
/// nothing. The limit is read once at start.
#[derive(Clone, Debug)]
pub struct ProcessCpu {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    reading: Arc<AtomicU64>,
    limit: CpuLimit,
    /// Dropped with the last clone: the sampler's `recv_timeout` then sees the channel closed.
    _stop: Sender<()>,
}

/// The name of the thread [`ProcessCpu::start`] samples on.
pub const SAMPLER_THREAD: &str = "goex-cpu-sampler";

/// The CPU sampler threads running in this process now (from `/proc/self/task`; 0 where it
/// cannot be read): each [`ProcessCpu`] holds one until its last clone is dropped, so a caller
/// can check that the samplers of stopped apps have ended.
pub fn running_samplers() -> usize {
    // `comm` keeps the first 15 bytes of a thread's name.
    let comm = &SAMPLER_THREAD[..SAMPLER_THREAD.len().min(15)];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.trim() == comm)
        })
        .count()
}

impl ProcessCpu {
    /// Discovers the CPU limit and starts the sampler thread.
    ///
    /// # Errors
    /// The process's CPU time cannot be read (`getrusage`), or the thread cannot be spawned.
    pub fn start(settings: &Settings) -> std::io::Result<ProcessCpu> {
        let limit = CpuLimit::discover();
        let mut previous = process_cpu_time()?;
        let reading = Arc::new(AtomicU64::new(0f64.to_bits()));
        let (stop, stopped) = mpsc::channel::<()>();
        let (interval, cpus) = (settings.sample_interval, limit.cpus());
        let mut meter = CpuMeter::new(settings.ema_beta);
        let published = reading.clone();
        std::thread::Builder::new()
            .name(SAMPLER_THREAD.into())
            .spawn(move || {
                let mut since = Instant::now();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Ok(now_cpu) = process_cpu_time() else {
                        continue;
                    };
                    let now = Instant::now();
                    let value = meter.sample(
                        now_cpu.saturating_sub(previous),
                        now.duration_since(since),
                        cpus,
                    );
                    published.store(value.to_bits(), Ordering::Relaxed);
                    (previous, since) = (now_cpu, now);
                }
            })?;
        Ok(ProcessCpu {
            shared: Arc::new(Shared {
                reading,
                limit,
                _stop: stop,
            }),
        })
    }

    /// The CPUs this process was found to be allowed, which the readings are relative to.
    pub fn limit(&self) -> CpuLimit {
        self.shared.limit
    }
}

impl CpuSource for ProcessCpu {
    fn usage(&self) -> f64 {
        f64::from_bits(self.shared.reading.load(Ordering::Relaxed))
    }
}

/// User + system CPU time of this process so far.
fn process_cpu_time() -> std::io::Result<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).map_err(std::io::Error::from)?;
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Ok(micros(usage.user_time()) + micros(usage.system_time()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_is_an_ema_of_cpu_time_over_wall_time_and_cpus() {
        let mut meter = CpuMeter::new(0.95);
        let q = Duration::from_millis(250);
        // One of two CPUs busy for a whole interval: 50 %, weighted 5 %.
        let first = meter.sample(q, q, 2.0);
        assert!((first - 0.025).abs() < 1e-12, "{first}");
        let second = meter.sample(q * 2, q, 2.0);
        assert!((second - (0.025 * 0.95 + 0.05)).abs() < 1e-12, "{second}");
        // Both CPUs busy long enough converges on 1, never above.
        for _ in 0..1000 {
            meter.sample(q * 4, q, 2.0);
        }
        assert!(meter.reading() > 0.999 && meter.reading() <= 1.0);
        // No time elapsed: unchanged.
        let before = meter.reading();
        assert_eq!(meter.sample(q, Duration::ZERO, 2.0), before);
    }

    #[test]
    fn a_quota_of_half_a_cpu_reads_full_at_half_a_cpu() {
        let mut meter = CpuMeter::new(0.0);
        let q = Duration::from_millis(250);
        assert_eq!(meter.sample(q / 2, q, 0.5), 1.0);
        assert_eq!(meter.sample(q / 4, q, 0.5), 0.5);
    }

    #[test]
    fn process_cpu_reads_this_process_and_stops_with_its_last_clone() {
        let settings = Settings {
            sample_interval: Duration::from_millis(10),
            ema_beta: 0.0,
            ..Settings::default()
        };
        let cpu = ProcessCpu::start(&settings).unwrap();
        assert!(cpu.limit().cpus() > 0.0);
        // Burn CPU on this thread until a sample sees it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        while cpu.usage() == 0.0 && Instant::now() < deadline {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let usage = cpu.usage();
        assert!(usage > 0.0 && usage <= 1.0, "{usage}");
        let weak = Arc::downgrade(&cpu.shared);
        drop(cpu.clone());
        assert!(weak.upgrade().is_some());
        drop(cpu);
        assert!(weak.upgrade().is_none());
        // The sampler sees its channel closed and ends (no other test here starts one).
        let deadline = Instant::now() + Duration::from_secs(5);
        while running_samplers() > 0 {
            assert!(
                Instant::now() < deadline,
                "the sampler thread is still running"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

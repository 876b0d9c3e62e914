//! The rolling window of passes: per bucket, how many requests passed and their summed response
//! time; summarised, each time a bucket closes, into the best pass count and the lowest average
//! response time of the closed buckets.

use std::time::Duration;

/// What the capacity is estimated from, over the closed buckets of the window (the current one
/// holds a partial count, so it is left out, as go-zero does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The most passes of one bucket; 0 when no bucket saw any.
    pub max_pass: u64,
    /// The lowest average response time of a bucket, in nanoseconds; `None` when no bucket saw
    /// a pass.
    pub min_rt_nanos: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    passes: u64,
    rt_nanos: u64,
}

/// `buckets` buckets of `width` each; bucket `i` covers `[i * width, (i + 1) * width)` of the
/// clock. Moving to a later bucket empties the ones skipped over, so old passes are forgotten a
/// bucket at a time.
#[derive(Debug)]
pub(crate) struct Window {
    buckets: Box<[Bucket]>,
    width_nanos: u64,
    /// The absolute index of the current bucket (`now / width`).
    current: u64,
    summary: Summary,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Window {
    pub(crate) fn new(buckets: u32, width: Duration) -> Self {
        Window {
            buckets: vec![Bucket::default(); buckets.max(1) as usize].into_boxed_slice(),
            width_nanos: nanos(width).max(1),
            current: 0,
            summary: Summary {
                max_pass: 0,
                min_rt_nanos: None,
            },
        }
    }

    /// Moves to the bucket of `now`, emptying those skipped and summarising the closed ones.
    pub(crate) fn advance(&mut self, now: Duration) {
        let index = nanos(now) / self.width_nanos;
        if index <= self.current {
            return;
        }
        let len = self.buckets.len() as u64;
        let steps = (index - self.current).min(len);
        for step in 1..=steps {
            self.buckets[((self.current + step) % len) as usize] = Bucket::default();
        }
        self.current = index;
        // The current bucket was just emptied, so this summarises the closed ones only.
        let mut summary = Summary {
            max_pass: 0,
            min_rt_nanos: None,
        };
        for bucket in &self.buckets {
            if bucket.passes == 0 {
                continue;
            }
            summary.max_pass = summary.max_pass.max(bucket.passes);
            let avg = bucket.rt_nanos as f64 / bucket.passes as f64;
            if summary.min_rt_nanos.is_none_or(|min| avg < min) {
                summary.min_rt_nanos = Some(avg);
            }
        }
        self.summary = summary;
    }

    /// Records a pass that took `rt`, in the bucket of `now`.
    pub(crate) fn record(&mut self, now: Duration, rt: Duration) {
        self.advance(now);
        let slot = (self.current % self.buckets.len() as u64) as usize;
        let bucket = &mut self.buckets[slot];
        bucket.passes += 1;
        bucket.rt_nanos = bucket.rt_nanos.saturating_add(nanos(rt));
    }

    /// The summary of the closed buckets as of `now`.
    pub(crate) fn summary(&mut self, now: Duration) -> Summary {
        self.advance(now);
        self.summary
    }

    pub(crate) fn width_nanos(&self) -> u64 {
        self.width_nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_current_bucket_is_left_out_until_it_closes() {
        let mut w = Window::new(50, 100 * MS);
        w.record(10 * MS, 20 * MS);
        w.record(20 * MS, 40 * MS);
        assert_eq!(w.summary(99 * MS).max_pass, 0);
        let s = w.summary(100 * MS);
        assert_eq!((s.max_pass, s.min_rt_nanos), (2, Some(30e6)));
    }

    #[test]
    fn best_pass_count_and_lowest_average_may_come_from_different_buckets() {
        let mut w = Window::new(50, 100 * MS);
        for _ in 0..5 {
            w.record(150 * MS, 80 * MS);
        }
        w.record(250 * MS, 10 * MS);
        let s = w.summary(300 * MS);
        assert_eq!((s.max_pass, s.min_rt_nanos), (5, Some(10e6)));
    }

    #[test]
    fn buckets_older_than_the_window_are_forgotten() {
        let mut w = Window::new(50, 100 * MS);
        w.record(50 * MS, 10 * MS);
        assert_eq!(w.summary(4_999 * MS).max_pass, 1);
        // At 5 s the first bucket's slot is the current one again, emptied.
        assert_eq!(w.summary(5_000 * MS).max_pass, 0);
        w.record(5_050 * MS, 10 * MS);
        assert_eq!(w.summary(60_000 * MS).max_pass, 0);
    }
}

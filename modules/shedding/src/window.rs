//! The rolling window of passes: per bucket, how many requests passed and their summed response
//! time; summarised, each time a bucket closes, into the best pass count and the lowest average
//! response time of the closed buckets, and the response-time floor: the lowest average of a
//! bucket over a longer horizon, kept as a few coarse slots.

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
    /// The lowest average response time of a closed bucket that started in the floor's last
    /// [`RT_FLOOR_SLOTS`] slots (the current one included), in nanoseconds; `None` when the
    /// floor is off or no such bucket saw a pass.
    pub rt_floor_nanos: Option<f64>,
}

/// The slots the response-time floor's horizon is cut into: a bucket's average is remembered
/// for between 11/12 of the horizon and all of it, in 12 fixed cells (no allocation per request).
pub const RT_FLOOR_SLOTS: u64 = 12;

/// One slot of the floor: the lowest bucket average among the closed buckets that started in
/// slot `index` (the clock divided by the slot width).
#[derive(Clone, Copy, Debug)]
struct FloorSlot {
    index: u64,
    min_rt_nanos: f64,
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
    /// The floor's slots, slot `i` at `i % RT_FLOOR_SLOTS`; empty when the floor is off.
    floor: Box<[Option<FloorSlot>]>,
    /// The width of one floor slot in nanoseconds; 0 when the floor is off.
    floor_slot_nanos: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Window {
    /// `buckets` buckets of `width`, and a response-time floor over `rt_floor_window` (zero:
    /// no floor).
    pub(crate) fn new(buckets: u32, width: Duration, rt_floor_window: Duration) -> Self {
        let floor_slot_nanos = nanos(rt_floor_window) / RT_FLOOR_SLOTS;
        let slots = if floor_slot_nanos == 0 {
            0
        } else {
            RT_FLOOR_SLOTS as usize
        };
        Window {
            buckets: vec![Bucket::default(); buckets.max(1) as usize].into_boxed_slice(),
            width_nanos: nanos(width).max(1),
            current: 0,
            summary: Summary {
                max_pass: 0,
                min_rt_nanos: None,
                rt_floor_nanos: None,
            },
            floor: vec![None; slots].into_boxed_slice(),
            floor_slot_nanos,
        }
    }

    /// The floor slot a bucket (absolute index) belongs to: the one its start falls in.
    fn floor_slot_of(&self, bucket: u64) -> u64 {
        bucket.saturating_mul(self.width_nanos) / self.floor_slot_nanos
    }

    /// Folds the closing bucket's average into its floor slot.
    fn fold_into_floor(&mut self, bucket: Bucket) {
        if self.floor.is_empty() || bucket.passes == 0 {
            return;
        }
        let avg = bucket.rt_nanos as f64 / bucket.passes as f64;
        let index = self.floor_slot_of(self.current);
        let cell = &mut self.floor[(index % RT_FLOOR_SLOTS) as usize];
        match cell {
            Some(slot) if slot.index == index => slot.min_rt_nanos = slot.min_rt_nanos.min(avg),
            _ => {
                *cell = Some(FloorSlot {
                    index,
                    min_rt_nanos: avg,
                })
            }
        }
    }

    /// The lowest average of the slots still within the horizon of the current bucket.
    fn floor_min(&self) -> Option<f64> {
        if self.floor.is_empty() {
            return None;
        }
        let now = self.floor_slot_of(self.current);
        self.floor
            .iter()
            .flatten()
            .filter(|slot| now.saturating_sub(slot.index) < RT_FLOOR_SLOTS)
            .map(|slot| slot.min_rt_nanos)
            .reduce(f64::min)
    }

    /// Moves to the bucket of `now`, emptying those skipped and summarising the closed ones.
    pub(crate) fn advance(&mut self, now: Duration) {
        let index = nanos(now) / self.width_nanos;
        if index <= self.current {
            return;
        }
        let len = self.buckets.len() as u64;
        // The current bucket closes: it is complete, so the floor learns its average now.
        self.fold_into_floor(self.buckets[(self.current % len) as usize]);
        let steps = (index - self.current).min(len);
        for step in 1..=steps {
            self.buckets[((self.current + step) % len) as usize] = Bucket::default();
        }
        self.current = index;
        // The current bucket was just emptied, so this summarises the closed ones only.
        let mut summary = Summary {
            max_pass: 0,
            min_rt_nanos: None,
            rt_floor_nanos: self.floor_min(),
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
        let mut w = Window::new(50, 100 * MS, Duration::ZERO);
        w.record(10 * MS, 20 * MS);
        w.record(20 * MS, 40 * MS);
        assert_eq!(w.summary(99 * MS).max_pass, 0);
        let s = w.summary(100 * MS);
        assert_eq!((s.max_pass, s.min_rt_nanos), (2, Some(30e6)));
    }

    #[test]
    fn best_pass_count_and_lowest_average_may_come_from_different_buckets() {
        let mut w = Window::new(50, 100 * MS, Duration::ZERO);
        for _ in 0..5 {
            w.record(150 * MS, 80 * MS);
        }
        w.record(250 * MS, 10 * MS);
        let s = w.summary(300 * MS);
        assert_eq!((s.max_pass, s.min_rt_nanos), (5, Some(10e6)));
    }

    #[test]
    fn buckets_older_than_the_window_are_forgotten() {
        let mut w = Window::new(50, 100 * MS, Duration::ZERO);
        w.record(50 * MS, 10 * MS);
        assert_eq!(w.summary(4_999 * MS).max_pass, 1);
        // At 5 s the first bucket's slot is the current one again, emptied.
        assert_eq!(w.summary(5_000 * MS).max_pass, 0);
        w.record(5_050 * MS, 10 * MS);
        assert_eq!(w.summary(60_000 * MS).max_pass, 0);
    }

    #[test]
    fn the_floor_keeps_the_lowest_average_after_the_window_forgot_it() {
        // 50 × 100 ms, a floor over 60 s: 12 slots of 5 s.
        let mut w = Window::new(50, 100 * MS, Duration::from_secs(60));
        w.record(50 * MS, 2 * MS);
        for second in 1..30u32 {
            w.record(second * 1_000 * MS, 40 * MS);
        }
        let s = w.summary(30_000 * MS);
        assert_eq!(
            s.min_rt_nanos,
            Some(40e6),
            "the window holds the last 5 s only"
        );
        assert_eq!(s.rt_floor_nanos, Some(2e6));
    }

    #[test]
    fn the_floor_forgets_a_slot_once_it_leaves_the_horizon() {
        let mut w = Window::new(50, 100 * MS, Duration::from_secs(60));
        w.record(4_950 * MS, 2 * MS); // bucket 49, in slot 0 (0-5 s)
        w.record(5_050 * MS, 7 * MS); // bucket 50, in slot 1 (5-10 s)
        // Slot 11 (55-60 s) is the last to include slot 0.
        assert_eq!(w.summary(59_999 * MS).rt_floor_nanos, Some(2e6));
        assert_eq!(w.summary(60_000 * MS).rt_floor_nanos, Some(7e6));
        assert_eq!(w.summary(65_000 * MS).rt_floor_nanos, None);
    }

    #[test]
    fn a_zero_horizon_keeps_no_floor() {
        let mut w = Window::new(50, 100 * MS, Duration::ZERO);
        w.record(50 * MS, 2 * MS);
        let s = w.summary(200 * MS);
        assert_eq!((s.min_rt_nanos, s.rt_floor_nanos), (Some(2e6), None));
    }
}

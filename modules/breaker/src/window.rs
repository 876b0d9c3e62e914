//! The rolling window: counts kept in a ring of fixed-width time buckets, a whole bucket being
//! forgotten once it is `buckets` widths old (as hystrix-go's rolling number and go-zero's
//! rolling window).

use std::time::Duration;

use serde::Serialize;

/// What happened to calls in the window, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Calls the classifier called [`Outcome::Success`](crate::Outcome::Success).
    pub successes: u64,
    /// Calls the classifier called [`Outcome::Failure`](crate::Outcome::Failure).
    pub failures: u64,
    /// Calls cut off by the timeout.
    pub timeouts: u64,
    /// Calls rejected because `max_concurrent_requests` were in flight.
    pub rejected: u64,
    /// `hystrix`: calls refused because the breaker was open (or half-open with its probe out).
    pub short_circuited: u64,
    /// `sre`: calls dropped locally by the throttle.
    pub throttled: u64,
    /// Calls the classifier called [`Outcome::Ignored`](crate::Outcome::Ignored).
    pub ignored: u64,
}

impl Counts {
    /// `hystrix`: the calls that weigh on the error percentage (successes, failures, timeouts,
    /// rejections). Ignored and short-circuited calls do not.
    pub fn hystrix_requests(&self) -> u64 {
        self.successes + self.hystrix_errors()
    }

    /// `hystrix`: failures, timeouts and rejections.
    pub fn hystrix_errors(&self) -> u64 {
        self.failures + self.timeouts + self.rejected
    }

    /// `(requests, errors)` for the trip decision: [`Counts::hystrix_requests`] and
    /// [`Counts::hystrix_errors`], rejections left out of both unless `count_rejections`.
    pub fn hystrix_health(&self, count_rejections: bool) -> (u64, u64) {
        let errors =
            self.failures + self.timeouts + if count_rejections { self.rejected } else { 0 };
        (self.successes + errors, errors)
    }

    /// `sre`: every attempt the application made, including those the throttle dropped (the SRE
    /// book's `requests`).
    pub fn sre_requests(&self) -> u64 {
        self.successes
            + self.failures
            + self.timeouts
            + self.rejected
            + self.throttled
            + self.ignored
    }

    /// `sre`: attempts the backend answered, successes and ignored (business) errors alike (the
    /// SRE book's `accepts`).
    pub fn sre_accepts(&self) -> u64 {
        self.successes + self.ignored
    }

    fn add(&mut self, other: &Counts) {
        self.successes += other.successes;
        self.failures += other.failures;
        self.timeouts += other.timeouts;
        self.rejected += other.rejected;
        self.short_circuited += other.short_circuited;
        self.throttled += other.throttled;
        self.ignored += other.ignored;
    }
}

/// One kind of event, as recorded in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Success,
    Failure,
    Timeout,
    Rejected,
    ShortCircuited,
    Throttled,
    Ignored,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which bucket-width of time since the clock's origin this bucket holds; `None` if unused.
    epoch: Option<u64>,
    counts: Counts,
}

#[derive(Clone, Debug)]
pub(crate) struct Window {
    width_nanos: u128,
    buckets: Vec<Bucket>,
    /// The latest epoch recorded: an earlier `now` (a clock that went backwards) is counted in
    /// it rather than corrupting the ring.
    latest: u64,
}

impl Window {
    /// `buckets` buckets of `width` each; both must be non-zero (checked by `Settings`).
    pub(crate) fn new(width: Duration, buckets: u32) -> Self {
        Window {
            width_nanos: width.as_nanos().max(1),
            buckets: vec![Bucket::default(); buckets.max(1) as usize],
            latest: 0,
        }
    }

    fn epoch(&self, now: Duration) -> u64 {
        let epoch = u64::try_from(now.as_nanos() / self.width_nanos).unwrap_or(u64::MAX);
        epoch.max(self.latest)
    }

    pub(crate) fn record(&mut self, now: Duration, event: Event) {
        let epoch = self.epoch(now);
        self.latest = epoch;
        let len = self.buckets.len() as u64;
        let slot = &mut self.buckets[(epoch % len) as usize];
        if slot.epoch != Some(epoch) {
            *slot = Bucket {
                epoch: Some(epoch),
                counts: Counts::default(),
            };
        }
        let c = &mut slot.counts;
        match event {
            Event::Success => c.successes += 1,
            Event::Failure => c.failures += 1,
            Event::Timeout => c.timeouts += 1,
            Event::Rejected => c.rejected += 1,
            Event::ShortCircuited => c.short_circuited += 1,
            Event::Throttled => c.throttled += 1,
            Event::Ignored => c.ignored += 1,
        }
    }

    /// The counts of the buckets less than `buckets` widths older than `now`'s.
    pub(crate) fn sum(&self, now: Duration) -> Counts {
        let current = self.epoch(now);
        let len = self.buckets.len() as u64;
        let mut total = Counts::default();
        for bucket in &self.buckets {
            if let Some(epoch) = bucket.epoch
                && epoch <= current
                && current - epoch < len
            {
                total.add(&bucket.counts);
            }
        }
        total
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_bucket_is_forgotten_once_it_is_a_window_old() {
        let mut w = Window::new(ms(1000), 10);
        w.record(ms(0), Event::Failure);
        w.record(ms(999), Event::Failure);
        w.record(ms(5500), Event::Success);
        assert_eq!(w.sum(ms(9999)).failures, 2);
        // At 10 s the first bucket ([0, 1 s)) is 10 widths old: gone, all of it at once.
        let at_10s = w.sum(ms(10_000));
        assert_eq!((at_10s.failures, at_10s.successes), (0, 1));
        // The success at 5.5 s lives in [5 s, 6 s): gone at 15 s, not 15.5 s.
        assert_eq!(w.sum(ms(14_999)).successes, 1);
        assert_eq!(w.sum(ms(15_000)), Counts::default());
    }

    #[test]
    fn a_reused_slot_starts_from_zero() {
        let mut w = Window::new(ms(100), 2);
        w.record(ms(0), Event::Failure);
        w.record(ms(250), Event::Timeout); // epoch 2 reuses epoch 0's slot
        let c = w.sum(ms(250));
        assert_eq!((c.failures, c.timeouts), (0, 1));
    }

    #[test]
    fn an_earlier_now_counts_in_the_latest_bucket() {
        let mut w = Window::new(ms(100), 3);
        w.record(ms(450), Event::Success);
        w.record(ms(10), Event::Failure);
        let c = w.sum(ms(450));
        assert_eq!((c.successes, c.failures), (1, 1));
    }

    #[test]
    fn clear_forgets_everything() {
        let mut w = Window::new(ms(100), 3);
        w.record(ms(50), Event::Rejected);
        w.clear();
        assert_eq!(w.sum(ms(50)), Counts::default());
    }
}

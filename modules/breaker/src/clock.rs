//! Time as the breaker sees it: the rolling window, the sleep window and call timeouts all read
//! one [`Clock`], so tests drive them with a [`ManualClock`] instead of sleeping.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::lock;

/// A future that completes when a [`Clock`]'s time has moved on by the asked duration.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A monotonic clock with timers.
///
/// [`Clock::now`] is called while the breaker holds its lock, so it must be quick and must not
/// call back into a breaker.
pub trait Clock: Send + Sync + 'static {
    /// Time since this clock's origin. Never goes backwards.
    fn now(&self) -> Duration;

    /// A future that completes once [`Clock::now`] has advanced by `duration` from this call.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The production clock: tokio's [`Instant`](tokio::time::Instant) and
/// [`sleep`](tokio::time::sleep), so it also follows tokio's paused test time.
///
/// Its sleeps need a tokio runtime with the time driver enabled when they are polled.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]), for tests.
///
/// Clones share one time. Sleeps complete when the time reaches their deadline: they are woken
/// by `advance`, or see it on their next poll.
#[derive(Clone, Default)]
pub struct ManualClock {
    shared: Arc<Mutex<ManualState>>,
}

#[derive(Default)]
struct ManualState {
    now: Duration,
    next_id: u64,
    /// Pending sleeps by id: their deadline and the waker of their last poll.
    sleepers: HashMap<u64, (Duration, Waker)>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves the time on by `by` and wakes the sleeps that are due.
    pub fn advance(&self, by: Duration) {
        let due: Vec<Waker> = {
            let mut state = lock(&self.shared);
            state.now += by;
            let now = state.now;
            let ids: Vec<u64> = state
                .sleepers
                .iter()
                .filter(|(_, (deadline, _))| *deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| state.sleepers.remove(id))
                .map(|(_, waker)| waker)
                .collect()
        };
        // Woken outside the lock: a woken task may poll its sleep at once.
        due.into_iter().for_each(Waker::wake);
    }

    /// Sleeps created and not yet completed or dropped that have been polled at least once.
    pub fn pending_sleeps(&self) -> usize {
        lock(&self.shared).sleepers.len()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("ManualClock")
            .field("now", &state.now)
            .field("pending_sleeps", &state.sleepers.len())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        lock(&self.shared).now
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut state = lock(&self.shared);
        let id = state.next_id;
        state.next_id += 1;
        let deadline = state.now.saturating_add(duration);
        Box::pin(ManualSleep {
            shared: Arc::clone(&self.shared),
            deadline,
            id,
        })
    }
}

struct ManualSleep {
    shared: Arc<Mutex<ManualState>>,
    deadline: Duration,
    id: u64,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.shared);
        if state.now >= self.deadline {
            state.sleepers.remove(&self.id);
            Poll::Ready(())
        } else {
            state
                .sleepers
                .insert(self.id, (self.deadline, cx.waker().clone()));
            Poll::Pending
        }
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        lock(&self.shared).sleepers.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn manual_sleep_completes_at_its_deadline_and_is_woken_by_advance() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(3));
        let mut sleep = clock.sleep(Duration::from_millis(500));
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);

        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.pending_sleeps(), 1);
        clock.advance(Duration::from_millis(499));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_millis(1));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
        assert_eq!(clock.pending_sleeps(), 0);
        assert_eq!(clock.now(), Duration::from_millis(3500));
    }

    #[test]
    fn dropped_manual_sleep_is_forgotten() {
        let clock = ManualClock::new();
        let mut sleep = clock.sleep(Duration::from_secs(1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        drop(sleep);
        assert_eq!(clock.pending_sleeps(), 0);
    }

    #[tokio::test]
    async fn tokio_clock_moves_forward_and_sleeps() {
        let clock = TokioClock::new();
        let before = clock.now();
        clock.sleep(Duration::from_millis(5)).await;
        assert!(clock.now() >= before + Duration::from_millis(5));
    }
}

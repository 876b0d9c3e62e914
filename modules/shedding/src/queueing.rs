//! How long an admitted request waited to run: the time from each wake of its future (and from
//! its admission) to the poll that followed. Under overload that wait is the runtime's run
//! queue, everything else on the process taking its turn; the response time the shedder learns
//! from is the wall time less this wait, the request's own service time (its CPU work and what
//! it waited on elsewhere: a database, a peer). A wall-clock response time would hold the queue
//! of what was admitted, and an estimate built from it would hold up the very queue it measures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};
use std::time::Duration;

use crate::clock::Clock;

/// The waker an admitted request's future is polled with: notes when it was first woken since
/// its last poll, then wakes the task that polls it.
pub(crate) struct WakeStamp {
    clock: Arc<dyn Clock>,
    /// Clock time of the first wake since the last poll in nanoseconds, plus one; 0 when none.
    woken: AtomicU64,
    /// The polling task's waker, as of the last poll.
    task: Mutex<Option<Waker>>,
}

/// Per admitted request: its wake stamp (made on the first timed poll) and the wait so far.
#[derive(Default)]
pub(crate) struct Queueing {
    stamp: Option<(Arc<WakeStamp>, Waker)>,
    waited: Duration,
}

fn stamp_of(at: Duration) -> u64 {
    u64::try_from(at.as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

impl Queueing {
    /// Called at the start of each poll: adds the wait since the first wake (or, on the first
    /// poll, since `admitted_at`) and returns the waker to poll the request with, which wakes
    /// `task`.
    pub(crate) fn before_poll(
        &mut self,
        clock: &Arc<dyn Clock>,
        admitted_at: Duration,
        task: &Waker,
    ) -> &Waker {
        let now = clock.now();
        let (stamp, waker) = self.stamp.get_or_insert_with(|| {
            let stamp = Arc::new(WakeStamp {
                clock: clock.clone(),
                woken: AtomicU64::new(stamp_of(admitted_at)),
                task: Mutex::new(None),
            });
            let waker = Waker::from(stamp.clone());
            (stamp, waker)
        });
        match stamp.woken.swap(0, Ordering::AcqRel) {
            0 => {}
            woken => self.waited += now.saturating_sub(Duration::from_nanos(woken - 1)),
        }
        let mut current = stamp.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !current.as_ref().is_some_and(|w| w.will_wake(task)) {
            *current = Some(task.clone());
        }
        waker
    }

    /// The wait counted so far.
    pub(crate) fn waited(&self) -> Duration {
        self.waited
    }
}

impl Wake for WakeStamp {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let now = stamp_of(self.clock.now());
        // The first wake since the poll is when the request became ready to run.
        let _ = self
            .woken
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

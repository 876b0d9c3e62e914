//! Passive health checking of one discovered instance (docs/discovery.md): the state that takes
//! an instance out of the HTTP app's rotation when a call cannot reach it, and brings it back
//! after a probe, like gRPC's outlier detection or Envoy's ejection.
//!
//! Pure state: every method takes the time as an argument, so the backoff and the probe
//! schedule are tested with a clock the test moves; `repository::discovery` drives it.

use std::time::{Duration, Instant};

/// How long an ejected instance stays out: `initial` for its first ejection, doubled at each
/// ejection or failed probe that follows, up to `max` (`grpc_client.ejection_initial` /
/// `grpc_client.ejection_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first ejection's length.
    pub initial: Duration,
    /// The longest an instance stays out between two probes.
    pub max: Duration,
}

/// One instance's health as its callers saw it.
#[derive(Clone, Debug)]
pub struct Health {
    backoff: Backoff,
    /// `Some(t)`: ejected; a probe is due at `t`, and only a successful one brings it back.
    probe_at: Option<Instant>,
    /// The length of the next time out (an ejection or a failed probe).
    next: Duration,
    /// How many times it was ejected: a failure seen by a call picked before the last
    /// ejection says nothing new (its instance was already taken out, perhaps probed back).
    epoch: u64,
}

impl Health {
    /// A serving instance (Consul lists it as passing).
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            probe_at: None,
            next: backoff.initial,
            epoch: 0,
        }
    }

    /// Out of the rotation.
    pub fn is_ejected(&self) -> bool {
        self.probe_at.is_some()
    }

    /// Ejections so far; a call remembers it when it picks the instance.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When the next probe is due (`None`: serving).
    pub fn probe_at(&self) -> Option<Instant> {
        self.probe_at
    }

    /// A call picked at `epoch` could not reach the instance (the connection failed or
    /// broke) at `now`: it is ejected, and the time of its first probe returned. `None` when
    /// it is already out, or the call was picked before its last ejection.
    pub fn failed(&mut self, epoch: u64, now: Instant) -> Option<Instant> {
        if self.is_ejected() || epoch != self.epoch {
            return None;
        }
        self.epoch += 1;
        Some(self.time_out(now))
    }

    /// A call picked at `epoch` was answered (by the app, whatever the answer): the
    /// connection works, and the next ejection starts again from `initial`. Nothing for an
    /// ejected instance: only a probe brings it back.
    pub fn answered(&mut self, epoch: u64) {
        if !self.is_ejected() && epoch == self.epoch {
            self.next = self.backoff.initial;
        }
    }

    /// The probe due at [`Health::probe_at`] ran at `now`. Succeeded: the instance is back in
    /// the rotation (`None`). Failed: it stays out, and the time of the next probe is returned
    /// (the time out doubled, up to `max`). `None` too when it was not ejected.
    pub fn probed(&mut self, succeeded: bool, now: Instant) -> Option<Instant> {
        self.probe_at?;
        if succeeded {
            self.probe_at = None;
            return None;
        }
        Some(self.time_out(now))
    }

    /// Out from `now` for the next time out, which then doubles.
    fn time_out(&mut self, now: Instant) -> Instant {
        let at = now + self.next;
        self.probe_at = Some(at);
        self.next = (self.next * 2).min(self.backoff.max);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_failure_ejects_until_a_probe_succeeds_and_the_backoff_doubles_to_its_cap() {
        let t0 = Instant::now();
        let mut health = Health::new(BACKOFF);
        assert!(!health.is_ejected());
        let epoch = health.epoch();
        // Out for 1 s; the probe then is due.
        assert_eq!(health.failed(epoch, t0), Some(t0 + secs(1)));
        assert!(health.is_ejected());
        assert_eq!(health.probe_at(), Some(t0 + secs(1)));
        // Each failed probe keeps it out twice as long: 2, 4, 8, 16, then 30 s at most.
        let mut now = t0 + secs(1);
        for wait in [2, 4, 8, 16, 30, 30] {
            assert_eq!(health.probed(false, now), Some(now + secs(wait)));
            assert!(health.is_ejected());
            now += secs(wait);
        }
        // A probe that succeeds brings it back.
        assert_eq!(health.probed(true, now), None);
        assert!(!health.is_ejected());
        assert_eq!(health.probe_at(), None);
    }

    #[test]
    fn an_answer_starts_the_backoff_over_but_only_a_probe_ends_an_ejection() {
        let t0 = Instant::now();
        let mut health = Health::new(BACKOFF);
        assert_eq!(health.failed(0, t0), Some(t0 + secs(1)));
        // A call picked before the ejection, answered after it: still out.
        health.answered(0);
        assert!(health.is_ejected());
        assert_eq!(health.probed(true, t0 + secs(1)), None);
        // Back without an answer since: a new failure keeps it out longer (it flaps).
        let epoch = health.epoch();
        assert_eq!(
            health.failed(epoch, t0 + secs(2)),
            Some(t0 + secs(2) + secs(2))
        );
        assert_eq!(health.probed(true, t0 + secs(4)), None);
        // An answer once back: the next ejection is 1 s again.
        let epoch = health.epoch();
        health.answered(epoch);
        assert_eq!(
            health.failed(epoch, t0 + secs(10)),
            Some(t0 + secs(10) + secs(1))
        );
    }

    #[test]
    fn failures_of_an_ejected_instance_or_from_before_its_ejection_change_nothing() {
        let t0 = Instant::now();
        let mut health = Health::new(BACKOFF);
        let before = health.epoch();
        assert!(health.failed(before, t0).is_some());
        // Other calls that were on it fail too: one ejection, one probe.
        assert_eq!(health.failed(before, t0), None);
        assert_eq!(health.failed(health.epoch(), t0), None);
        assert_eq!(health.probe_at(), Some(t0 + secs(1)));
        // Probed back: a late failure of a call picked before the ejection is stale.
        assert_eq!(health.probed(true, t0 + secs(1)), None);
        assert_eq!(health.failed(before, t0 + secs(1)), None);
        assert!(!health.is_ejected());
        // A probe result for a serving instance is ignored.
        assert_eq!(health.probed(false, t0 + secs(2)), None);
        assert!(!health.is_ejected());
    }

    #[test]
    fn a_cap_equal_to_the_initial_time_out_holds() {
        let t0 = Instant::now();
        let mut health = Health::new(Backoff {
            initial: secs(5),
            max: secs(5),
        });
        assert_eq!(health.failed(0, t0), Some(t0 + secs(5)));
        assert_eq!(health.probed(false, t0 + secs(5)), Some(t0 + secs(10)));
    }
}

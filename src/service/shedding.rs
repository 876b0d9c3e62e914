//! Adaptive load shedding of the served apps (docs/overload.md): the one user of
//! `goex_shedding`, so the edge (the HTTP middleware, the gRPC layer) asks this component for
//! its app's shedder and names no sampler. The decisions are counted and the shedder's CPU
//! reading and capacity exposed on the metrics listener.

use std::sync::{Arc, Mutex, PoisonError};

use goex_metrics::{Metrics, SheddingDecisions, SheddingSample};
use goex_shedding::{Admitted, ManualClock, ManualCpu, Settings, Shedder};
use shaku::{Component, Interface};

use crate::service::error::ServiceError;

/// Hands each served app its shedder.
pub trait LoadShedding: Interface {
    /// The shedder of the app about to serve; `app` (`http`, `grpc`) labels its decisions.
    /// The first call starts the CPU sampler (a thread that ends once this component and every
    /// shedder handed out are dropped, that is when the app stops); later calls share it. The
    /// one-shot commands and the socket app never call it, so they sample nothing.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when the CPU sampler cannot start or the gauges cannot be
    /// registered.
    fn shedder(&self, app: &'static str) -> Result<AppShedder, ServiceError>;
}

/// Where the shedder reads the CPU and the time.
#[derive(Clone, Debug, Default)]
pub enum SheddingSources {
    /// This process's CPU time (`goex_shedding::ProcessCpu`) and the monotonic clock.
    #[default]
    Process,
    /// Readings set by hand: the tests put the CPU over the threshold and move the clock
    /// instead of loading the machine and sleeping.
    Manual {
        /// The CPU reading, 0 to 1.
        cpu: ManualCpu,
        /// The clock of the window and the cool-off.
        clock: ManualClock,
    },
}

/// [`LoadShedding`] from the `shedding` section.
#[derive(Component)]
#[shaku(interface = LoadShedding)]
pub struct AdaptiveLoadShedding {
    settings: Settings,
    sources: SheddingSources,
    metrics: Option<Metrics>,
    /// The process's shedder once an app asked for it. In an `Arc` so the gauges can hold it
    /// weakly: the metrics registry may outlive the app, its sampler must not.
    #[shaku(default)]
    started: Mutex<Option<Arc<Shedder>>>,
}

impl AdaptiveLoadShedding {
    /// A component over `settings` reading `sources` (what a test puts in place of the
    /// assembled one with `with_component_override`).
    pub fn new(settings: Settings, sources: SheddingSources, metrics: Option<Metrics>) -> Self {
        AdaptiveLoadShedding {
            settings,
            sources,
            metrics,
            started: Mutex::default(),
        }
    }

    fn start(&self) -> Result<Arc<Shedder>, ServiceError> {
        let internal = |e: Box<dyn std::error::Error + Send + Sync>| ServiceError::Internal(e);
        let shedder = match &self.sources {
            SheddingSources::Process => {
                Shedder::new(&self.settings).map_err(|e| internal(e.into()))?
            }
            SheddingSources::Manual { cpu, clock } => {
                Shedder::with_sources(&self.settings, cpu.clone(), clock.clone())
                    .map_err(|e| internal(e.into()))?
            }
        };
        let shedder = Arc::new(shedder);
        if let Some(metrics) = self.metrics.as_ref().filter(|_| shedder.is_enabled()) {
            let read = Arc::downgrade(&shedder);
            metrics
                .shedding_state(move || {
                    read.upgrade()?.snapshot().map(|s| SheddingSample {
                        cpu: s.cpu,
                        capacity: s.capacity,
                        in_flight: s.in_flight as f64,
                        limit: s.limit(),
                    })
                })
                .map_err(|e| internal(e.into()))?;
        }
        Ok(shedder)
    }
}

impl LoadShedding for AdaptiveLoadShedding {
    fn shedder(&self, app: &'static str) -> Result<AppShedder, ServiceError> {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let shedder = match &*started {
            Some(shedder) => Shedder::clone(shedder),
            None => Shedder::clone(started.insert(self.start()?)),
        };
        let decisions = match (&self.metrics, shedder.is_enabled()) {
            (Some(metrics), true) => Some(metrics.shedding_decisions(app)),
            _ => None,
        };
        Ok(AppShedder { shedder, decisions })
    }
}

/// One app's shedder with its decision counters. Cheap to clone (clones share the state).
#[derive(Clone, Debug)]
pub struct AppShedder {
    shedder: Shedder,
    decisions: Option<SheddingDecisions>,
}

impl AppShedder {
    /// A shedder that admits everything.
    pub fn disabled() -> Self {
        AppShedder {
            shedder: Shedder::disabled(),
            decisions: None,
        }
    }

    /// Whether requests may be dropped at all (`shedding.enabled`).
    pub fn is_enabled(&self) -> bool {
        self.shedder.is_enabled()
    }

    /// Decides on one request, at once: no allocation, no wait.
    ///
    /// # Errors
    /// [`ServiceError::ServerBusy`] (10015) when the process is overloaded: answer it without
    /// doing its work.
    #[inline]
    pub fn admit(&self) -> Result<Admission, ServiceError> {
        let decision = self.shedder.allow();
        if let Some(decisions) = &self.decisions {
            decisions.record(decision.is_ok());
        }
        decision
            .map(Admission)
            .map_err(|_| ServiceError::ServerBusy)
    }
}

/// An admitted request. Report how it ended; dropped unreported (a cancelled request), it
/// counts as failed.
#[derive(Debug)]
#[must_use = "an admitted request counts as in flight until it passes, fails or is dropped"]
pub struct Admission(Admitted);

impl Admission {
    /// Polls the request's future, leaving its waits in the run queue out of the response
    /// time the shedder learns from (`goex_shedding::Admitted::poll_timed`): poll it through
    /// this every time.
    #[inline]
    pub fn poll<F: std::future::Future>(
        &mut self,
        fut: std::pin::Pin<&mut F>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.0.poll_timed(fut, cx)
    }

    /// The request was served (any answer but a server-side failure, as go-zero counts): its
    /// response time teaches the shedder the process's capacity.
    pub fn pass(self) {
        self.0.pass();
    }

    /// The request failed on the server's side (5xx, or the gRPC codes that mean the same):
    /// it only leaves the in-flight count.
    pub fn fail(self) {
        self.0.fail();
    }

    /// [`pass`](Admission::pass) unless `server_failure`.
    pub fn finish(self, server_failure: bool) {
        if server_failure {
            self.fail();
        } else {
            self.pass();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual(enabled: bool, metrics: Option<Metrics>) -> (AdaptiveLoadShedding, ManualCpu) {
        let cpu = ManualCpu::new(0.0);
        let sources = SheddingSources::Manual {
            cpu: cpu.clone(),
            clock: ManualClock::new(),
        };
        let settings = Settings {
            enabled,
            ..Settings::default()
        };
        (AdaptiveLoadShedding::new(settings, sources, metrics), cpu)
    }

    #[test]
    fn apps_share_one_shedder_and_count_their_decisions() {
        let metrics = Metrics::new().unwrap();
        let (component, cpu) = manual(true, Some(metrics.clone()));
        let http = component.shedder("http").unwrap();
        let again = component.shedder("http").unwrap();
        // With no history the capacity is 10 (1 pass x 1 s / 100 ms): 11 in flight at 95 %.
        cpu.set(0.95);
        let held: Vec<Admission> = (0..11).map(|_| http.admit().unwrap()).collect();
        // The smoothed count, moved by each admission, is 4.8 of the limit's 5.
        assert!(again.admit().is_ok(), "the smoothed count is still low");
        drop(held);
        let text = metrics.render();
        for line in [
            r#"go_example_shedding_decisions_total{app="http",outcome="admitted"} 12"#,
            r#"go_example_shedding_decisions_total{app="http",outcome="dropped"} 0"#,
            "go_example_process_cpu_usage 0.95",
            "go_example_shedding_capacity 10",
            "go_example_shedding_in_flight 0",
            "go_example_shedding_limit 5",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn a_shedder_over_capacity_and_threshold_refuses_with_10015() {
        let (component, cpu) = manual(true, None);
        let shedder = component.shedder("grpc").unwrap();
        cpu.set(0.95);
        let mut held = Vec::new();
        let refused = loop {
            match shedder.admit() {
                Ok(admission) => {
                    // Each request that ends moves the smoothed count towards the held ones.
                    held.push(admission);
                    if held.len() > 40 {
                        held.remove(0).fail();
                    }
                }
                Err(e) => break e,
            }
            assert!(held.len() < 1000, "never refused");
        };
        assert!(matches!(refused, ServiceError::ServerBusy));
        assert_eq!(refused.code().code, 10015);
        assert_eq!(refused.code().status, 503);
    }

    #[test]
    fn off_it_admits_everything_and_registers_nothing() {
        let metrics = Metrics::new().unwrap();
        let (component, cpu) = manual(false, Some(metrics.clone()));
        let shedder = component.shedder("http").unwrap();
        assert!(!shedder.is_enabled());
        cpu.set(1.0);
        let held: Vec<Admission> = (0..1000).map(|_| shedder.admit().unwrap()).collect();
        drop(held);
        let text = metrics.render();
        assert!(!text.contains("go_example_process_cpu_usage"), "{text}");
        assert!(!text.contains(r#"app="http""#), "{text}");
    }
}

//! Prometheus metrics (the `prometheus` crate): one [`Metrics`] per process, built by the
//! assembly and handed to whoever records — the HTTP lifecycle middleware, the auth service,
//! the caches — never a global registry. Rendered in the text exposition format for the
//! metrics listener (`metrics.addr`, on loopback by default, never the public port).

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use serde::Deserialize;

/// The `metrics` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Record metrics and serve them.
    pub enabled: bool,
    /// The metrics listener (`/metrics`); keep it off the public interface.
    pub addr: String,
}

/// Why the metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Request latency buckets, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    logins: IntCounterVec,
    throttled: IntCounterVec,
    cache: IntCounterVec,
}

/// The metrics of one route and method, with its status counters made on first use.
pub struct RouteMetrics {
    labels: [String; 2],
    duration: Histogram,
    requests: IntCounterVec,
    by_status: Vec<(u16, IntCounter)>,
    in_flight: IntGauge,
}

impl RouteMetrics {
    /// A request of this route ended with `status` after `seconds`.
    pub fn finished(&mut self, status: u16, status_text: &str, seconds: f64) {
        self.in_flight.dec();
        self.duration.observe(seconds);
        match self.by_status.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.inc(),
            None => {
                let [route, method] = &self.labels;
                let counter = self.requests.with_label_values(&[
                    route.as_str(),
                    method.as_str(),
                    status_text,
                ]);
                counter.inc();
                self.by_status.push((status, counter));
            }
        }
    }
}

/// The process's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A registry with every metric of the application, and the process collector (resident
    /// memory, CPU seconds, open file descriptors) on Linux.
    ///
    /// # Errors
    /// A metric could not be registered (a bug: names are fixed here).
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("go_example".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from the request head to the response, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let http_in_flight =
            IntGauge::new("http_requests_in_flight", "HTTP requests being served")?;
        let logins = IntCounterVec::new(
            Opts::new("auth_logins_total", "Login attempts by outcome"),
            &["outcome"],
        )?;
        let throttled = IntCounterVec::new(
            Opts::new("auth_throttled_total", "Attempts refused by a throttle"),
            &["throttle"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new("cache_requests_total", "In-process cache lookups"),
            &["cache", "result"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(http_in_flight.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(throttled.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                http_in_flight,
                logins,
                throttled,
                cache,
            }),
        })
    }

    /// A request started.
    pub fn request_started(&self) {
        self.inner.http_in_flight.inc();
    }

    /// A request ended with `status` after `seconds` on `route` (the route's template, such as
    /// `/hello`, never the raw path: paths are unbounded, templates are not).
    pub fn request_finished(&self, route: &str, method: &str, status: &str, seconds: f64) {
        self.inner.http_in_flight.dec();
        self.inner
            .http_requests
            .with_label_values(&[route, method, status])
            .inc();
        self.inner
            .http_duration
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The handles of one route and method, for callers that keep them (the HTTP middleware
    /// keeps one per route and worker, so a request costs no label lookup).
    pub fn route(&self, route: &str, method: &str) -> RouteMetrics {
        RouteMetrics {
            labels: [route.to_owned(), method.to_owned()],
            duration: self.inner.http_duration.with_label_values(&[route, method]),
            requests: self.inner.http_requests.clone(),
            by_status: Vec::new(),
            in_flight: self.inner.http_in_flight.clone(),
        }
    }

    /// A login ended: `success`, `failure` (wrong credentials), `throttled` or `error`.
    pub fn login(&self, outcome: &str) {
        self.inner.logins.with_label_values(&[outcome]).inc();
    }

    /// A throttle (`login`, `registration`) refused an attempt.
    pub fn throttled(&self, throttle: &str) {
        self.inner.throttled.with_label_values(&[throttle]).inc();
    }

    /// A lookup in the in-process cache `cache` hit or missed.
    pub fn cache_lookup(&self, cache: &str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.inner.cache.with_label_values(&[cache, result]).inc();
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail but for invalid metric families, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_rendered_with_their_labels() {
        let m = Metrics::new().unwrap();
        m.request_started();
        m.request_finished("/hello", "GET", "200", 0.002);
        m.login("failure");
        m.throttled("login");
        m.cache_lookup("user", true);
        let text = m.render();
        for line in [
            r#"go_example_http_requests_total{method="GET",route="/hello",status="200"} 1"#,
            r#"go_example_http_request_duration_seconds_bucket{method="GET",route="/hello",le="0.0025"} 1"#,
            "go_example_http_requests_in_flight 0",
            r#"go_example_auth_logins_total{outcome="failure"} 1"#,
            r#"go_example_auth_throttled_total{throttle="login"} 1"#,
            r#"go_example_cache_requests_total{cache="user",result="hit"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        #[cfg(target_os = "linux")]
        assert!(
            text.contains("go_example_process_resident_memory_bytes"),
            "{text}"
        );
    }
}

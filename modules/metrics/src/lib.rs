//! Prometheus metrics (the `prometheus` crate): one [`Metrics`] per process, built by the
//! assembly and handed to whoever records — the HTTP lifecycle middleware, the auth service,
//! the caches, the Redis and MongoDB repositories, the database pools — never a global
//! registry. Rendered in the text exposition format for the metrics listener (`metrics.addr`,
//! on loopback by default, never the public port).
//!
//! Every metric is named and described here; the client crates (`goex-database`,
//! `goex-redis`, `goex-mongo`) know nothing of Prometheus, and this crate knows nothing of
//! them: the assembly hands each recorder the handles it needs ([`CallMetrics`]) and gives the
//! pool collector a closure that reads the pools ([`Metrics::database_pools`]).

mod openmetrics;

use std::sync::Arc;

pub use openmetrics::Exemplar;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// The socket app's metrics listener (its own port: both apps may run on one host).
    pub socket_addr: String,
    /// The gRPC app's metrics listener (its own port, likewise).
    pub grpc_addr: String,
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

/// Buckets of calls to a backing store (a Redis command, a MongoDB operation, a pool
/// checkout), in seconds: 50 µs (a Redis `GET` on loopback) to 10 s.
const CALL_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    logins: IntCounterVec,
    throttled: IntCounterVec,
    sms_budget_half: IntCounter,
    cache: IntCounterVec,
    redis: CallFamily,
    mongodb: CallFamily,
    pool_acquire: CallFamily,
    sms_send: CallFamily,
    jenkins: CallFamily,
    sms_codes: IntCounterVec,
    shedding_decisions: IntCounterVec,
    socket: SocketMetrics,
    rate_limit_store_fallbacks: IntCounterVec,
    rate_limit_decisions: IntCounterVec,
    errors: IntCounterVec,
    grpc_requests: IntCounterVec,
    grpc_duration: HistogramVec,
    breaker_state: IntGaugeVec,
    import_jobs: IntCounterVec,
    import_jobs_running: IntGauge,
    /// The latest sampled request of each latency bucket, by route (tracing on).
    exemplars: openmetrics::Exemplars,
}

/// The socket app's series, resolved once: a message costs one atomic add.
#[derive(Clone, Debug)]
pub struct SocketMetrics {
    connections: IntGauge,
    messages_in: IntCounter,
    messages_out: IntCounter,
    closes: IntCounterVec,
    refusals: IntCounterVec,
    bus_out: IntCounter,
    bus_in: IntCounter,
    bus_dropped: IntCounter,
}

impl SocketMetrics {
    fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let connections = IntGauge::new("socket_connections", "Open WebSocket connections")?;
        let messages = IntCounterVec::new(
            Opts::new(
                "socket_messages_total",
                "WebSocket data messages, by direction (in: from clients, out: to them)",
            ),
            &["direction"],
        )?;
        let closes = IntCounterVec::new(
            Opts::new(
                "socket_closes_total",
                "WebSocket connections ended, by close code (`peer`: the client closed or \
                 vanished; `dropped`: it stopped reading)",
            ),
            &["code"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "socket_refusals_total",
                "Upgrades refused before the handshake, by reason",
            ),
            &["reason"],
        )?;
        let bus = IntCounterVec::new(
            Opts::new(
                "socket_bus_messages_total",
                "Room messages carried between socket app instances (Redis), by direction \
                 (out: published, in: heard from another instance, dropped: a full queue, a \
                 failed publish or an oversized payload)",
            ),
            &["direction"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(closes.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        registry.register(Box::new(bus.clone()))?;
        Ok(Self {
            connections,
            messages_in: messages.with_label_values(&["in"]),
            messages_out: messages.with_label_values(&["out"]),
            closes,
            refusals,
            bus_out: bus.with_label_values(&["out"]),
            bus_in: bus.with_label_values(&["in"]),
            bus_dropped: bus.with_label_values(&["dropped"]),
        })
    }

    /// A connection was upgraded.
    pub fn connected(&self) {
        self.connections.inc();
    }

    /// A connection ended with `code` (`1000`, `1001`, ..., `peer`, `dropped`).
    pub fn closed(&self, code: &str) {
        self.closes.with_label_values(&[code]).inc();
    }

    /// A connection's socket is gone (after its close, and however its task ended).
    pub fn disconnected(&self) {
        self.connections.dec();
    }

    /// A data message arrived.
    pub fn message_in(&self) {
        self.messages_in.inc();
    }

    /// A data message was queued to a client.
    pub fn message_out(&self) {
        self.messages_out.inc();
    }

    /// An upgrade was refused: `capacity`, `per_address`, `anonymous`, `address`, `origin`,
    /// `token` or `not_upgrade`.
    pub fn refused(&self, reason: &str) {
        self.refusals.with_label_values(&[reason]).inc();
    }

    /// A room message was queued for the other instances.
    pub fn bus_out(&self) {
        self.bus_out.inc();
    }

    /// A room message of another instance arrived.
    pub fn bus_in(&self) {
        self.bus_in.inc();
    }

    /// A room message was dropped on its way between instances.
    pub fn bus_dropped(&self) {
        self.bus_dropped.inc();
    }
}

/// A latency histogram and an error counter sharing their first labels (`command`,
/// `operation`, or `node` and `backend`); the counter adds `kind`.
struct CallFamily {
    duration: HistogramVec,
    errors: IntCounterVec,
}

impl CallFamily {
    fn new(
        name: &str,
        duration_help: &str,
        errors_help: &str,
        labels: &[&str],
    ) -> Result<Self, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(format!("{name}_duration_seconds"), duration_help)
                .buckets(CALL_BUCKETS.to_vec()),
            labels,
        )?;
        let with_kind: Vec<&str> = labels.iter().copied().chain(["kind"]).collect();
        let errors = IntCounterVec::new(
            Opts::new(format!("{name}_errors_total"), errors_help),
            &with_kind,
        )?;
        Ok(Self { duration, errors })
    }

    fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.errors.clone()))
    }

    /// The handles of one label set, its error counters made (at 0) for `kinds`.
    fn handles(&self, labels: &[&str], kinds: &[&'static str]) -> CallMetrics {
        let counter = |kind: &str| {
            let mut values = labels.to_vec();
            values.push(kind);
            self.errors.with_label_values(&values)
        };
        CallMetrics {
            duration: self.duration.with_label_values(labels),
            errors: kinds.iter().map(|k| (*k, counter(k))).collect(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            family: self.errors.clone(),
        }
    }
}

/// The handles of one kind of call to a backing store — a Redis command, a MongoDB operation,
/// a checkout from one database pool — looked up once when the recorder is built, so a call
/// costs a histogram observation and, when it fails, a counter increment (no label lookup).
#[derive(Clone)]
pub struct CallMetrics {
    duration: Histogram,
    /// The counters of the error kinds named when the handles were made.
    errors: Vec<(&'static str, IntCounter)>,
    /// For a kind that was not named (a bug, but not worth losing the count).
    labels: Vec<String>,
    family: IntCounterVec,
}

impl CallMetrics {
    /// A call ended after `seconds`, failing with an error of `error` kind or not (`None`).
    /// Failed calls are observed in the histogram too: a call that timed out took that long.
    pub fn observe(&self, seconds: f64, error: Option<&str>) {
        self.duration.observe(seconds);
        if let Some(kind) = error {
            match self.errors.iter().find(|(k, _)| *k == kind) {
                Some((_, counter)) => counter.inc(),
                None => {
                    let mut values: Vec<&str> = self.labels.iter().map(String::as_str).collect();
                    values.push(kind);
                    self.family.with_label_values(&values).inc();
                }
            }
        }
    }
}

/// Awaits `call`, recording its time and its error's kind (`kind` names it) on `metrics` when
/// they are on; without, it is `call.await`.
pub async fn timed<T, E>(
    metrics: Option<&CallMetrics>,
    kind: fn(&E) -> &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let Some(metrics) = metrics else {
        return call.await;
    };
    let started = std::time::Instant::now();
    let result = call.await;
    metrics.observe(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(kind),
    );
    result
}

impl std::fmt::Debug for CallMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CallMetrics").field(&self.labels).finish()
    }
}

/// One database pool's numbers at the instant of a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSample {
    /// Connections open, idle or in use.
    pub size: u64,
    /// Connections checked out.
    pub in_use: u64,
    /// Most connections the pool opens.
    pub max_size: u64,
    /// Callers waiting for a connection.
    pub waiting: u64,
}

/// The pool gauges, read when scraped: a gauge set on every checkout would cost the request
/// path and still be stale between scrapes.
struct PoolCollector {
    families: [IntGaugeVec; 4],
    /// Per node, in `read`'s order: size, in use, max size, waiting.
    nodes: Vec<[IntGauge; 4]>,
    read: Box<dyn Fn() -> Vec<PoolSample> + Send + Sync>,
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.families.iter().flat_map(|f| f.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (gauges, sample) in self.nodes.iter().zip((self.read)()) {
            let values = [sample.size, sample.in_use, sample.max_size, sample.waiting];
            for (gauge, value) in gauges.iter().zip(values) {
                gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
        self.families.iter().flat_map(|f| f.collect()).collect()
    }
}

/// The load shedder's decision counters of one app, resolved once: a decision costs one
/// atomic add.
#[derive(Clone, Debug)]
pub struct SheddingDecisions {
    admitted: IntCounter,
    dropped: IntCounter,
}

impl SheddingDecisions {
    /// Counts one decision.
    pub fn record(&self, admitted: bool) {
        if admitted {
            &self.admitted
        } else {
            &self.dropped
        }
        .inc();
    }
}

/// The gRPC app's per-call series.
#[derive(Clone, Debug)]
pub struct GrpcCallMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl GrpcCallMetrics {
    /// Records a call of `service`/`method` answered with `code` (a gRPC code's name) after
    /// `seconds`.
    pub fn observe(&self, service: &str, method: &str, code: &str, seconds: f64) {
        self.requests
            .with_label_values(&[service, method, code])
            .inc();
        self.duration
            .with_label_values(&[service, method])
            .observe(seconds);
    }
}

/// One breaker's state gauge.
#[derive(Clone, Debug)]
pub struct BreakerStateGauge(IntGauge);

impl BreakerStateGauge {
    /// 0 closed, 1 half-open, 2 open.
    pub fn set(&self, state: i64) {
        self.0.set(state);
    }
}

/// The import jobs' series, resolved once.
#[derive(Clone, Debug)]
pub struct ImportJobMetrics {
    done: IntCounter,
    failed: IntCounter,
    running: IntGauge,
}

impl ImportJobMetrics {
    /// A job started.
    pub fn started(&self) {
        self.running.inc();
    }

    /// A job ended, done or failed.
    pub fn ended(&self, done: bool) {
        self.running.dec();
        if done { &self.done } else { &self.failed }.inc();
    }
}

/// The load shedder's numbers at the instant of a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SheddingSample {
    /// The smoothed CPU reading, 0 to 1.
    pub cpu: f64,
    /// The estimated capacity, in requests in flight.
    pub capacity: f64,
    /// Requests admitted and not yet ended.
    pub in_flight: f64,
    /// The in-flight count over which an overloaded process drops (the capacity scaled for
    /// the CPU reading, at least 1).
    pub limit: f64,
}

/// The shedder's gauges, read when scraped (the sampler publishes every 250 ms; a scrape
/// reads the latest, and the requests pay nothing for it).
struct SheddingCollector {
    /// `process_cpu_usage`, `shedding_capacity`, `shedding_in_flight`, `shedding_limit`.
    gauges: [prometheus::Gauge; 4],
    read: Box<dyn Fn() -> Option<SheddingSample> + Send + Sync>,
}

impl Collector for SheddingCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges.iter().flat_map(Collector::desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(sample) = (self.read)() else {
            return Vec::new();
        };
        let values = [sample.cpu, sample.capacity, sample.in_flight, sample.limit];
        for (gauge, value) in self.gauges.iter().zip(values) {
            gauge.set(value);
        }
        self.gauges.iter().flat_map(Collector::collect).collect()
    }
}

/// The metrics of one route and method, with its status counters made on first use.
pub struct RouteMetrics {
    labels: [String; 2],
    duration: Histogram,
    /// Its latency buckets' exemplars, made on the first sampled request.
    exemplars: Option<Arc<openmetrics::RouteExemplars>>,
    /// Where they are made.
    metrics: Metrics,
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

    /// Keeps the ids of a sampled request that took `seconds` as the exemplar of its latency
    /// bucket (the latest one of each bucket is kept and scraped in OpenMetrics).
    pub fn exemplify(&mut self, seconds: f64, ids: Exemplar) {
        let [route, method] = &self.labels;
        self.exemplars
            .get_or_insert_with(|| self.metrics.inner.exemplars.of(route, method))
            .keep(seconds, ids);
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
        let sms_budget_half = IntCounter::with_opts(Opts::new(
            "sms_budget_half_spent_total",
            "Windows of sms.total_window in which half of sms.max_total was spent",
        ))?;
        registry.register(Box::new(sms_budget_half.clone()))?;
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
        let redis = CallFamily::new(
            "redis_command",
            "Time of a Redis command (or script, or MULTI pipeline), failed ones included",
            "Redis commands that failed, by kind",
            &["command"],
        )?;
        let mongodb = CallFamily::new(
            "mongodb_operation",
            "Time of a MongoDB operation, failed ones included",
            "MongoDB operations that failed, by kind",
            &["operation"],
        )?;
        let pool_acquire = CallFamily::new(
            "database_pool_acquire",
            "Time to check a connection out of a database pool, or to give up",
            "Checkouts from a database pool that failed, by kind",
            &["node", "backend"],
        )?;
        let sms_send = CallFamily::new(
            "sms_send",
            "Time of one SMS send through the provider, failed ones included",
            "SMS sends that failed, by kind",
            &["provider"],
        )?;
        let jenkins = CallFamily::new(
            "jenkins_request",
            "Time of one call to Jenkins, failed ones included",
            "Calls to Jenkins that failed, by kind",
            &["operation"],
        )?;
        let sms_codes = IntCounterVec::new(
            Opts::new(
                "sms_code_checks_total",
                "SMS verification codes checked, by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(sms_codes.clone()))?;
        let shedding_decisions = IntCounterVec::new(
            Opts::new(
                "shedding_decisions_total",
                "Requests the adaptive load shedder decided on, by app and outcome (admitted, \
                 dropped)",
            ),
            &["app", "outcome"],
        )?;
        registry.register(Box::new(shedding_decisions.clone()))?;
        for family in [&redis, &mongodb, &pool_acquire, &sms_send, &jenkins] {
            family.register(&registry)?;
        }
        let socket = SocketMetrics::new(&registry)?;
        let rate_limit_store_fallbacks = IntCounterVec::new(
            Opts::new(
                "rate_limit_store_fallbacks_total",
                "Rate-limit spends that Redis did not answer, by rule and by what decided instead \
                 (rate_limit.on_store_error: local, allow or deny)",
            ),
            &["rule", "action"],
        )?;
        registry.register(Box::new(rate_limit_store_fallbacks.clone()))?;
        let rate_limit_decisions = IntCounterVec::new(
            Opts::new(
                "rate_limit_decisions_total",
                "Requests a rate-limit rule decided, by rule and outcome (allowed, refused)",
            ),
            &["rule", "outcome"],
        )?;
        registry.register(Box::new(rate_limit_decisions.clone()))?;
        let errors = IntCounterVec::new(
            Opts::new(
                "errors_total",
                "Answers that carried an error envelope, by its documented code (docs/errors.md)",
            ),
            &["code"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        let grpc_requests = IntCounterVec::new(
            Opts::new(
                "grpc_requests_total",
                "gRPC calls answered by the gRPC app, by service, method and status code \
                 (service and method `-` for a path it does not serve)",
            ),
            &["service", "method", "code"],
        )?;
        let grpc_duration = HistogramVec::new(
            HistogramOpts::new(
                "grpc_request_duration_seconds",
                "Time from a gRPC call's arrival to its answer's head, by service and method",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service", "method"],
        )?;
        registry.register(Box::new(grpc_requests.clone()))?;
        registry.register(Box::new(grpc_duration.clone()))?;
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "breaker_state",
                "The gRPC client's circuit breaker of each method: 0 closed, 1 half-open, 2 open",
            ),
            &["method"],
        )?;
        registry.register(Box::new(breaker_state.clone()))?;
        let import_jobs = IntCounterVec::new(
            Opts::new(
                "import_jobs_total",
                "Excel import jobs ended, by outcome (done, failed)",
            ),
            &["outcome"],
        )?;
        let import_jobs_running =
            IntGauge::new("import_jobs_running", "Excel import jobs running now")?;
        registry.register(Box::new(import_jobs.clone()))?;
        registry.register(Box::new(import_jobs_running.clone()))?;
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
                sms_budget_half,
                cache,
                redis,
                mongodb,
                pool_acquire,
                sms_send,
                jenkins,
                sms_codes,
                shedding_decisions,
                socket,
                rate_limit_store_fallbacks,
                rate_limit_decisions,
                errors,
                grpc_requests,
                grpc_duration,
                breaker_state,
                import_jobs,
                import_jobs_running,
                exemplars: openmetrics::Exemplars::default(),
            }),
        })
    }

    /// Counts an answer carrying the error envelope with `code`.
    pub fn error_code(&self, code: u32) {
        self.inner
            .errors
            .with_label_values(&[code.to_string().as_str()])
            .inc();
    }

    /// The gRPC app's call series.
    pub fn grpc_calls(&self) -> GrpcCallMetrics {
        GrpcCallMetrics {
            requests: self.inner.grpc_requests.clone(),
            duration: self.inner.grpc_duration.clone(),
        }
    }

    /// The state gauge of the client breaker of `method`, set to closed.
    pub fn breaker_state(&self, method: &str) -> BreakerStateGauge {
        let gauge = self.inner.breaker_state.with_label_values(&[method]);
        gauge.set(0);
        BreakerStateGauge(gauge)
    }

    /// The import jobs' series, both present from the start.
    pub fn import_jobs(&self) -> ImportJobMetrics {
        let outcome = |o: &str| self.inner.import_jobs.with_label_values(&[o]);
        ImportJobMetrics {
            done: outcome("done"),
            failed: outcome("failed"),
            running: self.inner.import_jobs_running.clone(),
        }
    }

    /// The socket app's series.
    pub fn socket(&self) -> SocketMetrics {
        self.inner.socket.clone()
    }

    /// The handles of Redis command `command` (a name from the code, such as `get`, never a
    /// key), with error counters for `kinds`.
    pub fn redis_command(&self, command: &str, kinds: &[&'static str]) -> CallMetrics {
        self.inner.redis.handles(&[command], kinds)
    }

    /// The handles of MongoDB operation `operation` (such as `find_one`), with error counters
    /// for `kinds`.
    pub fn mongodb_operation(&self, operation: &str, kinds: &[&'static str]) -> CallMetrics {
        self.inner.mongodb.handles(&[operation], kinds)
    }

    /// The handles of SMS sends through `provider` (`alibaba`, `log`), with error counters
    /// for `kinds`.
    pub fn sms_send(&self, provider: &str, kinds: &[&'static str]) -> CallMetrics {
        self.inner.sms_send.handles(&[provider], kinds)
    }

    /// The handles of Jenkins call `operation` (such as `last_build`), with error counters for
    /// `kinds`.
    pub fn jenkins_request(&self, operation: &str, kinds: &[&'static str]) -> CallMetrics {
        self.inner.jenkins.handles(&[operation], kinds)
    }

    /// An SMS code was checked: `accepted`, `wrong`, `missing` (none, expired or spent) or
    /// `locked` (too many wrong tries).
    pub fn sms_code_checked(&self, outcome: &str) {
        self.inner.sms_codes.with_label_values(&[outcome]).inc();
    }

    /// The load shedder's decision counters of `app` (`http`, `grpc`), both exported from now
    /// on (at 0), so `rate()` sees the first drop.
    pub fn shedding_decisions(&self, app: &str) -> SheddingDecisions {
        let family = &self.inner.shedding_decisions;
        SheddingDecisions {
            admitted: family.with_label_values(&[app, "admitted"]),
            dropped: family.with_label_values(&[app, "dropped"]),
        }
    }

    /// Registers the load shedder's gauges, read from `read` at each scrape:
    /// `process_cpu_usage` (its smoothed CPU reading, 0 to 1, of what this process may use),
    /// `shedding_capacity` (its estimate of the requests it can have in flight),
    /// `shedding_in_flight` (the requests it admitted that have not ended) and `shedding_limit`
    /// (the in-flight count over which it drops when overloaded). `read` answering `None` (a
    /// shedder that is off) leaves them out.
    ///
    /// # Errors
    /// The gauges are registered already (one shedder per registry).
    pub fn shedding_state(
        &self,
        read: impl Fn() -> Option<SheddingSample> + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        let cpu = prometheus::Gauge::new(
            "process_cpu_usage",
            "The load shedder's smoothed CPU reading: this process's CPU time over the CPUs it \
             may use (affinity, cgroup quota), 0 to 1",
        )?;
        let capacity = prometheus::Gauge::new(
            "shedding_capacity",
            "The load shedder's estimate of the requests this process can have in flight \
             (best passes per bucket x lowest response time), before scaling for the CPU",
        )?;
        let in_flight = prometheus::Gauge::new(
            "shedding_in_flight",
            "Requests the load shedder admitted that have not ended",
        )?;
        let limit = prometheus::Gauge::new(
            "shedding_limit",
            "The in-flight count over which the load shedder drops when overloaded: its \
             capacity estimate scaled for the CPU reading, at least 1",
        )?;
        self.inner.registry.register(Box::new(SheddingCollector {
            gauges: [cpu, capacity, in_flight, limit],
            read: Box::new(read),
        }))?;
        Ok(())
    }

    /// Registers the pool gauges of a database's `nodes` (their labels, such as `primary` or
    /// `db2:3306`) on `backend`: `read` is called at every scrape and returns each node's
    /// numbers in the order of `nodes`. Returns each node's checkout handles, with error
    /// counters for `kinds`.
    ///
    /// # Errors
    /// The pools of a database were registered already on this registry.
    pub fn database_pools(
        &self,
        backend: &str,
        nodes: &[String],
        kinds: &[&'static str],
        read: impl Fn() -> Vec<PoolSample> + Send + Sync + 'static,
    ) -> Result<Vec<CallMetrics>, MetricsError> {
        let gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["node", "backend"]);
        let families = [
            gauge(
                "database_pool_connections",
                "Connections a database pool holds open, idle or in use",
            )?,
            gauge(
                "database_pool_connections_in_use",
                "Connections checked out of a database pool",
            )?,
            gauge(
                "database_pool_max_connections",
                "Most connections a database pool opens",
            )?,
            gauge(
                "database_pool_waiting",
                "Callers waiting for a connection of a database pool",
            )?,
        ];
        let per_node = nodes
            .iter()
            .map(|node| {
                families
                    .clone()
                    .map(|f| f.with_label_values(&[node, backend]))
            })
            .collect();
        self.inner.registry.register(Box::new(PoolCollector {
            families,
            nodes: per_node,
            read: Box::new(read),
        }))?;
        Ok(nodes
            .iter()
            .map(|node| {
                self.inner
                    .pool_acquire
                    .handles(&[node.as_str(), backend], kinds)
            })
            .collect())
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
            exemplars: None,
            metrics: self.clone(),
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

    /// Half of the global SMS budget was spent in its window (a warning: pumping, or a budget
    /// too small for the traffic).
    pub fn sms_budget_half_spent(&self) {
        self.inner.sms_budget_half.inc();
    }

    /// The hit and miss counters of the in-process cache `cache`, resolved once, for a cache
    /// looked up on every request (no label lookup per request).
    pub fn cache_lookups(&self, cache: &str) -> CacheLookups {
        CacheLookups {
            hit: self.inner.cache.with_label_values(&[cache, "hit"]),
            miss: self.inner.cache.with_label_values(&[cache, "miss"]),
        }
    }

    /// A lookup in the in-process cache `cache` hit or missed.
    pub fn cache_lookup(&self, cache: &str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.inner.cache.with_label_values(&[cache, result]).inc();
    }

    /// Redis did not answer a spend of rate-limit rule `rule` (a name from config) and
    /// Makes the fallback series of `rule` and `action` present at 0.
    pub fn rate_limit_store_fallback_series(&self, rule: &str, action: &str) {
        let _ = self
            .inner
            .rate_limit_store_fallbacks
            .with_label_values(&[rule, action]);
    }

    /// `action` (`local`, `allow` or `deny`) decided instead.
    pub fn rate_limit_store_fallback(&self, rule: &str, action: &str) {
        self.inner
            .rate_limit_store_fallbacks
            .with_label_values(&[rule, action])
            .inc();
    }

    /// The `rate_limit_decisions_total` series of one rule, resolved once (a decision costs
    /// one atomic add).
    pub fn rate_limit_decisions(&self, rule: &str) -> RateLimitDecisions {
        let family = &self.inner.rate_limit_decisions;
        RateLimitDecisions {
            allowed: family.with_label_values(&[rule, "allowed"]),
            refused: family.with_label_values(&[rule, "refused"]),
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail but for invalid metric families, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Every metric in the OpenMetrics 1.0 text format, with the latency histogram's trace
    /// exemplars (`application/openmetrics-text; version=1.0.0`, which Prometheus asks for
    /// first).
    pub fn render_openmetrics(&self) -> String {
        openmetrics::to_openmetrics(&self.render(), &self.inner.exemplars)
    }
}

/// `cache_requests_total` of one cache (see [`Metrics::cache_lookups`]).
#[derive(Clone)]
pub struct CacheLookups {
    hit: IntCounter,
    miss: IntCounter,
}

impl CacheLookups {
    /// Counts one lookup.
    pub fn record(&self, hit: bool) {
        if hit { &self.hit } else { &self.miss }.inc();
    }
}

/// `rate_limit_decisions_total` of one rule (see [`Metrics::rate_limit_decisions`]).
#[derive(Clone, Debug)]
pub struct RateLimitDecisions {
    allowed: IntCounter,
    refused: IntCounter,
}

impl RateLimitDecisions {
    /// Counts one decision.
    pub fn record(&self, allowed: bool) {
        if allowed {
            &self.allowed
        } else {
            &self.refused
        }
        .inc();
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
        let socket = m.socket();
        socket.connected();
        socket.message_in();
        socket.closed("1001");
        socket.disconnected();
        socket.refused("origin");
        let text = m.render();
        for line in [
            r#"go_example_http_requests_total{method="GET",route="/hello",status="200"} 1"#,
            r#"go_example_http_request_duration_seconds_bucket{method="GET",route="/hello",le="0.0025"} 1"#,
            "go_example_http_requests_in_flight 0",
            "go_example_socket_connections 0",
            r#"go_example_socket_messages_total{direction="in"} 1"#,
            r#"go_example_socket_closes_total{code="1001"} 1"#,
            r#"go_example_socket_refusals_total{reason="origin"} 1"#,
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

    #[tokio::test]
    async fn calls_are_timed_and_failures_counted_by_kind() {
        let m = Metrics::new().unwrap();
        let get = m.redis_command("get", &["unavailable", "command"]);
        let find = m.mongodb_operation("find_one", &["unavailable"]);
        let ok: Result<u8, &str> = timed(Some(&get), |_| "unavailable", async { Ok(1) }).await;
        assert_eq!(ok, Ok(1));
        let failed: Result<u8, &str> = timed(
            Some(&get),
            |e| if *e == "refused" { "command" } else { "x" },
            async { Err("refused") },
        )
        .await;
        assert_eq!(failed, Err("refused"));
        find.observe(0.02, Some("not-named-up-front"));
        // Without handles the call only runs.
        assert_eq!(
            timed(None, |_: &()| "x", async { Ok::<_, ()>(2) }).await,
            Ok(2)
        );
        let text = m.render();
        for line in [
            r#"go_example_redis_command_duration_seconds_count{command="get"} 2"#,
            r#"go_example_redis_command_errors_total{command="get",kind="command"} 1"#,
            // Named kinds are exported from the start, at 0, so rate() sees the first error.
            r#"go_example_redis_command_errors_total{command="get",kind="unavailable"} 0"#,
            r#"go_example_mongodb_operation_duration_seconds_bucket{operation="find_one",le="0.025"} 1"#,
            r#"go_example_mongodb_operation_errors_total{kind="not-named-up-front",operation="find_one"} 1"#,
            r#"go_example_mongodb_operation_errors_total{kind="unavailable",operation="find_one"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn shedding_decisions_and_gauges_are_rendered() {
        use std::sync::Mutex;
        let m = Metrics::new().unwrap();
        let decisions = m.shedding_decisions("http");
        decisions.record(true);
        decisions.record(true);
        decisions.record(false);
        let sample = Arc::new(Mutex::new(Some(SheddingSample {
            cpu: 0.95,
            capacity: 12.5,
            in_flight: 7.0,
            limit: 6.25,
        })));
        let read = {
            let sample = sample.clone();
            move || *sample.lock().unwrap()
        };
        m.shedding_state(read).unwrap();
        let text = m.render();
        for line in [
            r#"go_example_shedding_decisions_total{app="http",outcome="admitted"} 2"#,
            r#"go_example_shedding_decisions_total{app="http",outcome="dropped"} 1"#,
            "go_example_process_cpu_usage 0.95",
            "go_example_shedding_capacity 12.5",
            "go_example_shedding_in_flight 7",
            "go_example_shedding_limit 6.25",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        *sample.lock().unwrap() = None;
        let text = m.render();
        assert!(!text.contains("go_example_process_cpu_usage"), "{text}");
        assert!(
            m.shedding_state(|| None).is_err(),
            "one shedder per registry"
        );
    }

    #[test]
    fn pool_gauges_are_read_at_each_scrape() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let m = Metrics::new().unwrap();
        let in_use = Arc::new(AtomicU64::new(1));
        let read = {
            let in_use = in_use.clone();
            move || {
                let n = in_use.load(Ordering::Relaxed);
                vec![
                    PoolSample {
                        size: 3,
                        in_use: n,
                        max_size: 10,
                        waiting: 0,
                    },
                    PoolSample {
                        size: 1,
                        in_use: 0,
                        max_size: 10,
                        waiting: 2,
                    },
                ]
            }
        };
        let nodes = ["primary".to_owned(), "db2:3306".to_owned()];
        let checkouts = m
            .database_pools("mysql", &nodes, &["timeout", "connect"], read)
            .unwrap();
        assert_eq!(checkouts.len(), 2);
        checkouts[1].observe(3.0, Some("timeout"));
        let text = m.render();
        for line in [
            r#"go_example_database_pool_connections{backend="mysql",node="primary"} 3"#,
            r#"go_example_database_pool_connections_in_use{backend="mysql",node="primary"} 1"#,
            r#"go_example_database_pool_max_connections{backend="mysql",node="db2:3306"} 10"#,
            r#"go_example_database_pool_waiting{backend="mysql",node="db2:3306"} 2"#,
            r#"go_example_database_pool_acquire_errors_total{backend="mysql",kind="timeout",node="db2:3306"} 1"#,
            r#"go_example_database_pool_acquire_errors_total{backend="mysql",kind="connect",node="primary"} 0"#,
            r#"go_example_database_pool_acquire_duration_seconds_count{backend="mysql",node="db2:3306"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        in_use.store(4, Ordering::Relaxed);
        assert!(
            m.render().contains(
                r#"go_example_database_pool_connections_in_use{backend="mysql",node="primary"} 4"#
            ),
            "read again when scraped"
        );
        let again = m.database_pools("mysql", &nodes, &[], Vec::new);
        assert!(again.is_err(), "one database per registry");
    }
}

//! OpenTelemetry tracing for the served apps (docs/tracing.md): the `tracing` section, the
//! tracer provider exporting over OTLP/gRPC through a bounded batch queue, W3C `traceparent` /
//! `tracestate` extraction, and the span context of the request a task serves (a task-local,
//! beside `goex_logging::request`'s request id).
//!
//! Cross-cutting like `goex-metrics`: the edge (middleware, servers) and the assembly use it.
//! Spans are made through the `opentelemetry` API itself (no `tracing-opentelemetry`). The SDK is
//! given everything explicitly (an empty resource builder, the sampler, the batch config) and
//! exports through our own OTLP/gRPC exporter (`exporter.rs`), so the configuration module
//! alone maps `OTEL_*` variables onto `tracing.*`.

mod exporter;
mod settings;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator as _, RandomIdGenerator, Sampler,
    SdkTracer, SdkTracerProvider, SpanExporter, SpanLimits,
};

pub use opentelemetry::KeyValue;
pub use opentelemetry::propagation::Extractor;
pub use opentelemetry::trace::{SpanContext, SpanId, TraceId};
pub use settings::{Protocol, ResourceAttributes, ServiceNames, Settings, parse_attributes};

/// The largest `tracing.queue_size` accepted: the SDK allocates the whole queue at start (a
/// typo of a few zeros would abort the process, or hold gigabytes).
pub const QUEUE_SIZE_MAX: usize = 65_536;

/// The instrumentation scope of every span the project makes.
const SCOPE: &str = "go_example";

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// `tracing.endpoint` is not a URI the gRPC client can use ([`parse_endpoint`]'s message).
    #[error("tracing.endpoint: {0}")]
    Endpoint(String),
    /// `tracing.resource_attributes` cannot be read.
    #[error("tracing.resource_attributes: {0}")]
    ResourceAttributes(String),
    /// The OTLP exporter cannot be built.
    #[error("the OTLP exporter: {0}")]
    Exporter(String),
}

/// Who the spans are from: the resource every span of the process carries.
#[derive(Clone, Copy, Debug)]
pub struct Service<'a> {
    /// `service.name` (`tracing.service_name.<app>`).
    pub name: &'a str,
    /// `service.version`.
    pub version: &'a str,
    /// `deployment.environment.name` (the profile), unless `resource_attributes` names one.
    pub environment: &'a str,
}

/// The process's tracer, or nothing when tracing is off: a cheap clone either way.
#[derive(Clone, Default)]
pub struct Tracing(Option<Arc<Inner>>);

struct Inner {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    trust_incoming: bool,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("on", &self.is_on())
            .finish()
    }
}

impl Tracing {
    /// Tracing off: no span is made, nothing is allocated.
    pub fn off() -> Self {
        Self(None)
    }

    /// The tracer of `settings` for `service`, exporting over OTLP/gRPC; off when
    /// `settings.enabled` is. Connects lazily: a collector that is down fails no start.
    ///
    /// Call it inside the Tokio runtime that serves the app: the gRPC channel's worker runs
    /// there (the SDK's batch thread only hands it requests).
    ///
    /// # Errors
    /// The endpoint or the resource attributes are unusable, or this is not called inside a
    /// Tokio runtime.
    pub fn new(settings: &Settings, service: &Service<'_>) -> Result<Self, TracingError> {
        if !settings.enabled {
            return Ok(Self::off());
        }
        let uri = parse_endpoint(&settings.endpoint).map_err(TracingError::Endpoint)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            TracingError::Exporter("built outside a Tokio runtime (its channel runs there)".into())
        })?;
        // Our own channel and exporter: the connection attempt and the call are bounded by the
        // export timeout, and nothing is read from the environment (no endpoint, headers or
        // compression variables).
        let channel = tonic::transport::Endpoint::from(uri)
            .connect_timeout(settings.export_timeout)
            .timeout(settings.export_timeout)
            .connect_lazy();
        let exporter = exporter::OtlpGrpc::new(channel, runtime, settings.export_timeout);
        Self::with_exporter(settings, service, exporter)
    }

    /// The tracer of `settings` for `service`, handing its spans to `exporter` through the
    /// same bounded batch queue (tests give an exporter that keeps them).
    ///
    /// # Errors
    /// The resource attributes are unusable.
    pub fn with_exporter<E: SpanExporter + 'static>(
        settings: &Settings,
        service: &Service<'_>,
        exporter: E,
    ) -> Result<Self, TracingError> {
        let resource = resource(settings, service)?;
        // Every value given, so the SDK's `OTEL_BSP_*` defaults are never the ones used.
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(settings.queue_size)
            .with_max_export_batch_size(settings.batch_size)
            .with_scheduled_delay(settings.scheduled_delay)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .with_id_generator(RandomIdGenerator::default())
            .with_span_limits(SpanLimits::default())
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer(SCOPE);
        Ok(Self(Some(Arc::new(Inner {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
            trust_incoming: settings.trust_incoming,
            shutdown_timeout: settings.shutdown_timeout,
        }))))
    }

    /// Whether spans are made.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Whether any client's `traceparent` is believed (`tracing.trust_incoming`).
    pub fn trusts_incoming(&self) -> bool {
        self.0.as_ref().is_some_and(|inner| inner.trust_incoming)
    }

    /// Starts the server span of a request, named `name` until [`Span::rename`] (a
    /// static name: nothing is allocated for a span that is not recorded). With `incoming`,
    /// the span continues the W3C trace context in those headers (a missing or malformed
    /// `traceparent` starts a new trace); `None` when tracing is off.
    pub fn server_span(
        &self,
        name: &'static str,
        incoming: Option<&dyn Extractor>,
    ) -> Option<Span> {
        let inner = self.0.as_ref()?;
        let parent = match incoming {
            Some(headers) => {
                use opentelemetry::propagation::TextMapPropagator as _;
                inner.propagator.extract(headers)
            }
            None => Context::new(),
        };
        let span = inner
            .tracer
            .span_builder(Cow::Borrowed(name))
            .with_kind(SpanKind::Server)
            .start_with_context(&inner.tracer, &parent);
        Some(Span(span))
    }

    /// Starts the client span of an outgoing call made while serving `parent` (the request's
    /// span, [`current`]), named `name`: its context goes into the call's metadata
    /// ([`inject_metadata`]) so the callee's server span is its child. `None` when tracing is
    /// off. A call sent again (to another instance) is a new client span.
    pub fn client_span(&self, name: &'static str, parent: &SpanContext) -> Option<Span> {
        let inner = self.0.as_ref()?;
        let parent = Context::new().with_remote_span_context(parent.clone());
        let span = inner
            .tracer
            .span_builder(Cow::Borrowed(name))
            .with_kind(SpanKind::Client)
            .start_with_context(&inner.tracer, &parent);
        Some(Span(span))
    }

    /// Exports the spans still queued and stops the batch thread, within
    /// `tracing.shutdown_timeout`; later spans are not recorded. Called once the server drained.
    ///
    /// # Errors
    /// A message when the last export failed or did not finish in time (the spans are lost).
    pub async fn shutdown(&self) -> Result<(), String> {
        let Some(inner) = self.0.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            inner.provider.shutdown_with_timeout(inner.shutdown_timeout)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }
}

/// Reads `tracing.endpoint` (the configuration's check and the tracer both use it): blanks
/// around it dropped, `http://host[:port]` only, and no user or password in it (the endpoint is
/// logged at start).
///
/// # Errors
/// Why the endpoint is unusable (never repeating a user or password it holds).
pub fn parse_endpoint(endpoint: &str) -> Result<http::Uri, String> {
    let endpoint = endpoint.trim();
    // Before anything repeats the text: `@` has no place in http://host:port but after a user.
    if endpoint.contains('@') {
        return Err(
            "holds a user or password, which is not supported (the endpoint is logged): \
                    send to a collector or agent on a trusted network"
                .to_owned(),
        );
    }
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| format!("`{endpoint}` is not http://host:port ({e})"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(uri),
        Some("https") => Err(format!(
            "`{endpoint}`: TLS to the collector is not supported; send to a collector or agent \
             on a trusted network over http://"
        )),
        _ => Err(format!("`{endpoint}` is not http://host:port")),
    }
}

/// The resource: ours (`service.*`, the environment, the instance), then the configured
/// attributes over them, then `service.name` (which `OTEL_SERVICE_NAME` sets, as the
/// specification gives it precedence).
fn resource(settings: &Settings, service: &Service<'_>) -> Result<Resource, TracingError> {
    let configured = settings
        .resource_attributes
        .parse()
        .map_err(TracingError::ResourceAttributes)?;
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("service.version".to_owned(), service.version.to_owned());
    attributes.insert(
        "deployment.environment.name".to_owned(),
        service.environment.to_owned(),
    );
    let instance = match settings.instance_id.trim() {
        "" => RandomIdGenerator::default().new_trace_id().to_string(),
        id => id.to_owned(),
    };
    attributes.insert("service.instance.id".to_owned(), instance);
    attributes.extend(configured);
    attributes.remove("service.name");
    Ok(Resource::builder_empty()
        .with_attributes(attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .with_service_name(service.name.to_owned())
        .build())
}

/// A span: the server span of one request (named, described and ended by the edge that serves
/// it) or the client span of one outgoing call.
#[derive(Debug)]
pub struct Span(opentelemetry_sdk::trace::Span);

impl Span {
    /// Its ids, for the request's logs, envelope and child spans.
    pub fn context(&self) -> &SpanContext {
        self.0.span_context()
    }

    /// Whether it is recorded (sampled): the only case worth naming and describing it.
    pub fn is_recording(&self) -> bool {
        self.0.is_recording()
    }

    /// Gives it its final name (the route, known once routed).
    pub fn rename(&mut self, name: String) {
        self.0.update_name(name);
    }

    /// Adds attributes.
    pub fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        self.0.set_attributes(attributes);
    }

    /// Marks it failed, with `description` (not shown to clients: an error kind, never
    /// internals).
    pub fn set_error(&mut self, description: impl Into<Cow<'static, str>>) {
        self.0
            .set_status(opentelemetry::trace::Status::error(description));
    }

    /// Ends it now (it would end when dropped).
    pub fn end(mut self) {
        self.0.end();
    }
}

/// Writes `span`'s W3C `traceparent` (and `tracestate`, when it has one) into an outgoing
/// call's metadata, replacing any already there.
pub fn inject_metadata(span: &SpanContext, metadata: &mut tonic::metadata::MetadataMap) {
    use opentelemetry::propagation::TextMapPropagator as _;
    struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);
    impl opentelemetry::propagation::Injector for Metadata<'_> {
        fn set(&mut self, key: &str, value: String) {
            // The propagator's two keys and values are ASCII (W3C's grammar), so neither
            // conversion fails; a value that did would be left out, not sent malformed.
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let cx = Context::new().with_remote_span_context(span.clone());
    TraceContextPropagator::new().inject_context(&cx, &mut Metadata(metadata));
}

/// Header lines by name, as an HTTP library keeps them: implemented here for `http` 1's map
/// (tonic's), and by the HTTP app for actix's own.
pub trait HeaderLines {
    /// The lines named `name` (lower case) that are text, in order.
    fn lines<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a str>;
    /// Every header name.
    fn names(&self) -> Vec<&str>;
}

impl HeaderLines for &http::HeaderMap {
    fn lines<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a str> {
        self.get_all(name).iter().filter_map(|v| v.to_str().ok())
    }

    fn names(&self) -> Vec<&str> {
        self.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The W3C trace context a caller sent, for [`Tracing::server_span`]: `traceparent`, and
/// `tracestate` read as one list when sent on several lines (joined with commas, as W3C Trace
/// Context says; one line is read in place, nothing allocated).
#[derive(Debug)]
pub struct IncomingHeaders<H> {
    headers: H,
    /// `tracestate` when it came on several lines, joined.
    joined_state: Option<String>,
}

impl<H: HeaderLines> IncomingHeaders<H> {
    /// The trace context of `headers` (a borrowed map).
    pub fn new(headers: H) -> Self {
        let joined_state = {
            let mut lines = headers.lines(TRACESTATE);
            match (lines.next(), lines.next()) {
                (Some(_), Some(_)) => Some(headers.lines(TRACESTATE).collect::<Vec<_>>().join(",")),
                _ => None,
            }
        };
        Self {
            headers,
            joined_state,
        }
    }
}

impl<H: HeaderLines> Extractor for IncomingHeaders<H> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.headers.lines(TRACEPARENT).next(),
            TRACESTATE => match &self.joined_state {
                Some(joined) => Some(joined),
                None => self.headers.lines(TRACESTATE).next(),
            },
            // The propagator reads only its two keys.
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.names()
    }
}

/// The W3C header (and metadata key) carrying the caller's span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendors' trace state.
pub const TRACESTATE: &str = "tracestate";

tokio::task_local! {
    static CURRENT: SpanContext;
}

/// Runs `future` with `span` as the current span (the parent of the spans it makes).
pub fn scope<F: Future>(span: SpanContext, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(span, future)
}

/// The span of the request the current task serves, if traced.
pub fn current() -> Option<SpanContext> {
    CURRENT.try_with(SpanContext::clone).ok()
}

#[cfg(test)]
mod tests;

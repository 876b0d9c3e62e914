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

mod encode;
mod exporter;
mod settings;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use opentelemetry::Context;
use opentelemetry::trace::{
    Link, Span as _, TraceContextExt as _, TraceFlags, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator as _, RandomIdGenerator, Sampler,
    SdkTracer, SdkTracerProvider, SpanExporter, SpanLimits,
};

pub use opentelemetry::KeyValue;
pub use opentelemetry::propagation::Extractor;
pub use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceId};
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
    ids: RandomIdGenerator,
    sampler: Ratio,
    trust_incoming: bool,
    shutdown_timeout: Duration,
}

/// The sampling decision, made here before the SDK is asked for a span (docs/tracing.md,
/// "Sampling"): a span whose parent is known follows it; a new trace is kept when its id falls
/// under `tracing.sample_ratio`, as the SDK's `ParentBased(TraceIdRatioBased)` decides. A span
/// that is not kept never reaches the SDK: it is its ids alone ([`Span`]), which is what makes
/// a sampled-out request cheap; the SDK, whose sampler is then `AlwaysOn`, builds only the
/// spans that are recorded.
#[derive(Clone, Copy, Debug)]
struct Ratio {
    /// A new trace is kept when the low 63 bits of its id's last 8 bytes are under this (the
    /// SDK's rule); `None`: every one (ratio 1).
    bound: Option<u64>,
}

impl Ratio {
    fn new(ratio: f64) -> Self {
        Self {
            // The SDK's `sample_based_on_probability`, to the bit.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            bound: (ratio < 1.0).then(|| (ratio.max(0.0) * (1u64 << 63) as f64) as u64),
        }
    }

    /// Whether a new trace with id `trace_id` is kept.
    fn keeps(self, trace_id: TraceId) -> bool {
        let Some(bound) = self.bound else {
            return true;
        };
        let bytes = trace_id.to_bytes();
        let mut low = [0u8; 8];
        low.copy_from_slice(&bytes[8..]);
        (u64::from_be_bytes(low) >> 1) < bound
    }
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
            // Sampling is decided before a span reaches the SDK (`Ratio`).
            .with_sampler(Sampler::AlwaysOn)
            .with_id_generator(RandomIdGenerator::default())
            .with_span_limits(SpanLimits::default())
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer(SCOPE);
        Ok(Self(Some(Arc::new(Inner {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
            ids: RandomIdGenerator::default(),
            sampler: Ratio::new(settings.sample_ratio),
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
        Some(inner.start(name, SpanKind::Server, &parent, None))
    }

    /// Starts the span of work that begins a trace of its own though it belongs with another
    /// (a socket message and its connection's upgrade, a progress push and its import's
    /// request): linked to `link` when it is a valid span, kept by `tracing.sample_ratio` as any
    /// new trace is (a link does not decide sampling). `None` when tracing is off.
    pub fn linked_span(
        &self,
        name: &'static str,
        kind: SpanKind,
        link: Option<&SpanContext>,
    ) -> Option<Span> {
        let inner = self.0.as_ref()?;
        Some(inner.start(name, kind, &Context::new(), link))
    }

    /// Starts the client span of an outgoing call made while serving `parent` (the request's
    /// span, [`current`]), named `name`: its context goes into the call's metadata
    /// ([`inject_metadata`]) so the callee's server span is its child. `None` when tracing is
    /// off. A call sent again (to another instance) is a new client span.
    pub fn client_span(&self, name: &'static str, parent: &SpanContext) -> Option<Span> {
        let inner = self.0.as_ref()?;
        let parent = Context::new().with_remote_span_context(parent.clone());
        Some(inner.start(name, SpanKind::Client, &parent, None))
    }

    /// The client span of a call made while serving a sampled request ([`current`]), named
    /// `name` until renamed; `None` when tracing is off, outside a request, or when the request
    /// is not sampled (nothing is made for it: a call never starts a trace of its own).
    pub fn call_span(&self, name: &'static str) -> Option<Span> {
        let inner = self.0.as_ref()?;
        let parent = current_sampled()?;
        let parent = Context::new().with_remote_span_context(parent);
        Some(inner.start(name, SpanKind::Client, &parent, None))
    }

    /// Awaits `call` inside a client span ([`Tracing::call_span`]) that `describe` names and
    /// describes; a failed call marks it with `kind` of its error ([`Span::fail`]). With no
    /// span to make, `call` is awaited as it is.
    ///
    /// # Errors
    /// `call`'s.
    pub async fn traced<T, E>(
        &self,
        name: &'static str,
        describe: impl FnOnce(&mut Span),
        kind: impl FnOnce(&E) -> &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let Some(mut span) = self.call_span(name) else {
            return call.await;
        };
        describe(&mut span);
        let result = call.await;
        if let Err(error) = &result {
            span.fail(kind(error));
        }
        span.end();
        result
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

impl Inner {
    /// A span of `kind` named `name`, child of `parent`'s span when it has a valid one (and
    /// linked to `link` when valid): recorded by the SDK when kept ([`Ratio`]), else its ids
    /// alone.
    fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: &Context,
        link: Option<&SpanContext>,
    ) -> Span {
        let parent_span = parent.span();
        let known = parent_span.span_context();
        let (trace_id, trace_state, kept) = if known.is_valid() {
            (
                known.trace_id(),
                known.trace_state().clone(),
                known.is_sampled(),
            )
        } else {
            let trace_id = self.ids.new_trace_id();
            (trace_id, TraceState::NONE, self.sampler.keeps(trace_id))
        };
        if !kept {
            return Span(Kind::Unrecorded(SpanContext::new(
                trace_id,
                self.ids.new_span_id(),
                TraceFlags::default(),
                false,
                trace_state,
            )));
        }
        // A new trace gets the SDK's own id: the decision above was made on a draw of the same
        // generator, so the share kept is the ratio.
        let mut builder = self
            .tracer
            .span_builder(Cow::Borrowed(name))
            .with_kind(kind);
        if let Some(link) = link.filter(|link| link.is_valid()) {
            builder = builder.with_links(vec![Link::with_context(link.clone())]);
        }
        let span = builder.start_with_context(&self.tracer, parent);
        Span(Kind::Recorded(Box::new(span)))
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
///
/// A span that is not kept (sampled out) is its ids only: naming, describing and ending it
/// cost nothing.
#[derive(Debug)]
pub struct Span(Kind);

#[derive(Debug)]
enum Kind {
    /// Boxed: the SDK's span is large, and a span that is not kept should be no bigger than
    /// its ids (it is moved about with the request).
    Recorded(Box<opentelemetry_sdk::trace::Span>),
    Unrecorded(SpanContext),
}

impl Span {
    /// Its ids, for the request's logs, envelope and child spans.
    pub fn context(&self) -> &SpanContext {
        match &self.0 {
            Kind::Recorded(span) => span.span_context(),
            Kind::Unrecorded(context) => context,
        }
    }

    /// Whether it is recorded (sampled): the only case worth naming and describing it.
    pub fn is_recording(&self) -> bool {
        match &self.0 {
            Kind::Recorded(span) => span.is_recording(),
            Kind::Unrecorded(_) => false,
        }
    }

    /// Gives it its final name (the route, known once routed).
    pub fn rename(&mut self, name: String) {
        if let Kind::Recorded(span) = &mut self.0 {
            span.update_name(name);
        }
    }

    /// Adds attributes.
    pub fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        if let Kind::Recorded(span) = &mut self.0 {
            span.set_attributes(attributes);
        }
    }

    /// Marks it failed, with `description` (not shown to clients: an error kind, never
    /// internals).
    pub fn set_error(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Kind::Recorded(span) = &mut self.0 {
            span.set_status(opentelemetry::trace::Status::error(description));
        }
    }

    /// Marks a call's span failed with its error's kind (`error.type` and the status; never
    /// the error's text, which may quote a statement or a value).
    pub fn fail(&mut self, kind: impl Into<Cow<'static, str>>) {
        if let Kind::Recorded(span) = &mut self.0 {
            let kind = kind.into();
            span.set_attribute(KeyValue::new("error.type", kind.clone()));
            span.set_status(opentelemetry::trace::Status::error(kind));
        }
    }

    /// `server.address` and `server.port` of a call to `server` (`host:port`, or a host alone).
    pub fn set_server(&mut self, server: &str) {
        if !self.is_recording() {
            return;
        }
        let (host, port) = match server.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => (host, port.parse::<i64>().ok()),
            _ => (server, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.set_attributes([KeyValue::new("server.address", host.to_owned())]);
        if let Some(port) = port {
            self.set_attributes([KeyValue::new("server.port", port)]);
        }
    }

    /// Ends it now (it would end when dropped).
    pub fn end(mut self) {
        if let Kind::Recorded(span) = &mut self.0 {
            span.end();
        }
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

/// The W3C `traceparent` value of `span` (`00-<trace id>-<span id>-<flags>`), to keep with
/// work that outlives its request (an import job's row) and link to later
/// ([`parse_traceparent`]).
pub fn traceparent(span: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        span.trace_id(),
        span.span_id(),
        span.trace_flags().to_u8()
    )
}

/// The span of a kept `traceparent` value ([`traceparent`]), read as the W3C propagator reads
/// the header; `None` when it is malformed or names no valid span.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    use opentelemetry::propagation::TextMapPropagator as _;
    struct One<'a>(&'a str);
    impl Extractor for One<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == TRACEPARENT).then_some(self.0)
        }
        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT]
        }
    }
    let cx = TraceContextPropagator::new().extract(&One(value));
    let span = cx.span().span_context().clone();
    span.is_valid().then_some(span)
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
    /// The current span when it carries a vendor trace state (which the request's ids do not).
    static CURRENT: SpanContext;
}

/// The scope of the request `id` served by `span`, for [`serve`]: its records carry the span's
/// ids beside the request id.
pub fn request_scope(id: &str, span: &SpanContext) -> goex_logging::request::RequestScope {
    goex_logging::request::RequestScope::traced(
        id,
        &goex_logging::request::TraceIds {
            trace_id: span.trace_id().to_bytes(),
            span_id: span.span_id().to_bytes(),
            sampled: span.is_sampled(),
        },
    )
}

/// Runs `future` as the request of `scope` ([`request_scope`]) served by `span`: `span` is the
/// current span (the parent of the spans it makes, [`current`]) and its ids are on every log
/// record made while it runs. One task-local holds both unless the span carries a vendor
/// `tracestate` (rare: only from a believed caller that sent one), which takes a second.
pub fn serve<F: Future>(
    scope: goex_logging::request::RequestScope,
    span: &SpanContext,
    future: F,
) -> Either<impl Future<Output = F::Output> + use<F>, impl Future<Output = F::Output> + use<F>> {
    if *span.trace_state() == TraceState::NONE {
        Either::Left(goex_logging::request::scope(scope, future))
    } else {
        Either::Right(goex_logging::request::scope(
            scope,
            CURRENT.scope(span.clone(), future),
        ))
    }
}

/// The span of the request the current task serves, if traced ([`serve`]).
pub fn current() -> Option<SpanContext> {
    if let Ok(span) = CURRENT.try_with(SpanContext::clone) {
        return Some(span);
    }
    let ids = goex_logging::request::current_trace()?;
    Some(SpanContext::new(
        TraceId::from_bytes(ids.trace_id),
        SpanId::from_bytes(ids.span_id),
        if ids.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        false,
        TraceState::NONE,
    ))
}

/// [`current`] when it is sampled: the parent of a call's span. A request that is not sampled
/// answers `None` without its ids being read.
fn current_sampled() -> Option<SpanContext> {
    if let Ok(span) = CURRENT.try_with(SpanContext::clone) {
        return span.is_sampled().then_some(span);
    }
    if !goex_logging::request::current_is_sampled() {
        return None;
    }
    current()
}

#[cfg(test)]
mod tests;

//! The tracer against exporters that keep what they are given, or hold it until released.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, Status, TraceFlags};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SpanData;

use super::*;

/// Keeps every exported span.
#[derive(Clone, Debug, Default)]
struct Keep(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// A collector slower than the spans come: each export waits until the gate opens (the SDK's
/// batch thread with it); counts the spans it is given and says when its first export began.
#[derive(Debug)]
struct Held {
    entered: Mutex<Option<mpsc::Sender<()>>>,
    gate: Arc<Gate>,
}

#[derive(Debug, Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    received: AtomicUsize,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl Held {
    fn new(entered: mpsc::Sender<()>) -> (Self, Arc<Gate>) {
        let gate = Arc::new(Gate::default());
        let held = Self {
            entered: Mutex::new(Some(entered)),
            gate: gate.clone(),
        };
        (held, gate)
    }
}

impl SpanExporter for Held {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.gate.received.fetch_add(batch.len(), Ordering::SeqCst);
        if let Some(entered) = self.entered.lock().unwrap().take() {
            let _ = entered.send(());
        }
        let mut open = self.gate.open.lock().unwrap();
        while !*open {
            open = self.gate.opened.wait(open).unwrap();
        }
        Ok(())
    }
}

fn settings(ratio: f64) -> Settings {
    Settings {
        enabled: true,
        endpoint: "http://127.0.0.1:4317".into(),
        protocol: Protocol::Grpc,
        sample_ratio: ratio,
        service_name: ServiceNames {
            http: "go_example-http".into(),
            grpc: "go_example-grpc".into(),
            socket: "go_example-socket".into(),
        },
        resource_attributes: ResourceAttributes::Map(BTreeMap::from([(
            "service.namespace".into(),
            "shop".into(),
        )])),
        instance_id: "i-1".into(),
        export_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(2),
        batch_size: 8,
        queue_size: 16,
        scheduled_delay: Duration::from_secs(60),
        trust_incoming: false,
    }
}

const SERVICE: Service<'static> = Service {
    name: "go_example-http",
    version: "1.2.3",
    environment: "test",
};

struct Headers(HashMap<&'static str, &'static str>);

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).copied()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().copied().collect()
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> Headers {
    let value: &'static str = format!("00-{TRACE}-{PARENT}-{flags}").leak();
    Headers(HashMap::from([
        ("traceparent", value),
        ("tracestate", "vendor=1"),
    ]))
}

#[tokio::test(flavor = "multi_thread")]
async fn off_makes_no_span() {
    let tracing = Tracing::new(
        &Settings {
            enabled: false,
            ..settings(1.0)
        },
        &SERVICE,
    )
    .unwrap();
    assert!(!tracing.is_on());
    assert!(tracing.server_span("GET", None).is_none());
    assert!(current().is_none());
    tracing.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sampled_span_continues_the_incoming_trace_and_is_exported_with_its_resource() {
    let kept = Keep::default();
    let tracing = Tracing::with_exporter(&settings(1.0), &SERVICE, kept.clone()).unwrap();
    let mut span = tracing
        .server_span("GET", Some(&traceparent("01")))
        .unwrap();
    assert!(span.is_recording());
    let cx = span.context().clone();
    assert_eq!(cx.trace_id().to_string(), TRACE);
    assert_eq!(cx.trace_state().header(), "vendor=1");
    span.rename("GET /hello".into());
    span.set_attributes([KeyValue::new("http.response.status_code", 500_i64)]);
    span.set_error("500");
    span.end();
    tracing.shutdown().await.unwrap();
    let spans = kept.0.lock().unwrap();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span.name, "GET /hello");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.span_context, cx);
    assert_eq!(span.parent_span_id.to_string(), PARENT);
    assert!(span.parent_span_is_remote);
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(span.instrumentation_scope.name(), "go_example");
    assert!(
        span.attributes
            .contains(&KeyValue::new("http.response.status_code", 500_i64))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_span_is_the_parent_the_callee_continues_from_the_call_metadata() {
    let kept = Keep::default();
    let tracing = Tracing::with_exporter(&settings(1.0), &SERVICE, kept.clone()).unwrap();
    let server = tracing
        .server_span("GET", Some(&traceparent("01")))
        .unwrap();
    let client = tracing.client_span("hello.HelloService/SayHello", server.context());
    let client = client.unwrap();
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("traceparent", "00-0-0-00".parse().unwrap());
    inject_metadata(client.context(), &mut metadata);
    // Replaced, not added beside the old value.
    assert_eq!(metadata.get_all("traceparent").iter().count(), 1);
    let headers = metadata.into_headers();
    let callee = tracing
        .server_span("grpc", Some(&IncomingHeaders::new(&headers)))
        .unwrap();
    assert_eq!(callee.context().trace_id().to_string(), TRACE);
    assert_eq!(callee.context().trace_state().header(), "vendor=1");
    let (callee_cx, client_cx, server_cx) = (
        callee.context().clone(),
        client.context().clone(),
        server.context().clone(),
    );
    callee.end();
    client.end();
    server.end();
    tracing.shutdown().await.unwrap();
    let spans = kept.0.lock().unwrap();
    let of = |cx: &SpanContext| spans.iter().find(|s| &s.span_context == cx).unwrap();
    assert_eq!(of(&client_cx).span_kind, SpanKind::Client);
    assert_eq!(of(&client_cx).parent_span_id, server_cx.span_id());
    assert_eq!(of(&callee_cx).parent_span_id, client_cx.span_id());
    assert_eq!(of(&server_cx).parent_span_id.to_string(), PARENT);
}

#[test]
fn tracestate_on_several_lines_is_read_as_one_list() {
    let mut headers = http::HeaderMap::new();
    headers.append(TRACESTATE, http::HeaderValue::from_static("a=1"));
    headers.append(TRACESTATE, http::HeaderValue::from_static("b=2,c=3"));
    headers.insert(TRACEPARENT, http::HeaderValue::from_static("00-x"));
    let incoming = IncomingHeaders::new(&headers);
    assert_eq!(incoming.get(TRACESTATE), Some("a=1,b=2,c=3"));
    assert_eq!(incoming.get(TRACEPARENT), Some("00-x"));
    let mut one = http::HeaderMap::new();
    one.insert(TRACESTATE, http::HeaderValue::from_static("a=1"));
    let incoming = IncomingHeaders::new(&one);
    assert_eq!(incoming.get(TRACESTATE), Some("a=1"));
    assert_eq!(incoming.get(TRACEPARENT), None);
}

#[test]
fn the_resource_holds_the_service_the_environment_and_the_configured_attributes() {
    let configured = Settings {
        resource_attributes: ResourceAttributes::Text(
            "service.namespace=shop,service.name=not%20this".into(),
        ),
        ..settings(1.0)
    };
    let resource = resource(&configured, &SERVICE).unwrap();
    let get = |key: &'static str| resource.get(&opentelemetry::Key::from_static_str(key));
    assert_eq!(get("service.name").unwrap().as_str(), "go_example-http");
    assert_eq!(get("service.version").unwrap().as_str(), "1.2.3");
    assert_eq!(get("deployment.environment.name").unwrap().as_str(), "test");
    assert_eq!(get("service.instance.id").unwrap().as_str(), "i-1");
    assert_eq!(get("service.namespace").unwrap().as_str(), "shop");
    // No detector ran: nothing from the process or the environment.
    assert_eq!(resource.len(), 5, "{resource:?}");
    let generated = super::resource(
        &Settings {
            instance_id: String::new(),
            ..settings(1.0)
        },
        &SERVICE,
    )
    .unwrap();
    let id = generated
        .get(&opentelemetry::Key::from_static_str("service.instance.id"))
        .unwrap();
    assert_eq!(id.as_str().len(), 32, "a random id: {id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ratio_zero_makes_ids_but_exports_nothing() {
    let kept = Keep::default();
    let tracing = Tracing::with_exporter(&settings(0.0), &SERVICE, kept.clone()).unwrap();
    let span = tracing.server_span("GET", None).unwrap();
    assert!(!span.is_recording());
    assert!(
        span.context().is_valid(),
        "logs and envelopes still get ids"
    );
    assert!(!span.context().is_sampled());
    span.end();
    tracing.shutdown().await.unwrap();
    assert!(kept.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sampling_follows_the_parent() {
    let kept = Keep::default();
    // Ratio 1, but the caller did not sample: neither do we.
    let tracing = Tracing::with_exporter(&settings(1.0), &SERVICE, kept.clone()).unwrap();
    let span = tracing
        .server_span("GET", Some(&traceparent("00")))
        .unwrap();
    assert!(!span.is_recording());
    assert_eq!(span.context().trace_id().to_string(), TRACE);
    // Ratio 0, but the caller sampled: so do we.
    let tracing0 = Tracing::with_exporter(&settings(0.0), &SERVICE, kept.clone()).unwrap();
    let span0 = tracing0
        .server_span("GET", Some(&traceparent("01")))
        .unwrap();
    assert!(span0.is_recording());
    assert_eq!(span0.context().trace_flags(), TraceFlags::SAMPLED);
}

#[test]
fn a_new_trace_is_kept_as_the_sdks_ratio_sampler_decides() {
    use opentelemetry_sdk::trace::ShouldSample as _;
    let ids = RandomIdGenerator::default();
    for ratio in [0.0, 1e-9, 0.1, 0.5, 0.999_999, 1.0, 2.0, -1.0] {
        let ours = Ratio::new(ratio);
        let sdk = Sampler::TraceIdRatioBased(ratio);
        let mut kept = 0;
        for _ in 0..20_000 {
            let id = ids.new_trace_id();
            let theirs = sdk.should_sample(None, id, "GET", &SpanKind::Server, &[], &[]);
            let sampled = matches!(
                theirs.decision,
                opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
            );
            assert_eq!(ours.keeps(id), sampled, "ratio {ratio}, id {id}");
            kept += usize::from(sampled);
        }
        // The bounds themselves, whatever the ids drawn.
        let edge = |low: u64| {
            let mut bytes = [0u8; 16];
            bytes[8..].copy_from_slice(&low.to_be_bytes());
            TraceId::from_bytes(bytes)
        };
        for low in [
            0,
            1,
            2,
            u64::MAX / 2,
            u64::MAX / 2 + 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let theirs = sdk.should_sample(None, edge(low), "GET", &SpanKind::Server, &[], &[]);
            assert_eq!(
                ours.keeps(edge(low)),
                matches!(
                    theirs.decision,
                    opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
                ),
                "ratio {ratio}, low {low:#x}"
            );
        }
        if ratio == 0.5 {
            assert!((9_000..11_000).contains(&kept), "about half: {kept}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_span_that_is_not_kept_never_reaches_the_sdk_yet_has_ids_and_children() {
    let kept = Keep::default();
    let tracing = Tracing::with_exporter(&settings(0.0), &SERVICE, kept.clone()).unwrap();
    let mut span = tracing.server_span("GET", None).unwrap();
    // Naming, describing and failing it change nothing.
    span.rename("GET /hello".to_owned());
    span.set_attributes([KeyValue::new("http.route", "/hello")]);
    span.set_error("boom");
    assert!(!span.is_recording());
    let context = span.context().clone();
    assert!(context.is_valid() && !context.is_sampled() && !context.is_remote());
    // A child (a gRPC call made while serving it) is in its trace, not kept either.
    let child = tracing
        .client_span("hello.HelloService/SayHello", &context)
        .unwrap();
    assert!(!child.is_recording());
    assert_eq!(child.context().trace_id(), context.trace_id());
    assert_ne!(child.context().span_id(), context.span_id());
    // A believed caller's unsampled trace keeps its trace state.
    let headers = Headers(HashMap::from([
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ),
        ("tracestate", "vendor=value"),
    ]));
    let continued = tracing.server_span("GET", Some(&headers)).unwrap();
    assert_eq!(continued.context().trace_state().header(), "vendor=value");
    span.end();
    child.end();
    continued.end();
    tracing.shutdown().await.unwrap();
    assert!(kept.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let tracing = Tracing::with_exporter(&settings(1.0), &SERVICE, Keep::default()).unwrap();
    for bad in [
        "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let headers = Headers(HashMap::from([("traceparent", bad)]));
        let span = tracing.server_span("GET", Some(&headers)).unwrap();
        assert!(span.context().is_valid(), "{bad}");
        assert_ne!(span.context().trace_id().to_string(), TRACE, "{bad}");
        assert!(span.is_recording(), "a new root at ratio 1: {bad}");
    }
}

/// The names of the SDK's diagnostics (its `tracing` events) made on the test's thread.
#[derive(Clone, Debug, Default)]
struct Diagnostics(Arc<Mutex<Vec<&'static str>>>);

impl ::tracing::Subscriber for Diagnostics {
    fn enabled(&self, _: &::tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &::tracing::span::Attributes<'_>) -> ::tracing::span::Id {
        ::tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &::tracing::span::Id, _: &::tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &::tracing::span::Id, _: &::tracing::span::Id) {}
    fn event(&self, event: &::tracing::Event<'_>) {
        self.0.lock().unwrap().push(event.metadata().name());
    }
    fn enter(&self, _: &::tracing::span::Id) {}
    fn exit(&self, _: &::tracing::span::Id) {}
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_collector_never_blocks_a_span_and_no_more_than_the_queue_is_kept() {
    let configured = settings(1.0);
    let (queue, batch) = (configured.queue_size, configured.batch_size);
    let (entered, exporting) = mpsc::channel();
    let (held, gate) = Held::new(entered);
    let tracing = Tracing::with_exporter(&configured, &SERVICE, held).unwrap();
    let diagnostics = Diagnostics::default();
    let _on_this_thread = ::tracing::subscriber::set_default(diagnostics.clone());
    // A full batch: the batch thread takes it and is stuck exporting it.
    for _ in 0..batch {
        tracing.server_span("GET", None).unwrap().end();
    }
    exporting.recv_timeout(Duration::from_secs(10)).unwrap();
    // Far more than the queue holds while that export never returns: each `end` must drop,
    // not wait, and not keep the span.
    let started = Instant::now();
    for _ in 0..20_000 {
        tracing.server_span("GET", None).unwrap().end();
    }
    let spent = started.elapsed();
    assert!(
        spent < Duration::from_secs(10),
        "{spent:?} for 20,000 spans"
    );
    assert!(
        diagnostics
            .0
            .lock()
            .unwrap()
            .contains(&"BatchSpanProcessor.SpanDroppingStarted"),
        "the drop is reported: {:?}",
        diagnostics.0.lock().unwrap()
    );
    // Released, the collector gets the stuck batch and what the queue kept: nothing more.
    gate.open();
    tracing.shutdown().await.unwrap();
    let received = gate.received.load(Ordering::SeqCst);
    assert!(
        received > batch && received <= queue + batch,
        "{received} spans exported, queue {queue}, batch {batch}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_flush_at_shutdown_gives_up_at_shutdown_timeout_not_export_timeout() {
    let (entered, exporting) = mpsc::channel();
    let tracing = Tracing::with_exporter(
        &Settings {
            export_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_millis(300),
            batch_size: 1,
            ..settings(1.0)
        },
        &SERVICE,
        Held::new(entered).0,
    )
    .unwrap();
    tracing.server_span("GET", None).unwrap().end();
    // The batch thread is stuck in that export (a collector that never answers).
    exporting.recv_timeout(Duration::from_secs(10)).unwrap();
    let started = Instant::now();
    assert!(tracing.shutdown().await.is_err());
    let spent = started.elapsed();
    assert!(
        spent >= Duration::from_millis(300) && spent < Duration::from_secs(5),
        "{spent:?}"
    );
}

#[tokio::test]
async fn the_current_span_is_there_inside_the_request_only_with_its_trace_state() {
    for ratio in [0.0, 1.0] {
        let tracing = Tracing::with_exporter(&settings(ratio), &SERVICE, Keep::default()).unwrap();
        // A span of our own (no trace state): the request's ids alone carry it.
        let span = tracing.server_span("GET", None).unwrap();
        let cx = span.context().clone();
        let seen = serve(request_scope("r-1", &cx), &cx, async {
            tokio::task::yield_now().await;
            (
                current(),
                goex_logging::request::current()
                    .as_deref()
                    .map(str::to_owned),
            )
        })
        .await;
        assert_eq!(seen.0, Some(cx.clone()), "ratio {ratio}");
        assert_eq!(seen.1.as_deref(), Some("r-1"));
        assert_eq!(seen.0.unwrap().is_sampled(), ratio == 1.0);
        assert!(current().is_none());
    }
    // A believed caller's trace state stays with the current span.
    let tracing = Tracing::with_exporter(&settings(1.0), &SERVICE, Keep::default()).unwrap();
    let headers = Headers(HashMap::from([
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=value"),
    ]));
    let span = tracing.server_span("GET", Some(&headers)).unwrap();
    let cx = span.context().clone();
    let seen = serve(request_scope("r-2", &cx), &cx, async { current() })
        .await
        .unwrap();
    assert_eq!(seen, cx);
    assert_eq!(seen.trace_state().header(), "vendor=value");
}

#[test]
fn the_endpoint_is_http_host_port_without_credentials() {
    let uri = parse_endpoint(" http://c:4317 ").unwrap();
    assert_eq!((uri.host(), uri.port_u16()), (Some("c"), Some(4317)));
    for bad in [
        "c:4317",
        "https://c:4317",
        "http://",
        "grpc://c:4317",
        "http://u:p@c:4317",
    ] {
        let message = parse_endpoint(bad).unwrap_err();
        assert!(!message.contains("u:p"), "{bad}: {message}");
    }
}

#[test]
fn settings_read_attributes_as_a_map_or_as_otel_text() {
    let yaml_like = serde_json::json!({
        "enabled": true, "endpoint": "http://c:4317", "protocol": "grpc", "sample_ratio": 0.5,
        "service_name": {"http": "h", "grpc": "g", "socket": "s"},
        "resource_attributes": {"service.namespace": "shop", "replicas": 3},
        "instance_id": "", "export_timeout": "2s", "shutdown_timeout": "3s", "batch_size": 512, "queue_size": 2048,
        "scheduled_delay": "5s", "trust_incoming": false
    });
    let parsed: Settings = serde_json::from_value(yaml_like.clone()).unwrap();
    assert_eq!(parsed.resource_attributes.parse().unwrap()["replicas"], "3");
    assert_eq!(parsed.export_timeout, Duration::from_secs(2));
    let mut text = yaml_like;
    text["resource_attributes"] = "a=1,b=2".into();
    let parsed: Settings = serde_json::from_value(text.clone()).unwrap();
    assert_eq!(parsed.resource_attributes.parse().unwrap().len(), 2);
    // Bad text is read as it is: only a tracer (tracing on) parses it, and refuses it.
    text["resource_attributes"] = "novalue".into();
    let parsed: Settings = serde_json::from_value(text.clone()).unwrap();
    assert!(parsed.resource_attributes.parse().is_err());
    assert!(matches!(
        Tracing::with_exporter(&parsed, &SERVICE, Keep::default()),
        Err(TracingError::ResourceAttributes(_))
    ));
    text["resource_attributes"] = serde_json::json!({"": "x"});
    let parsed: Settings = serde_json::from_value(text.clone()).unwrap();
    assert!(parsed.resource_attributes.parse().is_err());
    text["protocol"] = "http/json".into();
    assert!(serde_json::from_value::<Settings>(text).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linked_span_starts_a_trace_of_its_own_linked_to_a_kept_traceparent() {
    let kept = Keep::default();
    let tracing = Tracing::with_exporter(&settings(1.0), &SERVICE, kept.clone()).unwrap();
    let request = tracing
        .server_span("POST", Some(&traceparent("01")))
        .unwrap();
    // Kept as text with the work (an import job's row), read back later by another process.
    let stored = super::traceparent(request.context());
    assert_eq!(
        stored,
        format!("00-{TRACE}-{}-01", request.context().span_id())
    );
    let link = parse_traceparent(&stored).unwrap();
    assert_eq!(
        (link.trace_id(), link.span_id(), link.is_sampled()),
        (
            request.context().trace_id(),
            request.context().span_id(),
            true
        )
    );
    for malformed in [
        "",
        "00-0-0-00",
        "zz",
        &stored[..40],
        stored.replace("-01", "-0g").as_str(),
    ] {
        assert!(parse_traceparent(malformed).is_none(), "{malformed}");
    }
    let push = tracing
        .linked_span("import progress", SpanKind::Producer, Some(&link))
        .unwrap();
    let unlinked = tracing
        .linked_span("socket text", SpanKind::Server, None)
        .unwrap();
    let (push_cx, unlinked_cx) = (push.context().clone(), unlinked.context().clone());
    assert_ne!(push_cx.trace_id(), link.trace_id(), "a trace of its own");
    push.end();
    unlinked.end();
    request.end();
    tracing.shutdown().await.unwrap();
    let spans = kept.0.lock().unwrap();
    let of = |cx: &SpanContext| spans.iter().find(|s| &s.span_context == cx).unwrap();
    let push = of(&push_cx);
    assert_eq!(push.span_kind, SpanKind::Producer);
    assert_eq!(push.parent_span_id, SpanId::INVALID);
    assert_eq!(push.links.links.len(), 1);
    assert_eq!(push.links.links[0].span_context.trace_id(), link.trace_id());
    assert_eq!(push.links.links[0].span_context.span_id(), link.span_id());
    assert!(of(&unlinked_cx).links.links.is_empty());

    // At ratio 0 a linked span is not kept even when its link was: a link decides nothing.
    let none = Tracing::with_exporter(&settings(0.0), &SERVICE, Keep::default()).unwrap();
    let span = none
        .linked_span("socket text", SpanKind::Server, Some(&link))
        .unwrap();
    assert!(!span.is_recording());
    assert!(
        Tracing::off()
            .linked_span("x", SpanKind::Server, Some(&link))
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_written_by_hand_decodes_to_what_opentelemetry_proto_makes() {
    use opentelemetry::trace::{Event, Link, TraceState};
    use opentelemetry::{Array, InstrumentationScope, StringValue, Value};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    let kept = Keep::default();
    let tracing = Tracing::with_exporter(&settings(1.0), &SERVICE, kept.clone()).unwrap();
    let mut server = tracing
        .server_span("GET", Some(&traceparent("01")))
        .unwrap();
    server.rename("GET /hello".into());
    server.set_attributes([
        KeyValue::new("flag", true),
        KeyValue::new("negative", -7_i64),
        KeyValue::new("big", i64::MAX),
        KeyValue::new("ratio", 0.25),
        KeyValue::new("text", "héllo"),
        KeyValue::new("empty", ""),
        KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("ints", Value::Array(Array::I64(vec![0, -1, 300]))),
        KeyValue::new("floats", Value::Array(Array::F64(vec![1.5, -0.0]))),
        KeyValue::new(
            "strings",
            Value::Array(Array::String(vec![
                StringValue::from("a"),
                StringValue::from(""),
            ])),
        ),
        KeyValue::new("long", "x".repeat(300)),
    ]);
    server.set_error("500");
    let client = tracing.client_span("call", server.context()).unwrap();
    let linked = tracing
        .linked_span("socket text", SpanKind::Server, Some(server.context()))
        .unwrap();
    client.end();
    linked.end();
    server.end();
    tracing.shutdown().await.unwrap();
    let mut spans = kept.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 3);
    // What the project's spans do not use yet, on one of them: events, a link with a trace
    // state and attributes, dropped counts, an OK status, another scope.
    let extra = &mut spans[0];
    extra.events = SpanEvents::default();
    extra.events.events.push(Event::new(
        "retry",
        std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(5),
        vec![KeyValue::new("attempt", 2_i64)],
        1,
    ));
    extra.events.dropped_count = 3;
    extra.links = SpanLinks::default();
    let state = TraceState::from_key_value([("vendor", "1")]).unwrap();
    let remote = SpanContext::new(
        TraceId::from_bytes([7; 16]),
        SpanId::from_bytes([9; 8]),
        TraceFlags::SAMPLED,
        true,
        state,
    );
    extra
        .links
        .links
        .push(Link::new(remote, vec![KeyValue::new("why", "batch")], 4));
    extra.links.dropped_count = 2;
    extra.dropped_attributes_count = 6;
    extra.status = Status::Ok;
    extra.instrumentation_scope = InstrumentationScope::builder("other")
        .with_version("1.2")
        .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
        .with_attributes([KeyValue::new("scope.attr", 1_i64)])
        .build();
    let resource = super::resource(&settings(1.0), &SERVICE).unwrap();

    let ours =
        crate::encode::export_request(&spans, &crate::encode::EncodedResource::new(&resource));
    let decoded = ExportTraceServiceRequest::decode(&ours[..]).expect("valid protobuf");
    let theirs = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(spans, &(&resource).into()),
    };
    assert_eq!(decoded, theirs);
    assert_eq!(
        ours.len(),
        theirs.encoded_len(),
        "no more bytes than prost writes"
    );
}

//! The SDK's own environment variables change nothing: every value they would set is given
//! explicitly (the configuration module alone maps `OTEL_*` onto `tracing.*`). Its own binary,
//! so setting the process environment races no other test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goex_tracing::{
    KeyValue, Protocol, ResourceAttributes, Service, ServiceNames, Settings, Tracing,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Keeps the spans and the resource it is given.
#[derive(Clone, Debug, Default)]
struct Keep {
    spans: Arc<Mutex<Vec<SpanData>>>,
    resource: Arc<Mutex<Option<Resource>>>,
}

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.lock().unwrap().extend(batch);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.resource.lock().unwrap() = Some(resource.clone());
    }
}

#[test]
fn otel_sdk_variables_have_no_effect() {
    let set = [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "1"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
        ("OTEL_BSP_SCHEDULE_DELAY", "1"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "1"),
        ("OTEL_SERVICE_NAME", "from-the-environment"),
        ("OTEL_RESOURCE_ATTRIBUTES", "from.environment=1"),
    ];
    for (name, value) in set {
        // SAFETY: the only test of this binary, before any other thread (runtime, batch
        // thread) exists.
        unsafe { std::env::set_var(name, value) };
    }
    let settings = Settings {
        enabled: true,
        endpoint: "http://127.0.0.1:4317".into(),
        protocol: Protocol::Grpc,
        sample_ratio: 1.0,
        service_name: ServiceNames {
            http: "go_example-http".into(),
            grpc: "go_example-grpc".into(),
            socket: "go_example-socket".into(),
        },
        resource_attributes: ResourceAttributes::Map(BTreeMap::new()),
        instance_id: "i-1".into(),
        export_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(3),
        batch_size: 64,
        queue_size: 64,
        scheduled_delay: Duration::from_secs(60),
        trust_incoming: false,
    };
    let kept = Keep::default();
    let tracing = Tracing::with_exporter(
        &settings,
        &Service {
            name: "go_example-http",
            version: "1",
            environment: "test",
        },
        kept.clone(),
    )
    .unwrap();
    for _ in 0..10 {
        let mut span = tracing.server_span("GET", None).unwrap();
        assert!(span.is_recording(), "OTEL_TRACES_SAMPLER ignored");
        span.set_attributes([
            KeyValue::new("a", 1_i64),
            KeyValue::new("b", 2_i64),
            KeyValue::new("c", 3_i64),
        ]);
        span.end();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(tracing.shutdown()).unwrap();
    let spans = kept.spans.lock().unwrap();
    // Queue and batch size of 1 would have dropped nine of them.
    assert_eq!(spans.len(), 10, "OTEL_BSP_* ignored");
    assert!(
        spans.iter().all(|s| s.attributes.len() == 3),
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT ignored"
    );
    let resource = kept.resource.lock().unwrap().clone().unwrap();
    let get = |key: &'static str| resource.get(&opentelemetry::Key::from_static_str(key));
    assert_eq!(get("service.name").unwrap().as_str(), "go_example-http");
    assert!(get("from.environment").is_none(), "{resource:?}");
}

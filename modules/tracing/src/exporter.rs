//! The OTLP/gRPC span exporter: the SDK's batches sent as `ExportTraceServiceRequest`s
//! (`opentelemetry-proto`'s messages, client and conversion) on our own tonic channel, one try
//! per batch, bounded by `tracing.export_timeout` with the connection attempt included.
//!
//! Ours rather than `opentelemetry-otlp`'s: that one adds the `OTEL_EXPORTER_OTLP_HEADERS`
//! variables to every call and reads the compression variables whatever it is given, and the
//! SDK must read no environment (the configuration module alone maps `OTEL_*` onto `tracing.*`).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tonic::transport::Channel;

/// Sends batches to one OTLP/gRPC receiver.
#[derive(Debug)]
pub(crate) struct OtlpGrpc {
    client: TraceServiceClient<Channel>,
    /// The runtime the channel lives in: the SDK's batch thread runs no runtime of its own, so
    /// each export (and its timer) is run there.
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    /// The provider's resource, converted once.
    resource: ResourceAttributesWithSchema,
}

impl OtlpGrpc {
    /// An exporter on `channel` (lazily connected), whose every export, connection attempt
    /// included, gives up after `timeout`.
    pub(crate) fn new(
        channel: Channel,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Self {
        Self {
            client: TraceServiceClient::new(channel),
            runtime,
            timeout,
            resource: ResourceAttributesWithSchema::default(),
        }
    }
}

impl SpanExporter for OtlpGrpc {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        let mut client = self.client.clone();
        let timeout = self.timeout;
        // Nothing but the message: no metadata from anywhere.
        let call = self.runtime.spawn(async move {
            tokio::time::timeout(timeout, client.export(tonic::Request::new(request))).await
        });
        match call.await {
            Ok(Ok(Ok(answer))) => match answer.into_inner().partial_success {
                Some(partial) if partial.rejected_spans > 0 => {
                    Err(OTelSdkError::InternalFailure(format!(
                        "the receiver rejected {} spans: {}",
                        partial.rejected_spans, partial.error_message
                    )))
                }
                _ => Ok(()),
            },
            Ok(Ok(Err(status))) => Err(OTelSdkError::InternalFailure(format!(
                "the receiver answered {:?}: {}",
                status.code(),
                status.message()
            ))),
            Ok(Err(_elapsed)) => Err(OTelSdkError::Timeout(timeout)),
            Err(stopped) => Err(OTelSdkError::InternalFailure(format!(
                "the runtime stopped the export: {stopped}"
            ))),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

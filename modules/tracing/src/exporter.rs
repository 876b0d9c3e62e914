//! The OTLP/gRPC span exporter: the SDK's batches sent as `ExportTraceServiceRequest`s, written
//! straight from the spans (`encode.rs`) and sent on our own tonic channel, one try per batch,
//! bounded by `tracing.export_timeout` with the connection attempt included. The answer is
//! `opentelemetry-proto`'s message.
//!
//! Ours rather than `opentelemetry-otlp`'s: that one adds the `OTEL_EXPORTER_OTLP_HEADERS`
//! variables to every call and reads the compression variables whatever it is given, and the
//! SDK must read no environment (the configuration module alone maps `OTEL_*` onto `tracing.*`).

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use crate::encode::{EncodedResource, export_request};

/// The method called.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends batches to one OTLP/gRPC receiver.
#[derive(Debug)]
pub(crate) struct OtlpGrpc {
    client: tonic::client::Grpc<Channel>,
    /// The runtime the channel lives in: the SDK's batch thread runs no runtime of its own, so
    /// each export (and its timer) is run there.
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    /// The provider's resource, encoded once.
    resource: EncodedResource,
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
            client: tonic::client::Grpc::new(channel),
            runtime,
            timeout,
            resource: EncodedResource::default(),
        }
    }
}

/// The request as bytes already encoded; the answer decoded by prost.
#[derive(Clone, Copy, Debug, Default)]
struct EncodedCodec;

impl Codec for EncodedCodec {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for EncodedCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for EncodedCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("the answer: {e}")))
    }
}

impl SpanExporter for OtlpGrpc {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let request = export_request(&batch, &self.resource);
        drop(batch);
        let mut client = self.client.clone();
        let timeout = self.timeout;
        // Nothing but the message: no metadata from anywhere.
        let call = self.runtime.spawn(async move {
            tokio::time::timeout(timeout, async move {
                client.ready().await.map_err(|e| {
                    tonic::Status::unavailable(format!("the receiver is not reachable: {e}"))
                })?;
                let path = http::uri::PathAndQuery::from_static(EXPORT);
                client
                    .unary(tonic::Request::new(request), path, EncodedCodec)
                    .await
            })
            .await
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
        self.resource = EncodedResource::new(resource);
    }
}

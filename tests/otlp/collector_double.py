"""An OTLP/gRPC trace receiver for the tracing tests (tests/api/tracing.rs), a stand-in for an
OpenTelemetry collector or Jaeger: it answers TraceService/Export as a collector does and appends
every span received, flattened, as one JSON line to the file named by --out (trace and span ids
in hex, kind and status codes as the OTLP numbers, attributes, the resource and the export call's
metadata as objects).

It prints `LISTENING <port>` once it accepts calls, and stops when its standard input closes
(the test that started it ended). With `--count` it keeps only the number of spans received and
writes it to the file when it stops (the tracing cost benchmark, bench/tracing_cost.py: a
receiver that spends as little as a collector would per span). Run with the venv of tests/api/tracing.rs: grpcio, protobuf
and opentelemetry-proto from PyPI.
"""

import argparse
import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def value(any_value):
    """An OTLP AnyValue as JSON: its scalar, or its text for the composite kinds."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value"):
        return str(getattr(any_value, kind))
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def attributes(key_values):
    return {kv.key: value(kv.value) for kv in key_values}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out, count):
        self.out = out
        self.lock = threading.Lock()
        self.count = 0 if count else None

    def Export(self, request, context):
        if self.count is not None:
            received = sum(len(scope_spans.spans) for resource_spans in request.resource_spans
                           for scope_spans in resource_spans.scope_spans)
            with self.lock:
                self.count += received
            return trace_service_pb2.ExportTraceServiceResponse()
        # The call's text metadata (binary entries skipped), so a test sees what the exporter
        # sent beside the spans.
        metadata = {key: value for key, value in context.invocation_metadata()
                    if not key.endswith("-bin")}
        lines = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        # 1 internal, 2 server, 3 client, 4 producer, 5 consumer
                        "kind": span.kind,
                        # 0 unset, 1 ok, 2 error
                        "status_code": span.status.code,
                        "status_message": span.status.message,
                        "attributes": attributes(span.attributes),
                        "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()}
                                  for l in span.links],
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                        "start_unix_nano": span.start_time_unix_nano,
                        "end_unix_nano": span.end_time_unix_nano,
                        "metadata": metadata,
                    }))
        # One write per export, whole lines only: a reader never parses half a span.
        with self.lock, open(self.out, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the JSON lines file spans are appended to")
    parser.add_argument("--count", action="store_true",
                        help="keep only the number of spans, written to --out at the end")
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    receiver = Receiver(args.out, args.count)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"LISTENING {port}", flush=True)
    sys.stdin.read()
    server.stop(grace=None)
    if receiver.count is not None:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(f"{receiver.count}\n")


if __name__ == "__main__":
    sys.exit(main())

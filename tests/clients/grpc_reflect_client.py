"""A gRPC client not written in Rust (grpcio from PyPI) that knows a service only from the
server's reflection: the tests of `go_example generate resource --grpc` call the generated
service with it.

    python grpc_reflect_client.py PORT CERTS_DIR < calls.json

Dials 127.0.0.1:PORT over TLS trusting CERTS_DIR/ca.crt (server name www.example.com),
presenting CERTS_DIR/client.pem. Standard input is one JSON object:

    {"service": "widget.WidgetService",
     "calls": [{"method": "CreateWidget", "request": {...}, "token": "..."}, ...]}

Each request is built from the message descriptors that reflection hands out (nothing is
generated from the protos), sent with `authorization: <token>` when a call has one, and
answered as {"code": "OK", "reply": {...}} or {"code": "NOT_FOUND", "error_code": "10005"}.
Prints {"calls": [...]} in order. A reply's fields are plain JSON values by name: an unset
optional field is null, 64-bit integers are numbers.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from grpc_tls import secure_channel


def plain(message):
    """The fields of `message` by name, as JSON values."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        repeated = field.is_repeated
        if not repeated and field.has_presence and not message.HasField(field.name):
            out[field.name] = None
        elif field.message_type is not None:
            out[field.name] = [plain(v) for v in value] if repeated else plain(value)
        else:
            out[field.name] = list(value) if repeated else value
    return out


def main():
    port, certs = sys.argv[1], sys.argv[2]
    script = json.load(sys.stdin)
    results = []
    with secure_channel(port, certs) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        service = pool.FindServiceByName(script["service"])
        for call in script["calls"]:
            method = service.FindMethodByName(call["method"])
            request_type = message_factory.GetMessageClass(method.input_type)
            reply_type = message_factory.GetMessageClass(method.output_type)
            stub = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=reply_type.FromString,
            )
            request = json_format.ParseDict(call.get("request", {}), request_type())
            metadata = [("authorization", call["token"])] if call.get("token") else []
            try:
                reply = stub(request, metadata=metadata, timeout=5)
                results.append({"code": "OK", "reply": plain(reply)})
            except grpc.RpcError as e:
                results.append({
                    "code": e.code().name,
                    "error_code": dict(e.trailing_metadata() or ()).get("x-error-code"),
                })
    print(json.dumps({"calls": results}))


if __name__ == "__main__":
    main()

"""A gRPC client not written in Rust (grpcio from PyPI) for the gRPC app's tests.

    python grpc_client.py PORT CERTS_DIR

Dials 127.0.0.1:PORT over TLS trusting CERTS_DIR/ca.crt (server name www.example.com, as the
original's client), presenting CERTS_DIR/client.pem, and prints one JSON object: SayHello with
the user/password metadata, SayHello without credentials, the benchmark's bench.Burn (served with
server.debug_routes), the health service, and the services reflection lists. The messages are encoded by hand (field 1 varint, field 2 string): no code is
generated from the protos, so the wire format itself is what is checked.
"""
import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from grpc_tls import secure_channel


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_hello_request(i):
    return b"\x08" + varint(i)


def decode_hello_response(data):
    fields, pos = {}, 0
    while pos < len(data):
        key = data[pos]
        pos += 1
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, shift = 0, 0
            while True:
                b = data[pos]
                pos += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            fields[number] = value
        elif wire == 2:
            length = data[pos]
            pos += 1
            fields[number] = data[pos:pos + length].decode()
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return {"id": fields.get(1, 0), "name": fields.get(2, "")}


def main():
    port, certs = sys.argv[1], sys.argv[2]
    result = {}
    with secure_channel(port, certs) as channel:
        say_hello = channel.unary_unary(
            "/hello.HelloService/SayHello",
            request_serializer=encode_hello_request,
            response_deserializer=decode_hello_response,
        )
        result["hello"] = say_hello(1, metadata=[("user", "root"), ("password", "root123")], timeout=5)
        try:
            say_hello(1, timeout=5)
            result["anonymous"] = "OK"
        except grpc.RpcError as e:
            result["anonymous"] = e.code().name
            result["anonymous_code"] = dict(e.trailing_metadata() or ()).get("x-error-code")
        # bench.Burn's request and answer are one varint field 1, as SayHello's id.
        burn = channel.unary_unary(
            "/bench.Burn/Burn",
            request_serializer=encode_hello_request,
            response_deserializer=lambda data: {"burned_ms": decode_hello_response(data)["id"]},
        )
        result["burn"] = burn(1, metadata=[("user", "root"), ("password", "root123")], timeout=5)
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service="hello.HelloService"), timeout=5)
        result["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = reflection.ServerReflectionInfo(iter([request]), timeout=5)
        result["services"] = sorted(s.name for r in replies for s in r.list_services_response.service)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# `make discovery-demo`: the Consul agent double, two gRPC instances registered with it, and the
# HTTP app whose gRPC client dials consul://<double>/hello (docs/discovery.md). Ctrl-C stops all.
# Try: curl 'http://127.0.0.1:$HTTP_PORT/grpc/hello?id=1' several times; kill one gRPC pid and
# watch the calls go on.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --quiet --bin go_example
BIN="$TARGET/debug/go_example"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
python=$(scripts/python-venv.sh grpc grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1)
certs="$work/certs"
token="demo-token"
consul_port=$(free_port)
"$python" tests/consul/agent_double.py --port "$consul_port" --token "$token" \
  --ca "$certs/ca.crt" --cert "$certs/client.pem" --key "$certs/client.key" >"$work/double.log" 2>&1 &
pids+=($!)
common=(APP__CONSUL__ENABLED=true "APP__CONSUL__ADDR=127.0.0.1:$consul_port" "APP__CONSUL__TOKEN=$token"
  APP__CONSUL__CHECK__INTERVAL=1s "APP__SERVER__GRPC__TLS__DIR=$certs" "APP__GRPC_CLIENT__TLS__DIR=$certs"
  "APP__SQLITE__PATH=$work/demo.db" "APP__CERTS__DIR=$work/keys" APP__LOG__FILE__ENABLED=false)
for i in 1 2; do
  port=$(free_port)
  env "${common[@]}" "APP__SERVER__GRPC__ADDR=127.0.0.1:$port" "$BIN" grpc --env debug >"$work/grpc$i.log" 2>&1 &
  pids+=($!)
  echo "gRPC instance $i: 127.0.0.1:$port (pid $!)"
  sleep 1
done
http_port=$(free_port)
env "${common[@]}" "APP__SERVER__HTTP__ADDR=127.0.0.1:$http_port" APP__PPROF__ENABLED=false \
  "APP__METRICS__ADDR=127.0.0.1:$(free_port)" \
  "APP__GRPC_CLIENT__ADDR=consul://127.0.0.1:$consul_port/hello?wait=10s" \
  "$BIN" http --env debug >"$work/http.log" 2>&1 &
pids+=($!)
echo "Consul agent double: http://127.0.0.1:$consul_port (token $token)"
echo "HTTP app: http://127.0.0.1:$http_port/grpc/hello?id=1"
echo "logs in $work; Ctrl-C stops everything"
wait

# Sourced by scripts/postman.sh and scripts/contract-test.sh: `start_grpc_app BIN WORK` starts
# the gRPC app on the embedded default (debug profile, its own SQLite file, a free port,
# development certificates made in WORK/grpc-certs) and waits for its port; it sets grpc_pid
# and grpc_port, and prints the APP__GRPC_CLIENT__ variables that point the HTTP app at it.
start_grpc_app() {
  local bin=$1 work=$2
  grpc_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  APP__SERVER__GRPC__ADDR="127.0.0.1:$grpc_port" \
  APP__SERVER__GRPC__TLS__DIR="$work/grpc-certs" \
  APP__SQLITE__PATH="$work/grpc.db" \
  APP__PPROF__ENABLED=false \
  APP__METRICS__ENABLED=false \
  APP__LOG__FILE__ENABLED=false \
  APP__LOG__LEVEL=warning \
    "$bin" grpc --env debug >"$work/grpc.log" 2>&1 &
  grpc_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break
    kill -0 "$grpc_pid" 2>/dev/null || { echo "the gRPC app died:" >&2; cat "$work/grpc.log" >&2; return 1; }
    sleep 0.1
  done
  export APP__GRPC_CLIENT__ADDR="https://127.0.0.1:$grpc_port"
  export APP__GRPC_CLIENT__TLS__DIR="$work/grpc-certs"
}

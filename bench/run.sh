#!/usr/bin/env bash
# `make bench`: builds release binaries (go_example, a bare actix-web hello and a bare tonic
# SayHello, the gin hello, the grpc-go SayHello and the gorilla/websocket server of the original,
# and the ws-load WebSocket client) and runs bench/run.py, which measures them side by side in one
# run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/go_example-rs/target}
CACHE=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/gin-gonic/gin ] || missing+=(golang-github-gin-gonic-gin-dev)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || missing+=(golang-google-grpc-dev)
[ -d /usr/share/gocode/src/github.com/gorilla/websocket ] || missing+=(golang-github-gorilla-websocket-dev)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  . scripts/apt.sh
  apt_install "${missing[@]}"
fi

echo "bench: building release binaries" >&2
cargo build --release --quiet -p go_example -p bench-bare-actix -p bench-bare-tonic --bins
mkdir -p "$CACHE/gin"
# GOPATH mode against Debian's packaged gin sources: no module download.
(cd bench/gin && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$CACHE/gin/cache" \
  go build -o "$CACHE/gin/gin-hello" main.go)
mkdir -p "$CACHE/grpc-go"
(cd bench/grpc-go && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$CACHE/grpc-go/cache" \
  go build -o "$CACHE/grpc-go/grpc-hello" main.go)
for prog in gorilla-ws ws-load; do
  mkdir -p "$CACHE/$prog"
  (cd "bench/$prog" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$CACHE/$prog/cache" \
    go build -o "$CACHE/$prog/$prog" main.go)
done

BINS=(--stack "$CARGO_TARGET_DIR/release/go_example" --bare "$CARGO_TARGET_DIR/release/bench-bare-actix"
  --gin "$CACHE/gin/gin-hello")

# The http suite runs with no other server on the machine: idle database and Redis processes
# still wake up on the benchmark's CPU and skew the comparison.
if scripts/services.sh status 2>/dev/null | grep -q ': up'; then
  echo "bench: note: test servers are running and will disturb the http suite" >&2
fi
python3 bench/run.py --suite http "${BINS[@]}" "$@"
echo
python3 bench/run.py --suite grpc "${BINS[@]}" --bare-tonic "$CARGO_TARGET_DIR/release/bench-bare-tonic" \
  --grpc-go "$CACHE/grpc-go/grpc-hello" "$@"
echo
# Before the data suite starts the test servers; run.py raises the open-files limit itself.
python3 bench/run.py --suite socket --stack "$CARGO_TARGET_DIR/release/go_example" \
  --gorilla-ws "$CACHE/gorilla-ws/gorilla-ws" --ws-load "$CACHE/ws-load/ws-load" "$@"

# The data suite needs the real servers; stop them afterwards only if this script started them.
started_services=0
if ! scripts/services.sh status 2>/dev/null | grep -q 'mariadb primary: up'; then started_services=1; fi
eval "$(scripts/services.sh up)"
[ $started_services = 1 ] && trap 'scripts/services.sh down' EXIT
echo
python3 bench/run.py --suite data "${BINS[@]}" "$@"
echo
# The Excel suite: the export (SQLite) against XlsxWriter, and the import into MariaDB.
python3 bench/run.py --suite excel "${BINS[@]}" "$@"
echo
# Issue 22's abuse figures on the embedded default: logins during a large import, GET /hello
# during exports, and the export places under a burst.
python3 bench/run.py --suite abuse "${BINS[@]}" "$@"

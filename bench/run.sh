#!/usr/bin/env bash
# `make bench`: builds release binaries (go_example, a bare actix-web hello and a bare tonic
# SayHello, the gin hello, the grpc-go SayHello, the original's HTTP → gRPC and data flows in Go,
# the gorilla/websocket server of the original, and the ws-load WebSocket client) and runs
# bench/run.py, which measures them side by side in one run.
#
# The http, grpc and socket rows are also measured against a baseline build and judged by
# bench/guard.py: by default the merge-base of HEAD with origin/main, built once (release) and
# cached under ~/.cache/go_example-rs/baseline/<sha>/. Options (also `make bench QUICK=1`,
# `make bench COLDSTART=1`, `make bench ARGS='--baseline none'`):
#   --quick             the guard's quick run only: http, grpc and socket rows, 2 rounds of 4 s
#   --coldstart         also time a dev build on an empty target dir (a full build: minutes)
#   --baseline REV|none|BIN [--baseline-root DIR]   another baseline, or none
# Anything else goes to every bench/run.py (--rounds, --seconds, --json ...). Exit status 3 when
# the guard found a regression (after every suite has run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/go_example-rs/target}
CACHE=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}

quick=0 coldstart=0 guard_args=() pass=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --coldstart) coldstart=1 ;;
    --baseline|--baseline-root) guard_args+=("$1" "$2"); shift ;;
    --baseline=*|--baseline-root=*) guard_args+=("$1") ;;
    *) pass+=("$1") ;;
  esac
  shift
done

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/gin-gonic/gin ] || missing+=(golang-github-gin-gonic-gin-dev)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || missing+=(golang-google-grpc-dev)
[ -d /usr/share/gocode/src/github.com/gorilla/websocket ] || missing+=(golang-github-gorilla-websocket-dev)
[ -d /usr/share/gocode/src/github.com/go-sql-driver/mysql ] || missing+=(golang-github-go-sql-driver-mysql-dev)
[ -d /usr/share/gocode/src/github.com/gomodule/redigo ] || missing+=(golang-github-gomodule-redigo-dev)
command -v h2load >/dev/null || missing+=(nghttp2-client)
# The http suite's /home row with Redis starts a redis-server of its own.
command -v redis-server >/dev/null || missing+=(redis-server)
command -v taskset >/dev/null || missing+=(util-linux)
# The tracing suite counts instructions per request under callgrind.
command -v valgrind >/dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  . scripts/apt.sh
  apt_install "${missing[@]}"
fi

echo "bench: building release binaries" >&2
cargo build --release --quiet -p go_example -p bench-bare-actix -p bench-bare-tonic --bins
# GOPATH mode against Debian's packaged Go sources: no module download.
build_go() { # DIR OUTPUT
  mkdir -p "$CACHE/$1"
  (cd "bench/$1" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$CACHE/$1/cache" \
    go build -o "$CACHE/$1/$2" main.go)
}
build_go gin gin-hello
build_go grpc-go grpc-hello
for prog in gin-grpc gin-data gorilla-ws ws-load; do build_go "$prog" "$prog"; done

release=$CARGO_TARGET_DIR/release
BINS=(--stack "$release/go_example" --bare "$release/bench-bare-actix" --gin "$CACHE/gin/gin-hello"
  --bare-tonic "$release/bench-bare-tonic" --grpc-go "$CACHE/grpc-go/grpc-hello" --gin-grpc "$CACHE/gin-grpc/gin-grpc"
  --gin-data "$CACHE/gin-data/gin-data" --gorilla-ws "$CACHE/gorilla-ws/gorilla-ws" --ws-load "$CACHE/ws-load/ws-load")

# The baseline's release build, once (cached): before any measurement, so no suite waits for it.
baseline=$(python3 bench/guard.py resolve ${guard_args[@]+"${guard_args[@]}"})
if [ -n "$baseline" ]; then
  guard_args=(--baseline "$(sed -n 1p <<<"$baseline")" --baseline-root "$(sed -n 2p <<<"$baseline")")
else
  guard_args=(--baseline none)
fi

# The guarded suites run with no other server on the machine: idle database and Redis
# processes still wake up on the benchmark's CPU and skew the comparison. run.py raises the
# open-files limit the socket suite needs itself.
if scripts/services.sh status 2>/dev/null | grep -q ': up'; then
  echo "bench: note: test servers are running and will disturb the http, grpc and socket suites" >&2
fi
verdict=0
if [ $quick = 1 ]; then
  python3 bench/run.py --quick "${BINS[@]}" "${guard_args[@]}" ${pass[@]+"${pass[@]}"} || verdict=$?
  exit $verdict
fi
python3 bench/run.py --suite http,grpc,socket "${BINS[@]}" "${guard_args[@]}" ${pass[@]+"${pass[@]}"} \
  || verdict=$?
[ $verdict = 0 ] || [ $verdict = 3 ] || exit $verdict
echo
# Issue 25's overload figures (the shedder at 3x and 10x capacity, HTTP and gRPC): before the
# test servers start, on a quiet CPU 0 like the guarded suites.
python3 bench/run.py --suite overload "${BINS[@]}" ${pass[@]+"${pass[@]}"}

# The data suite needs the real servers; stop them afterwards only if this script started them.
started_services=0
if ! scripts/services.sh status 2>/dev/null | grep -q 'mariadb primary: up'; then started_services=1; fi
eval "$(scripts/services.sh up)"
[ $started_services = 1 ] && trap 'scripts/services.sh down' EXIT
echo
python3 bench/run.py --suite data "${BINS[@]}" ${pass[@]+"${pass[@]}"}
echo
# The Excel suite: the export (SQLite) against XlsxWriter, and the import into MariaDB.
python3 bench/run.py --suite excel "${BINS[@]}" ${pass[@]+"${pass[@]}"}
echo
# Issue 22's abuse figures on the embedded default: logins during a large import, GET /hello
# during exports, and the export places under a burst.
python3 bench/run.py --suite abuse "${BINS[@]}" ${pass[@]+"${pass[@]}"}
if [ $coldstart = 1 ]; then
  echo
  python3 bench/run.py --suite coldstart ${pass[@]+"${pass[@]}"} || verdict=$?
fi
exit $verdict

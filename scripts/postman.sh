#!/usr/bin/env bash
# `make postman`: runs the Postman collection with newman against the app on the embedded
# default (debug profile, fresh SQLite file, free port), then stops the app with SIGTERM and
# checks it exited cleanly. Installs newman from npm into a cache folder on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
CACHE=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}
NEWMAN="$CACHE/newman/node_modules/.bin/newman"
BIN="$TARGET/debug/go_example"

if ! command -v npm >/dev/null 2>&1; then
  echo "postman: npm is missing; installing Debian's npm" >&2
  . scripts/apt.sh
  apt_install npm
fi
if [ ! -x "$NEWMAN" ]; then
  echo "postman: installing newman (npm) into $CACHE/newman" >&2
  mkdir -p "$CACHE/newman"
  npm install --silent --no-audit --no-fund --prefix "$CACHE/newman" newman@6 >&2
fi

cargo build --quiet --bin go_example
# The embedded default: nothing from the caller's environment (scripts/services.sh exports
# APP__ variables for the real servers) may reconfigure the app under test.
for var in $(compgen -e | grep '^APP__' || true); do unset "$var"; done
unset APP_ENV
# GOEX_APP_MONGODB_ADDR (a MongoDB URI) puts the app on MongoDB, in a database of its own: the
# check of `go_example generate resource --mongo` runs the generated folders so.
if [ -n "${GOEX_APP_MONGODB_ADDR:-}" ]; then
  export APP__MONGODB__ENABLED=true APP__MONGODB__ADDR="$GOEX_APP_MONGODB_ADDR" \
    APP__MONGODB__DATABASE="postman_$$_$RANDOM"
fi
work=$(mktemp -d)
# Whatever has started is stopped on any exit, from here on.
pid='' grpc_pid='' sms_pid='' jenkins_pid=''
cleanup() {
  for p in $pid $grpc_pid $sms_pid $jenkins_pid ${double_pid:-}; do kill -TERM "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(free_port)
pprof_port=$(free_port)
metrics_port=$(free_port)
# The Alibaba Cloud SMS double (it checks signature V3 as Alibaba Cloud does): the app sends its
# codes there, and the collection reads them back from it.
. scripts/doubles.sh
start_double sms "$work" python3 tests/sms/alibaba_sms_double.py --port 0 \
  --access-key-id LTAI5tPostman --access-key-secret postman-secret \
  --sign-name 阿里云短信测试 --template-code SMS_154950909
sms_pid=$double_pid sms_port=$double_port
# The Jenkins API double (basic auth and CSRF crumbs enforced as Jenkins does), with the
# original's go-test job built once.
start_double jenkins "$work" python3 tests/jenkins/jenkins_double.py --port 0 \
  --user goexample --token postman-jenkins-token --seed-job go-test
jenkins_pid=$double_pid jenkins_port=$double_port
# The rate-limit rule of GET /hello?id= (the first of base.yaml's rules, named here so that a
# reordered file fails loudly) tightened to 3 an hour: the collection's hello folder spends
# exactly 3 and asserts the 429 / 10008 of the fourth (docs/rate-limits.md).
# The gRPC app first: GET /grpc/hello calls it (and the HTTP app reuses its certificates).
. scripts/grpc-app.sh
start_grpc_app "$BIN" "$work"
APP__SERVER__HTTP__ADDR="127.0.0.1:$port" \
APP__SQLITE__PATH="$work/postman.db" \
APP__PPROF__ADDR="127.0.0.1:$pprof_port" \
APP__METRICS__ADDR="127.0.0.1:$metrics_port" \
APP__LOG__FILE__ENABLED=false \
APP__LOG__LEVEL=info \
APP__JENKINS__HOST="http://127.0.0.1:$jenkins_port" \
APP__JENKINS__USERNAME=goexample \
APP__JENKINS__PASSWORD=postman-jenkins-token \
APP__SMS__PROVIDER=alibaba \
APP__ALIBABA_SMS__END_POINT="http://127.0.0.1:$sms_port" \
APP__ALIBABA_SMS__ACCESS_KEY_ID=LTAI5tPostman \
APP__ALIBABA_SMS__ACCESS_KEY_SECRET=postman-secret \
APP__ALIBABA_SMS_CODE__SIGN_NAME=阿里云短信测试 \
APP__ALIBABA_SMS_CODE__TEMPLATE_CODE=SMS_154950909 \
APP__RATE_LIMIT__ENABLED=true \
APP__RATE_LIMIT__RULES__0__NAME=hello-by-id \
APP__RATE_LIMIT__RULES__0__RATE=1 \
APP__RATE_LIMIT__RULES__0__PERIOD=1h \
APP__RATE_LIMIT__RULES__0__BURST=3 \
  "$BIN" http --env debug >"$work/app.log" 2>&1 &
pid=$!

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "postman: the app died:" >&2; cat "$work/app.log" >&2; exit 1; }
  sleep 0.1
done

# An admin for the Excel and Jenkins folders: registered, then granted the role the way an
# operator does it (docs/security.md), on the same database.
curl -fsS -H 'Content-Type: application/json' -d '{"username":"postmanadmin1","password":"abc12345"}' \
  "http://127.0.0.1:$port/auth/register" >/dev/null
APP__SQLITE__PATH="$work/postman.db" APP__LOG__FILE__ENABLED=false APP__LOG__LEVEL=warning \
  "$BIN" users grant-admin postmanadmin1 --env debug

# POSTMAN_FOLDERS="a b": only those folders (the generator check runs the folders it generated).
folders=()
for folder in ${POSTMAN_FOLDERS:-}; do folders+=(--folder "$folder"); done
status=0
"$NEWMAN" run assets/postman/go_example.postman_collection.json \
  -e assets/postman/go_example.postman_environment.json \
  --env-var "baseUrl=http://127.0.0.1:$port" --env-var "pprofUrl=http://127.0.0.1:$pprof_port" --env-var "metricsUrl=http://127.0.0.1:$metrics_port" --env-var "smsDoubleUrl=http://127.0.0.1:$sms_port" --color off --reporters cli "${folders[@]}" || status=$?

kill -TERM "$pid"
if ! wait "$pid"; then echo "postman: the app did not exit cleanly on SIGTERM" >&2; status=1; fi
pid=''
kill -TERM "$grpc_pid" "$sms_pid" "$jenkins_pid" 2>/dev/null || true
wait "$grpc_pid" 2>/dev/null || true
exit $status

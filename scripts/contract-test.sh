#!/usr/bin/env bash
# `make contract`: the API contract check (scripts/contract.sh: openapi-spec-validator,
# schemathesis with every check, Swagger UI in headless Chromium) against the app on the
# embedded default (debug profile, fresh SQLite file, free ports), the way `make http` runs it
# but without the /debug/* helper routes (a deliberate panic is not a contract breach). A user
# is registered and signed in first so protected operations are exercised with a real token.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/debug/go_example"

cargo build --quiet --bin go_example
export CONTRACT_MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-300}
for var in $(compgen -e | grep '^APP__' || true); do unset "$var"; done
unset APP_ENV
# GOEX_APP_MONGODB_ADDR (a MongoDB URI) puts the app on MongoDB, in a database of its own: the
# check of `go_example generate resource --mongo` runs the generated folders so.
if [ -n "${GOEX_APP_MONGODB_ADDR:-}" ]; then
  export APP__MONGODB__ENABLED=true APP__MONGODB__ADDR="$GOEX_APP_MONGODB_ADDR" \
    APP__MONGODB__DATABASE="contract_$$_$RANDOM"
fi
work=$(mktemp -d)
pid='' grpc_pid='' jenkins_pid=''
cleanup() {
  for p in $pid $grpc_pid $jenkins_pid ${double_pid:-}; do kill -TERM "$p" 2>/dev/null || true; done
  [ -z "${CONTRACT_KEEP_LOG:-}" ] || cp "$work/app.log" "$CONTRACT_KEEP_LOG" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(free_port)
# The Jenkins API double for /jenkins/* (contract01 is made an admin below), with the original's
# go-test job.
. scripts/doubles.sh
start_double jenkins "$work" python3 tests/jenkins/jenkins_double.py --port 0 \
  --user goexample --token contract-jenkins-token --seed-job go-test
jenkins_pid=$double_pid jenkins_port=$double_port
# The gRPC app first: GET /grpc/hello calls it (and the HTTP app reuses its certificates).
. scripts/grpc-app.sh
start_grpc_app "$BIN" "$work"
APP__SERVER__HTTP__ADDR="127.0.0.1:$port" \
APP__SERVER__DEBUG_ROUTES=false \
APP__SQLITE__PATH="$work/contract.db" \
APP__PPROF__ENABLED=false \
APP__METRICS__ADDR="127.0.0.1:$(free_port)" \
APP__LOG__FILE__ENABLED=false \
APP__LOG__LEVEL=warning \
APP__SERVER__HTTP__ACCESS_LOG=false \
APP__JENKINS__HOST="http://127.0.0.1:$jenkins_port" \
APP__JENKINS__USERNAME=goexample \
APP__JENKINS__PASSWORD=contract-jenkins-token \
APP__RATE_LIMIT__ENABLED=false \
  "$BIN" http --env debug >"$work/app.log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "contract: the app died:" >&2; cat "$work/app.log" >&2; exit 1; }
  sleep 0.1
done

# One user per token: each login ends the user's previous one (single sign-on), logout ends the
# session it is tested with, and a refresh token works once (a reuse ends that login).
# An admin (the Excel and Jenkins routes are for admins) is granted the role between its
# registration and its login, as an operator does it (docs/security.md).
signin() {
  local credentials="{\"username\":\"$1\",\"password\":\"$1\"}"
  curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$credentials" "$url/auth/register"
  if [ "${3:-}" = admin ]; then
    APP__SQLITE__PATH="$work/contract.db" APP__LOG__FILE__ENABLED=false APP__LOG__LEVEL=warning \
      "$BIN" users grant-admin "$1" --env debug >/dev/null
  fi
  curl -fsS -H 'Content-Type: application/json' -d "$credentials" "$url/auth/login" \
    | python3 -c "import json,sys; print(json.load(sys.stdin)['data']['$2'].removeprefix('Bearer '))"
}
CONTRACT_BEARER=$(signin contract01 accessToken admin)
CONTRACT_LOGOUT_BEARER=$(signin contract02 accessToken)
CONTRACT_REFRESH_BEARER=$(signin contract03 refreshToken)
export CONTRACT_BEARER CONTRACT_LOGOUT_BEARER CONTRACT_REFRESH_BEARER
# shellcheck disable=SC2016 # the variables are for schemathesis to resolve
printf '%s\n' \
  '[[operations]]' 'include-name = "POST /auth/logout"' \
  'headers = { Authorization = "Bearer ${CONTRACT_LOGOUT_BEARER}" }' \
  '[[operations]]' 'include-name = "GET /auth/refresh_token"' \
  'headers = { Authorization = "Bearer ${CONTRACT_REFRESH_BEARER}" }' \
  '[[operations]]' 'include-name = "POST /excel/import"' \
  'checks.positive_data_acceptance.expected-statuses = [200, 202, 400, 401, 413, 503]' \
  '[[operations]]' 'include-name = "POST /auth/login_sms"' \
  'warnings.fail-on = ["unresolvable_reference", "unsupported_regex", "method_not_allowed"]' \
  '[[operations]]' 'include-path-regex = "^/jenkins/"' \
  'checks.positive_data_acceptance.expected-statuses = [200, 201, 202, 400, 404]' \
  >"$work/operations.toml"
# POST /excel/import: any bytes are a schema-valid `format: binary` upload, and only an xlsx
# workbook can be accepted; OpenAPI cannot say "a zip holding xl/workbook.xml", so a schema-valid
# upload may rightly get 400 / 30002 (the import's own tests send real workbooks).
# POST /auth/login_sms: a schema-valid code is wrong but for one chance in a million, so its
# 401 / 20004 answers are right, not a credential that failed (missing_auth does not fail the
# run there; tests/api/sms.rs and the Postman folder sign in with delivered codes).
# /jenkins/*: Jenkins judges names (unsafe characters, `.` and `..`, names taken, unknown jobs),
# which a schema cannot state, so a schema-valid name may rightly get 400 (Jenkins's words) or
# 404; 5xx stays a failure (tests/api/jenkins.rs covers the routes' successes).

status=0
CONTRACT_CONFIG="$work/operations.toml" CONTRACT_REQUIRE_SWAGGER=1 scripts/contract.sh "$url" || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "contract: the app died during the run:" >&2; tail -50 "$work/app.log" >&2; status=1
fi
if grep -q '"level":"CRIT\|panicked' "$work/app.log"; then
  echo "contract: the app logged a panic:" >&2; grep -m5 'panicked\|CRIT' "$work/app.log" >&2; status=1
fi
exit $status

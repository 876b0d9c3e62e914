#!/usr/bin/env bash
# `scripts/contract.sh URL`: the API contract check of an app already running at URL (its base,
# e.g. http://127.0.0.1:8080, on loopback). Validates URL/openapi.json as OpenAPI 3.1
# (openapi-spec-validator), runs schemathesis against it with every check, positive and negative
# data, a fixed seed and one worker (the same requests on every run), and, when URL/swagger-ui/
# answers 200, checks in headless Chromium that Swagger UI renders the document
# (scripts/swagger-ui-check.py). Installs schemathesis and openapi-spec-validator into a venv in
# the cache folder on first use (Debian's python3-venv if venv lacks ensurepip), and Debian's
# chromium when Swagger UI is to be checked and /usr/bin/chromium is missing.
#
#   CONTRACT_SEED=N             schemathesis seed (default 20260101)
#   CONTRACT_MAX_EXAMPLES=N     test cases per operation in each generating phase (default 50)
#   CONTRACT_BEARER=TOKEN       sends `Authorization: Bearer TOKEN` on every request (unset: none;
#                               schemathesis then makes up invalid ones for protected operations)
#   CONTRACT_REQUIRE_SWAGGER=1  a missing Swagger UI (no 200 on URL/swagger-ui/) fails
#   CONTRACT_TIMEOUT=S          wall-clock bound of the schemathesis run, seconds (default 180)
#   CONTRACT_REPORT_DIR=DIR     also writes schemathesis' JUnit XML and HAR reports there
#   CONTRACT_INCLUDE_PATH_REGEX=RE  only the operations whose path matches (st's --include-path-regex;
#                               the generator check fuzzes the routes it generated)
#   CONTRACT_CONFIG=FILE        appended to schemathesis' configuration (e.g. `[[operations]]`
#                               sections with a header of their own)
# Exit 0 when every part passed; the last line reads `contract: N passed, N failed[, N skipped]`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/contract.sh URL   (the app's base URL, e.g. http://127.0.0.1:8080)" >&2; exit 2; }
[ $# -eq 1 ] || usage
URL=${1%/}
case "$URL" in http://* | https://*) ;; *) usage ;; esac

CACHE=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}
VENV=$CACHE/contract-venv
# The pins. hypothesis is schemathesis' data generator: the same seed makes the same requests
# only with the same hypothesis, so it is pinned too. Changing a pin rebuilds the venv.
PINS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0 hypothesis==6.170.17)
SEED=${CONTRACT_SEED:-20260101}
MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-50}
RUN_TIMEOUT=${CONTRACT_TIMEOUT:-180}

log() { echo "contract: $*" >&2; }

# Fuzzing sends thousands of requests: only to this machine's loopback.
host=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).hostname or "")' "$URL")
if ! python3 -c 'import ipaddress, sys; h = sys.argv[1]; sys.exit(0 if h == "localhost" or ipaddress.ip_address(h).is_loopback else 1)' "$host" 2>/dev/null; then
  log "refusing $URL: $host is not a loopback address"
  exit 2
fi
export no_proxy="127.0.0.1,localhost,::1${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"

# ---------------------------------------------------------------- the venv (once per machine)
# Reused while it holds exactly the pinned versions; `.pins` is written last, so a venv whose
# install broke off is rebuilt. The lock keeps two runs from building it at once.
venv_ok() {
  [ -x "$VENV/bin/st" ] && [ -x "$VENV/bin/openapi-spec-validator" ] && [ -f "$VENV/.pins" ] \
    && [ "$(cat "$VENV/.pins")" = "${PINS[*]}" ] \
    && "$VENV/bin/python" - "${PINS[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(name) != wanted for name, wanted in (pin.split("==") for pin in sys.argv[1:])))
EOF
}
mkdir -p "$CACHE"
exec 9>"$CACHE/contract-venv.lock"
flock 9
if ! venv_ok; then
  # Debian splits venv's pip bootstrap into python3-venv.
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    . scripts/apt.sh
    apt_install python3-venv
  fi
  log "installing ${PINS[*]} (PyPI) into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" >&2
  printf '%s\n' "${PINS[*]}" >"$VENV/.pins"
  venv_ok || { log "the venv at $VENV does not hold ${PINS[*]}"; exit 1; }
fi
flock -u 9

work=$(mktemp -d "${TMPDIR:-/tmp}/go_example-contract.XXXXXXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); log "PASS $*"; }
flunk() { failed=$((failed + 1)); log "FAIL $*"; }

# ---------------------------------------------------------------- 1. the document
if curl -fsS --max-time 10 -o "$work/openapi.json" "$URL/openapi.json" \
  && "$VENV/bin/openapi-spec-validator" --schema 3.1 --validation-errors all "$work/openapi.json" >"$work/validator.log" 2>&1; then
  operations=$("$VENV/bin/python" - "$work/openapi.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
print(sum(len(methods & set(item)) for item in (doc.get("paths") or {}).values() if isinstance(item, dict)))
EOF
)
  pass "$URL/openapi.json is valid OpenAPI 3.1 ($operations operations)"
else
  # Its errors repeat the whole document: the start of each line is enough.
  [ -s "$work/validator.log" ] && cut -c1-600 "$work/validator.log" >&2
  flunk "$URL/openapi.json is missing or not valid OpenAPI 3.1"
fi

# ---------------------------------------------------------------- 2. schemathesis
# Every flag below is from `st run --help` of the pinned 4.32.5:
#   --checks all               every check, none excluded (max_response_time too, at its 10 s)
#   --mode all                 positive and negative (invalid) data
#   --seed + --generation-deterministic + --workers 1
#                              the same requests every run: derandomized hypothesis, no example
#                              database; with two workers the cases differ from run to run
#   --max-examples             the bound on cases per operation (coverage cases come on top)
#   --request-timeout          one hung request cannot eat the budget
#   --url                      the operations are at URL whatever the document's `servers` say
# The seed is in force although schemathesis' summary says "Seed: not used in the deterministic
# mode": an explicit seed wins over derandomizing (a different CONTRACT_SEED sends other cases).
# Not --max-time: in 4.x it is a budget that fuzzing repeats to fill (a 30 s budget takes 30 s),
# so the number of requests would follow the machine's speed. `timeout` bounds the run instead,
# with SIGINT first so that schemathesis still prints what it found.
st_args=(run "$URL/openapi.json" --url "$URL"
  --checks all --mode all
  --seed "$SEED" --generation-deterministic --workers 1
  --max-examples "$MAX_EXAMPLES" --request-timeout 10
  --no-color)
[ -z "${CONTRACT_INCLUDE_PATH_REGEX:-}" ] || st_args+=(--include-path-regex "$CONTRACT_INCLUDE_PATH_REGEX")
# The run's own config file (no schemathesis.toml of the work tree is read). Warnings that say the
# document is wrong fail the run: a $ref to nothing, a pattern schemathesis cannot generate from
# (not ECMA 262), a documented operation that answers only 405. With a token, so does
# missing_auth (every request of an operation got 401/403: the token does not work).
fail_on='"unresolvable_reference", "unsupported_regex", "method_not_allowed"'
[ -z "${CONTRACT_BEARER:-}" ] || fail_on+=', "missing_auth"'
printf '[warnings]\nfail-on = [%s]\n' "$fail_on" >"$work/schemathesis.toml"
if [ -n "${CONTRACT_BEARER:-}" ]; then
  # The token stays off the command line (ps): the file names the variable, schemathesis reads it.
  export CONTRACT_BEARER
  # shellcheck disable=SC2016 # ${CONTRACT_BEARER} is for schemathesis to resolve
  printf '[headers]\nAuthorization = "Bearer ${CONTRACT_BEARER}"\n' >>"$work/schemathesis.toml"
fi
if [ -n "${CONTRACT_CONFIG:-}" ]; then
  # More of schemathesis' configuration from the caller, such as `[[operations]]` sections.
  cat "$CONTRACT_CONFIG" >>"$work/schemathesis.toml"
fi
if [ -n "${CONTRACT_REPORT_DIR:-}" ]; then
  mkdir -p "$CONTRACT_REPORT_DIR"
  st_args+=(--report "junit,har" --report-dir "$CONTRACT_REPORT_DIR")
fi
log "schemathesis: seed $SEED, at most $MAX_EXAMPLES examples per operation, ${RUN_TIMEOUT}s bound"
start=$SECONDS
st_status=0
# From the temporary folder: nothing of the work tree (.hypothesis) changes the run.
(cd "$work" && timeout --signal=INT --kill-after=15 "$RUN_TIMEOUT" \
  "$VENV/bin/st" --config-file "$work/schemathesis.toml" "${st_args[@]}") 2>&1 \
  | tee "$work/st.log" || st_status=${PIPESTATUS[0]}
# The line under "Test cases:", e.g. "215 generated, 215 passed" or "162 generated, 1 found 1 unique failure".
cases=$(awk '/^Test cases:/ { getline; sub(/^ +/, ""); line = $0 } END { print line }' "$work/st.log")
elapsed=$((SECONDS - start))
if [ "$st_status" -eq 0 ]; then
  pass "schemathesis: ${cases:-no test cases}, ${elapsed}s (seed $SEED)"
elif [ "$st_status" -eq 124 ] || [ "$st_status" -eq 137 ]; then
  flunk "schemathesis: stopped by the ${RUN_TIMEOUT}s bound (${cases:-no summary}); lower CONTRACT_MAX_EXAMPLES"
else
  why=${cases:-no summary}
  ! grep -q 'Warnings fail the run' "$work/st.log" || why+="; a warning that fails the run (WARNINGS above)"
  flunk "schemathesis: exit $st_status, $why, ${elapsed}s (seed $SEED; rerun with CONTRACT_SEED=$SEED)"
fi

# ---------------------------------------------------------------- 3. Swagger UI
swagger=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$URL/swagger-ui/" || true)
if [ "$swagger" = 200 ]; then
  if [ ! -x /usr/bin/chromium ]; then
    log "chromium is missing; installing Debian's chromium"
    . scripts/apt.sh
    apt_install chromium
  fi
  if "$VENV/bin/python" scripts/swagger-ui-check.py "$URL"; then
    pass "Swagger UI at $URL/swagger-ui/ renders the document"
  else
    flunk "Swagger UI at $URL/swagger-ui/ does not render the document"
  fi
elif [ "${CONTRACT_REQUIRE_SWAGGER:-0}" = 1 ]; then
  flunk "Swagger UI: $URL/swagger-ui/ answered ${swagger:-nothing}, not 200 (CONTRACT_REQUIRE_SWAGGER=1)"
else
  skipped=$((skipped + 1))
  log "SKIP Swagger UI: $URL/swagger-ui/ answered ${swagger:-nothing}, not 200"
fi

summary="contract: $passed passed, $failed failed"
[ "$skipped" -eq 0 ] || summary+=", $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]

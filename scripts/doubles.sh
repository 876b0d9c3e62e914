# Sourced by scripts/postman.sh and scripts/contract-test.sh: `start_double NAME WORK CMD...`
# starts a test double (tests/sms, tests/jenkins) that prints `LISTENING <port>` once it accepts
# connections, and waits for that line; it sets double_pid and double_port, its output in
# WORK/NAME.out and WORK/NAME.log.
start_double() {
  local name=$1 work=$2
  shift 2
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  double_pid=$!
  for _ in $(seq 1 100); do grep -q LISTENING "$work/$name.out" 2>/dev/null && break; sleep 0.05; done
  double_port=$(awk '/LISTENING/ {print $2}' "$work/$name.out")
  [ -n "$double_port" ] || { echo "the $name double did not start:" >&2; cat "$work/$name.log" >&2; return 1; }
}

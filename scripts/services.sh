#!/usr/bin/env bash
# Starts and stops the real servers the tests and the non-embedded profiles use, on loopback and
# non-default ports, with data under a temporary folder. Idempotent: `up` twice reuses what runs.
#
#   eval "$(scripts/services.sh up)"    # install if needed, start, export APP__... for the app
#   scripts/services.sh status
#   scripts/services.sh down            # stop everything and delete the data
#
# Progress goes to stderr; stdout carries only the `export` lines.
# Later features add their servers here (Redis single + Cluster, a MariaDB replica, MongoDB).
set -euo pipefail

BASE=${GOEX_SERVICES_DIR:-${TMPDIR:-/tmp}/go_example-services}
MYSQL_PORT=${GOEX_MYSQL_PORT:-13306}
MYSQL_DB=go_example

log() { echo "services: $*" >&2; }

need_root_for_apt() {
  if [ "$(id -u)" -ne 0 ]; then
    log "installing $* needs root (apt-get); run as root or install them first"
    exit 1
  fi
}

# apt-get install for the commands that are missing; `apt-get update` only when needed.
ensure_packages() {
  local missing=()
  while [ $# -gt 0 ]; do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root_for_apt "${missing[*]}"
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_gone() { # pidfile
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- MariaDB (single)
mysql_dir() { echo "$BASE/mariadb-$1"; }

mysql_client() { # port, sql...
  local port=$1; shift
  mariadb --no-defaults -h127.0.0.1 -P"$port" -uroot "$@"
}

mysql_up() { # name port server_id
  local name=$1 port=$2 id=$3 dir
  dir=$(mysql_dir "$name")
  if alive "$dir/mariadb.pid" && mysql_client "$port" -e 'SELECT 1' >/dev/null 2>&1; then
    log "mariadb $name already up on 127.0.0.1:$port"
    return 0
  fi
  mkdir -p "$dir/data"
  cat >"$dir/my.cnf" <<EOF
[mariadbd]
user=root
datadir=$dir/data
socket=$dir/mariadb.sock
pid-file=$dir/mariadb.pid
log-error=$dir/error.log
port=$port
bind-address=127.0.0.1
server-id=$id
log-bin=$dir/data/binlog
relay-log=$dir/data/relay
binlog-format=ROW
gtid-strict-mode=1
log-slave-updates=1
innodb-buffer-pool-size=64M
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
EOF
  if [ ! -d "$dir/data/mysql" ]; then
    log "initialising mariadb $name in $dir"
    mariadb-install-db --defaults-file="$dir/my.cnf" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; exit 1; }
  fi
  wait_gone "$dir/mariadb.pid"
  mariadbd --defaults-file="$dir/my.cnf" >/dev/null 2>&1 &
  for _ in $(seq 1 150); do
    mysql_client "$port" -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  mysql_client "$port" -e 'SELECT 1' >/dev/null 2>&1 || { log "mariadb $name did not start:"; tail -20 "$dir/error.log" >&2; exit 1; }
  mysql_client "$port" -e "CREATE DATABASE IF NOT EXISTS $MYSQL_DB CHARACTER SET utf8mb4" 
  log "mariadb $name up on 127.0.0.1:$port"
}

mysql_down() { # name port
  local dir
  dir=$(mysql_dir "$1")
  if alive "$dir/mariadb.pid"; then
    kill "$(cat "$dir/mariadb.pid")" 2>/dev/null || true
    wait_gone "$dir/mariadb.pid"
    log "mariadb $1 stopped"
  fi
}

# ---------------------------------------------------------------- commands
up() {
  ensure_packages mariadbd mariadb-server mariadb mariadb-client
  mkdir -p "$BASE"
  mysql_up primary "$MYSQL_PORT" 1
  cat <<EOF
export APP__MYSQL__DSN='mysql://root@127.0.0.1:$MYSQL_PORT/$MYSQL_DB'
export GOEX_SERVICES_DIR='$BASE'
EOF
}

down() {
  mysql_down primary
  rm -rf "$BASE"
  log "data removed ($BASE)"
}

status() {
  if alive "$(mysql_dir primary)/mariadb.pid"; then echo "mariadb primary: up on 127.0.0.1:$MYSQL_PORT"; else echo "mariadb primary: down"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

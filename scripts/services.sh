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
MYSQL_REPLICA_PORT=${GOEX_MYSQL_REPLICA_PORT:-13307}
MYSQL_DB=go_example
# The application's account: no SUPER / READ_ONLY ADMIN, so `read_only` stops it on the replica
# (a write applied on a replica breaks GTID replication).
APP_USER=app
APP_PASS=apppass
MONGO_PORT=${GOEX_MONGO_PORT:-27117}
# The venv outlives the data folder: pip runs once per machine, not once per `up`.
MONGO_VENV=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}/mongo-venv
REDIS_PORT=${GOEX_REDIS_PORT:-16379}
REDIS_CLUSTER_PORTS=${GOEX_REDIS_CLUSTER_PORTS:-"17000 17001 17002 17003 17004 17005"}

log() { echo "services: $*" >&2; }

# shellcheck source=scripts/apt.sh
. "$(dirname "$0")/apt.sh"

# apt-get install for the commands that are missing; `apt-get update` only when needed.
ensure_packages() {
  local missing=()
  while [ $# -gt 0 ]; do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_install "${missing[@]}"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_gone() { # pidfile
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- MariaDB (primary + replica)
mysql_dir() { echo "$BASE/mariadb-$1"; }

mysql_client() { # port, sql...
  local port=$1; shift
  mariadb --no-defaults -h127.0.0.1 -P"$port" -uroot "$@"
}

mysql_up() { # name port server_id [replica]
  local name=$1 port=$2 id=$3 role=${4:-primary} dir
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
read-only=$([ "$role" = replica ] && echo 1 || echo 0)
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
  if [ "$role" = primary ]; then
    mysql_client "$port" -e "CREATE DATABASE IF NOT EXISTS $MYSQL_DB CHARACTER SET utf8mb4;
      CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'repl';
      GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
      CREATE USER IF NOT EXISTS '$APP_USER'@'%' IDENTIFIED BY '$APP_PASS';
      GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES,
            CREATE TEMPORARY TABLES, LOCK TABLES ON *.* TO '$APP_USER'@'%';"
  fi
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

# Points the replica at the primary (GTID, slave_pos) once, and waits until it has caught up.
replication_up() {
  local running
  running=$(mysql_client "$MYSQL_REPLICA_PORT" -N -e "SHOW SLAVE STATUS" | awk -F'\t' '{print $11 $12}')
  if [ "$running" != "YesYes" ]; then
    mysql_client "$MYSQL_REPLICA_PORT" -e "STOP SLAVE;
      CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$MYSQL_PORT, MASTER_USER='repl',
        MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
      START SLAVE;"
  fi
  for _ in $(seq 1 100); do
    [ "$(mysql_client "$MYSQL_REPLICA_PORT" -N -e "SELECT COUNT(*) FROM mysql.user WHERE user='$APP_USER'")" = 1 ] && break
    sleep 0.1
  done
  log "replication primary :$MYSQL_PORT -> replica :$MYSQL_REPLICA_PORT running"
}

# ---------------------------------------------------------------- Redis (single + 6-node Cluster)
redis_dir() { echo "$BASE/redis-$1"; }

redis_node_up() { # port [cluster]
  local port=$1 cluster=${2:-} dir
  dir=$(redis_dir "$port")
  if alive "$dir/redis.pid" && redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
  mkdir -p "$dir"
  wait_gone "$dir/redis.pid"
  local args=(--port "$port" --bind 127.0.0.1 --dir "$dir" --pidfile "$dir/redis.pid"
    --logfile "$dir/redis.log" --daemonize yes --appendonly no --save "" --protected-mode no
    --repl-diskless-sync-delay 0)
  if [ -n "$cluster" ]; then
    args+=(--cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 2000)
  fi
  redis-server "${args[@]}"
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  log "redis on :$port did not start:"; tail -20 "$dir/redis.log" >&2; exit 1
}

redis_node_down() { # port
  local dir
  dir=$(redis_dir "$1")
  if alive "$dir/redis.pid"; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    wait_gone "$dir/redis.pid"
  fi
}

redis_cluster_up() {
  local addrs=() port first
  for port in $REDIS_CLUSTER_PORTS; do redis_node_up "$port" cluster; addrs+=("127.0.0.1:$port"); done
  first=${REDIS_CLUSTER_PORTS%% *}
  if ! redis-cli -p "$first" cluster info | grep -q 'cluster_state:ok'; then
    if [ "$(redis-cli -p "$first" cluster info | awk -F: '/cluster_known_nodes/{print $2}' | tr -d '\r')" = 1 ]; then
      redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    fi
    for _ in $(seq 1 200); do
      redis-cli -p "$first" cluster info | grep -q 'cluster_state:ok' && break
      sleep 0.05
    done
  fi
  # cluster_state:ok comes before the replicas are attached: wait for every replica's link.
  for _ in $(seq 1 200); do
    local pending=0
    for port in $REDIS_CLUSTER_PORTS; do
      if redis-cli -p "$port" info replication | grep -q 'role:slave'; then
        redis-cli -p "$port" info replication | grep -q 'master_link_status:up' || pending=1
      fi
    done
    [ $pending = 0 ] && break
    sleep 0.05
  done
  # A fresh cluster reports ok on one node before every node has learnt the slot map by gossip;
  # a client then meets CLUSTERDOWN. Wait until every node agrees (redis-cli's own check).
  for _ in $(seq 1 200); do
    redis-cli --cluster check "127.0.0.1:$first" 2>/dev/null | grep -q 'All nodes agree about slots' \
      && ! redis-cli --cluster check "127.0.0.1:$first" 2>/dev/null | grep -q '\[ERR\]' && break
    sleep 0.05
  done
  for port in $REDIS_CLUSTER_PORTS; do
    for _ in $(seq 1 100); do
      redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' && break
      sleep 0.05
    done
  done
  log "redis cluster up on 127.0.0.1:${REDIS_CLUSTER_PORTS// /,}"
}

# The port of the master that serves slot 0 (where a failover test aims), as every node sees it
# once the cluster is settled (a node restarted a moment ago may still hold an old view).
redis_master_of_slot0() {
  local port answer
  for _ in $(seq 1 100); do
    answer=""
    for port in $REDIS_CLUSTER_PORTS; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || { answer=""; break; }
      local seen
      seen=$(redis-cli -p "$port" cluster nodes 2>/dev/null |
        awk '$3 ~ /master/ && $3 !~ /fail/ && $9 ~ /^0-/ {split($2, a, "[:@]"); print a[2]}')
      if [ -z "$answer" ]; then answer=$seen; elif [ "$answer" != "$seen" ]; then answer=""; break; fi
    done
    [ -n "$answer" ] && { echo "$answer"; return 0; }
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- MongoDB wire protocol (SecantusDB)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

mongo_up() {
  local dir="$BASE/mongo"
  if alive "$dir/mongo.pid" && port_open "$MONGO_PORT"; then log "mongodb (SecantusDB) already up on 127.0.0.1:$MONGO_PORT"; return 0; fi
  if [ ! -x "$MONGO_VENV/bin/python" ] || ! "$MONGO_VENV/bin/python" -c 'import secantus' 2>/dev/null; then
    log "installing SecantusDB (PyPI) into $MONGO_VENV"
    python3 -m venv "$MONGO_VENV" >&2
    "$MONGO_VENV/bin/pip" install --quiet --disable-pip-version-check secantusdb >&2
  fi
  mkdir -p "$dir/data"
  wait_gone "$dir/mongo.pid"
  "$MONGO_VENV/bin/python" -m secantus --host 127.0.0.1 --port "$MONGO_PORT" --storage-path "$dir/data" \
    --log-level WARNING >"$dir/mongo.log" 2>&1 &
  echo $! >"$dir/mongo.pid"
  for _ in $(seq 1 200); do port_open "$MONGO_PORT" && break; sleep 0.05; done
  port_open "$MONGO_PORT" || { log "SecantusDB did not start:"; tail -20 "$dir/mongo.log" >&2; exit 1; }
  log "mongodb (SecantusDB) up on 127.0.0.1:$MONGO_PORT"
}

mongo_down() {
  local dir="$BASE/mongo"
  if alive "$dir/mongo.pid"; then
    kill "$(cat "$dir/mongo.pid")" 2>/dev/null || true
    wait_gone "$dir/mongo.pid"
  fi
}

# ---------------------------------------------------------------- commands
up() {
  ensure_packages mariadbd mariadb-server mariadb mariadb-client redis-server redis-server \
    redis-cli redis-tools
  # Debian splits venv's pip bootstrap into python3-venv.
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  mkdir -p "$BASE"
  mysql_up primary "$MYSQL_PORT" 1
  mysql_up replica "$MYSQL_REPLICA_PORT" 2 replica
  replication_up
  redis_node_up "$REDIS_PORT"
  log "redis single up on 127.0.0.1:$REDIS_PORT"
  redis_cluster_up
  mongo_up
  cat <<EOF
export APP__MYSQL__DSN='mysql://root@127.0.0.1:$MYSQL_PORT/$MYSQL_DB'
export APP__MYSQL__REPLICAS__0__DSN='mysql://$APP_USER:$APP_PASS@127.0.0.1:$MYSQL_REPLICA_PORT/$MYSQL_DB'
export APP__REDIS__ENABLED=true
export APP__REDIS__MODE=single
export APP__REDIS__ADDRS__0='127.0.0.1:$REDIS_PORT'
export GOEX_REDIS_CLUSTER_ADDRS='$(for p in $REDIS_CLUSTER_PORTS; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')'
export APP__MONGODB__ENABLED=true
export APP__MONGODB__ADDR='mongodb://127.0.0.1:$MONGO_PORT'
export GOEX_SERVICES_DIR='$BASE'
EOF
}

down() {
  local port
  for port in $REDIS_PORT $REDIS_CLUSTER_PORTS; do redis_node_down "$port"; done
  mongo_down
  mysql_down replica
  mysql_down primary
  rm -rf "$BASE"
  log "data removed ($BASE)"
}

status() {
  for node in primary:$MYSQL_PORT replica:$MYSQL_REPLICA_PORT; do
    if alive "$(mysql_dir "${node%%:*}")/mariadb.pid"; then echo "mariadb ${node%%:*}: up on 127.0.0.1:${node##*:}"
    else echo "mariadb ${node%%:*}: down"; fi
  done
  local port
  for port in $REDIS_PORT $REDIS_CLUSTER_PORTS; do
    if alive "$(redis_dir "$port")/redis.pid"; then echo "redis :$port: up"; else echo "redis :$port: down"; fi
  done
  if alive "$BASE/mongo/mongo.pid"; then echo "mongodb :$MONGO_PORT: up"; else echo "mongodb :$MONGO_PORT: down"; fi
}

# One server, for failure tests:
#   stop|start mysql-replica
#   stop redis-master          (the master of slot 0; prints its port)
#   start redis-node PORT      (a restarted node rejoins as a replica)
one() { # stop|start name [port]
  case "$2" in
    mysql-replica)
      if [ "$1" = stop ]; then mysql_down replica; else mysql_up replica "$MYSQL_REPLICA_PORT" 2 replica; fi ;;
    redis-master)
      local port
      port=$(redis_master_of_slot0) || { log "the cluster did not settle: no single master of slot 0"; exit 1; }
      redis_node_down "$port"
      echo "$port" ;;
    redis-node)
      redis_node_up "${3:?port}" cluster
      redis_cluster_up ;;
    *) echo "unknown server $2 (mysql-replica, redis-master, redis-node PORT)" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  stop|start) one "$1" "${2:-}" "${3:-}" ;;
  *) echo "usage: $0 up|down|status|stop NAME|start NAME" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Starts and stops the real servers the tests and the non-embedded profiles use, on loopback and
# non-default ports: a MariaDB primary + GTID replica, a single Redis, a 6-node Redis Cluster and
# SecantusDB (MongoDB wire protocol). Idempotent: `up` twice reuses what runs.
#
#   eval "$(scripts/services.sh up)"    # install if needed, start, export APP__... for the app
#   scripts/services.sh status
#   scripts/services.sh stop|start NAME # one server, for failure tests (see `one` below)
#   scripts/services.sh down            # stop everything and delete the data
#
# The exports put the app (any profile) on these servers: database.driver mysql, the primary
# and its replica, Redis single and MongoDB enabled.
# Progress goes to stderr; stdout carries only the `export` lines.
#
# The data lives in a folder made by `mktemp -d`. `up` records it in $STATE (mode 0600) so that
# every later command, from any shell, finds the running servers; GOEX_SERVICES_DIR (exported by
# `up`) wins while that folder exists. `down` deletes the folder and the record.
set -euo pipefail

CACHE=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}
STATE=$CACHE/services.dir
MYSQL_PORT=${GOEX_MYSQL_PORT:-13306}
MYSQL_REPLICA_PORT=${GOEX_MYSQL_REPLICA_PORT:-13307}
MYSQL_DB=go_example
# The application's account: no SUPER / READ_ONLY ADMIN, so `read_only` stops it on the replica
# (a write applied on a replica breaks GTID replication).
APP_USER=app
APP_PASS=apppass
MONGO_PORT=${GOEX_MONGO_PORT:-27117}
# The venv outlives the data folder: pip runs once per machine, not once per `up`.
MONGO_VENV=$CACHE/mongo-venv
REDIS_PORT=${GOEX_REDIS_PORT:-16379}
REDIS_CLUSTER_PORTS=${GOEX_REDIS_CLUSTER_PORTS:-"17000 17001 17002 17003 17004 17005"}

log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

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

# ---------------------------------------------------------------- the data folder
# Refuses a folder another user could have planted or can write into: `down` deletes it and the
# servers run from it.
check_dir() { # dir
  local dir=$1 owner mode
  case "$dir" in /*) ;; *) die "refusing services folder '$dir': not an absolute path" ;; esac
  [ ! -L "$dir" ] || die "refusing services folder $dir: a symbolic link"
  [ -d "$dir" ] || die "refusing services folder $dir: not a directory"
  read -r owner mode < <(stat -c '%u %a' "$dir")
  [ "$owner" = "$(id -u)" ] || die "refusing services folder $dir: owned by uid $owner, not by uid $(id -u)"
  [ $((8#$mode & 8#002)) -eq 0 ] || die "refusing services folder $dir: world-writable (mode $mode)"
}

# The folder the state file records, or nothing.
recorded_dir() {
  [ -e "$STATE" ] || return 0
  if [ -L "$STATE" ] || [ ! -f "$STATE" ]; then die "refusing $STATE: not a regular file"; fi
  [ "$(stat -c %u "$STATE")" = "$(id -u)" ] || die "refusing $STATE: not owned by uid $(id -u)"
  head -n 1 "$STATE"
}

record_dir() { # dir
  local tmp
  mkdir -p "$CACHE"
  tmp=$(mktemp "$STATE.XXXXXX")
  chmod 600 "$tmp"
  printf '%s\n' "$1" >"$tmp"
  mv -f "$tmp" "$STATE"
}

forget_dir() { # dir: drops the record if it names dir
  if [ -f "$STATE" ] && [ "$(recorded_dir)" = "$1" ]; then rm -f "$STATE"; fi
}

# BASE: GOEX_SERVICES_DIR if that folder exists, else the recorded folder if it exists, else
# GOEX_SERVICES_DIR (`up` creates it), else empty (`up` makes one with mktemp -d).
resolve_base() {
  local wanted=${GOEX_SERVICES_DIR:-}
  RECORDED=$(recorded_dir)
  if [ -n "$wanted" ] && [ -d "$wanted" ]; then BASE=$wanted
  elif [ -n "$RECORDED" ] && [ -d "$RECORDED" ]; then
    [ -z "$wanted" ] || log "GOEX_SERVICES_DIR=$wanted is gone; using the recorded $RECORDED"
    BASE=$RECORDED
  else BASE=$wanted; fi
  if [ -n "$BASE" ] && [ -e "$BASE" ]; then check_dir "$BASE"; fi
}

# Why there is no folder, for messages.
no_base_reason() {
  if [ -n "$BASE" ]; then echo "$BASE is gone"
  elif [ -n "$RECORDED" ]; then echo "the recorded $RECORDED is gone"
  else echo "none recorded in $STATE"; fi
}

# ---------------------------------------------------------------- our processes
# A pid from a pid file is signalled only when it is a process of the current user running the
# expected server from this folder: a pid file outliving its server may name anything by now.
#   mariadb MY.CNF | redis PORT | mongo STORAGE_PATH
is_server() { # pid kind marker
  local pid=$1 kind=$2 marker=$3 cmd
  [ "$(stat -c %u "/proc/$pid" 2>/dev/null)" = "$(id -u)" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) " || return 1
  case "$kind" in
    mariadb) [[ "$cmd" == *mariadbd\ * && "$cmd" == *" --defaults-file=$marker "* ]] ;;
    # redis-server rewrites its title to "redis-server 127.0.0.1:PORT [cluster]".
    redis) [[ "$cmd" == *redis-server\ * && ( "$cmd" == *":$marker "* || "$cmd" == *" --port $marker "* ) ]] ;;
    mongo) [[ "$cmd" == *python* && "$cmd" == *" -m secantus "* && "$cmd" == *" --storage-path $marker "* ]] ;;
    *) return 1 ;;
  esac
}

# The pid in a pid file if it is our running server; a live pid that is not is logged, never
# signalled.
our_pid() { # pidfile kind marker
  local file=$1 pid owner
  # A server removes its pid file as it exits: a file gone meanwhile means not running.
  pid=$(head -c 32 "$file" 2>/dev/null | tr -d '[:space:]') || true
  [ -n "$pid" ] || return 1
  case "$pid" in *[!0-9]*) log "ignoring $file: no pid in it"; return 1 ;; esac
  [ -d "/proc/$pid" ] || return 1
  if ! is_server "$pid" "$2" "$3"; then
    owner=$(stat -c %u "/proc/$pid" 2>/dev/null) || return 1
    log "not touching pid $pid from $file: uid $owner, command [$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)] is not our $2 server"
    return 1
  fi
  echo "$pid"
}

alive() { our_pid "$@" >/dev/null; }

# Waits up to 10 s for our server to exit, then kills it (still only if it is ours).
wait_pid() { # pid kind marker
  for _ in $(seq 1 100); do is_server "$@" || return 0; sleep 0.1; done
  log "pid $1 ($2) did not exit in 10 s: SIGKILL"
  kill -9 "$1" 2>/dev/null || true
}

# Before a start: lets our previous server of a pid file finish exiting; a foreign pid is left.
wait_gone() { # pidfile kind marker
  local pid
  pid=$(our_pid "$@") || return 0
  wait_pid "$pid" "$2" "$3"
}

stop_server() { # pidfile kind marker; returns 1 when nothing of ours ran
  local pid
  pid=$(our_pid "$@") || return 1
  kill "$pid" 2>/dev/null || true
  wait_pid "$pid" "$2" "$3"
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
  if alive "$dir/mariadb.pid" mariadb "$dir/my.cnf" && mysql_client "$port" -e 'SELECT 1' >/dev/null 2>&1; then
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
  wait_gone "$dir/mariadb.pid" mariadb "$dir/my.cnf"
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
  if stop_server "$dir/mariadb.pid" mariadb "$dir/my.cnf"; then log "mariadb $1 stopped"; fi
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
  if alive "$dir/redis.pid" redis "$port" && redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
  mkdir -p "$dir"
  wait_gone "$dir/redis.pid" redis "$port"
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
  stop_server "$dir/redis.pid" redis "$1" || true
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
  if alive "$dir/mongo.pid" mongo "$dir/data" && port_open "$MONGO_PORT"; then log "mongodb (SecantusDB) already up on 127.0.0.1:$MONGO_PORT"; return 0; fi
  if [ ! -x "$MONGO_VENV/bin/python" ] || ! "$MONGO_VENV/bin/python" -c 'import secantus' 2>/dev/null; then
    log "installing SecantusDB (PyPI) into $MONGO_VENV"
    python3 -m venv "$MONGO_VENV" >&2
    "$MONGO_VENV/bin/pip" install --quiet --disable-pip-version-check secantusdb >&2
  fi
  mkdir -p "$dir/data"
  wait_gone "$dir/mongo.pid" mongo "$dir/data"
  "$MONGO_VENV/bin/python" -m secantus --host 127.0.0.1 --port "$MONGO_PORT" --storage-path "$dir/data" \
    --log-level WARNING >"$dir/mongo.log" 2>&1 &
  echo $! >"$dir/mongo.pid"
  for _ in $(seq 1 200); do port_open "$MONGO_PORT" && break; sleep 0.05; done
  port_open "$MONGO_PORT" || { log "SecantusDB did not start:"; tail -20 "$dir/mongo.log" >&2; exit 1; }
  log "mongodb (SecantusDB) up on 127.0.0.1:$MONGO_PORT"
}

mongo_down() {
  local dir="$BASE/mongo"
  stop_server "$dir/mongo.pid" mongo "$dir/data" || true
}

# ---------------------------------------------------------------- commands
up() {
  ensure_packages mariadbd mariadb-server mariadb mariadb-client redis-server redis-server \
    redis-cli redis-tools
  # Debian splits venv's pip bootstrap into python3-venv.
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  if [ -z "$BASE" ]; then
    BASE=$(mktemp -d "${TMPDIR:-/tmp}/go_example-services.XXXXXXXXXX")
    log "data under $BASE"
  elif [ ! -e "$BASE" ]; then
    mkdir -p "$(dirname "$BASE")"
    mkdir -m 0700 "$BASE"
  fi
  check_dir "$BASE"
  local recorded
  recorded=$(recorded_dir)
  if [ -n "$recorded" ] && [ "$recorded" != "$BASE" ] && [ -d "$recorded" ]; then
    log "warning: $STATE records $recorded (left as is); this run uses $BASE"
  else
    record_dir "$BASE"
  fi
  mysql_up primary "$MYSQL_PORT" 1
  mysql_up replica "$MYSQL_REPLICA_PORT" 2 replica
  replication_up
  redis_node_up "$REDIS_PORT"
  log "redis single up on 127.0.0.1:$REDIS_PORT"
  redis_cluster_up
  mongo_up
  cat <<EOF
export APP__DATABASE__DRIVER=mysql
export APP__MYSQL__DSN='mysql://root@127.0.0.1:$MYSQL_PORT/$MYSQL_DB'
export APP__MYSQL__REPLICAS__0__DSN='mysql://$APP_USER:$APP_PASS@127.0.0.1:$MYSQL_REPLICA_PORT/$MYSQL_DB'
export APP__REDIS__ENABLED=true
export APP__REDIS__MODE=single
export APP__REDIS__ADDRS__0='127.0.0.1:$REDIS_PORT'
export GOEX_REDIS_CLUSTER_ADDRS='$(for p in $REDIS_CLUSTER_PORTS; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')'
export APP__MONGODB__ENABLED=true
export APP__MONGODB__ADDR='mongodb://127.0.0.1:$MONGO_PORT'
EOF
  printf 'export GOEX_SERVICES_DIR=%q\n' "$BASE"
}

# Exits when no folder holds servers: nothing of ours can be running.
need_base() {
  [ -n "$BASE" ] && [ -d "$BASE" ] && return 0
  [ "${1:-}" = quiet ] || log "no services folder ($(no_base_reason)): start them with scripts/services.sh up"
  return 1
}

down() {
  if ! need_base quiet; then
    log "nothing to stop: no services folder ($(no_base_reason))"
    # A record whose folder is gone (a reboot cleaned /tmp) is dropped.
    if [ -n "$RECORDED" ] && [ ! -e "$RECORDED" ]; then rm -f "$STATE"; fi
    return 0
  fi
  local port
  for port in $REDIS_PORT $REDIS_CLUSTER_PORTS; do redis_node_down "$port"; done
  mongo_down
  mysql_down replica
  mysql_down primary
  check_dir "$BASE"
  rm -rf "$BASE"
  forget_dir "$BASE"
  log "data removed ($BASE)"
}

status() {
  if need_base quiet; then log "data under $BASE"; else log "no services folder ($(no_base_reason))"; fi
  local node dir
  for node in primary:$MYSQL_PORT replica:$MYSQL_REPLICA_PORT; do
    dir=$(mysql_dir "${node%%:*}")
    if [ -n "$BASE" ] && alive "$dir/mariadb.pid" mariadb "$dir/my.cnf"; then echo "mariadb ${node%%:*}: up on 127.0.0.1:${node##*:}"
    else echo "mariadb ${node%%:*}: down"; fi
  done
  local port
  for port in $REDIS_PORT $REDIS_CLUSTER_PORTS; do
    if [ -n "$BASE" ] && alive "$(redis_dir "$port")/redis.pid" redis "$port"; then echo "redis :$port: up"; else echo "redis :$port: down"; fi
  done
  if [ -n "$BASE" ] && alive "$BASE/mongo/mongo.pid" mongo "$BASE/mongo/data"; then echo "mongodb :$MONGO_PORT: up"; else echo "mongodb :$MONGO_PORT: down"; fi
}

# One server, for failure tests:
#   stop|start mysql-replica
#   stop redis-master          (the master of slot 0; prints its port)
#   start redis-node PORT      (a restarted node rejoins as a replica)
one() { # stop|start name [port]
  need_base || exit 1
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

BASE="" RECORDED=""
case "${1:-}" in up | down | status | stop | start) resolve_base ;; esac
case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  stop|start) one "$1" "${2:-}" "${3:-}" ;;
  *) echo "usage: $0 up|down|status|stop NAME|start NAME" >&2; exit 2 ;;
esac

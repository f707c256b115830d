#!/usr/bin/env bash
# The scale-out topology of deploy/docker-compose.yml without Docker, all on 127.0.0.1:
# a PostgreSQL primary, one streaming replica of it (pg_basebackup -R, PostgreSQL's own
# replication), three API instances (release build) reading public routes from the replica,
# and nginx in front of them (deploy/nginx.conf.template).
#
#   scripts/cluster.sh start     # then: curl localhost:8080/health
#   scripts/cluster.sh status
#   scripts/cluster.sh stop      # every process by its PID; data kept for the next start
#   scripts/cluster.sh clean     # stop, then remove the data
#
# Settings (environment): CLUSTER_DIR (default target/cluster), NGINX_PORT (8080),
# PG_PORT (55432), REPLICA_PORT (55433), API_PORTS ("3101 3102 3103"), SERVER_BIN (a server
# binary to run instead of building one with cargo), and any server
# setting (RATE_LIMIT_ENABLED, DB_MAX_CONNECTIONS, RUST_LOG...), passed to every instance.
# Needs: PostgreSQL server binaries, nginx (apt install postgresql nginx), cargo, curl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mkdir -p "${CLUSTER_DIR:-$root/target/cluster}" && cd "${CLUSTER_DIR:-$root/target/cluster}" && pwd)
nginx_port=${NGINX_PORT:-8080}
pg_port=${PG_PORT:-55432}
replica_port=${REPLICA_PORT:-55433}
read -r -a api_ports <<<"${API_PORTS:-3101 3102 3103}"

say() { echo "--- cluster: $*"; }

pg_bin() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && [ -x "$dir/pg_basebackup" ] && { echo "$dir"; return; }
  done
  echo "PostgreSQL server binaries not found (apt install postgresql)" >&2
  exit 1
}

# PostgreSQL refuses to run as root: run its tools as the postgres account then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A pid file's process is alive and still the program it was written for (not a reused PID).
alive() { # pid file, [program name]
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  [ -z "${2:-}" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2"
}

# SIGTERM (a graceful shutdown), then SIGKILL if it is still there after 20 s.
stop_pid() { # pid file, program name
  local i
  alive "$1" "$2" || { rm -f "$1"; return 0; }
  kill -TERM "$(cat "$1")"
  for i in $(seq 1 200); do
    alive "$1" "$2" || { rm -f "$1"; return 0; }
    sleep 0.1
  done
  kill -KILL "$(cat "$1")" 2>/dev/null || true
  rm -f "$1"
}

wait_for() { # url, what
  local i
  for i in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$2 did not come up ($1)" >&2
  return 1
}

server_binary() {
  (cd "$root" && cargo build --release --bin event-booking --message-format=json-render-diagnostics) |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])'
}

start() {
  local bin pg password url read_url port n
  command -v nginx >/dev/null || { echo "nginx not found (apt install nginx)" >&2; exit 1; }
  pg=$(pg_bin)
  if [ -n "${SERVER_BIN:-}" ]; then
    bin=$SERVER_BIN
  else
    say "building the server (release)"
    bin=$(server_binary)
  fi
  [ -x "$bin" ] || { echo "cargo did not report the server binary" >&2; exit 1; }
  mkdir -p "$dir/pg" "$dir/nginx"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pg" && chmod 755 "$dir" "$dir/pg"

  if [ ! -s "$dir/pg/password" ]; then
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/pg/password"
    chmod 600 "$dir/pg/password"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pg/password"
  fi
  password=$(cat "$dir/pg/password")
  if [ ! -s "$dir/pg/primary/PG_VERSION" ]; then
    say "initializing the primary"
    as_pg "$pg/initdb" -D "$dir/pg/primary" -U postgres -E UTF8 --locale=C \
      --auth-host=scram-sha-256 --auth-local=peer --pwfile="$dir/pg/password" >/dev/null
  fi
  if ! as_pg "$pg/pg_ctl" -D "$dir/pg/primary" status >/dev/null 2>&1; then
    say "starting the primary on 127.0.0.1:$pg_port"
    as_pg "$pg/pg_ctl" -D "$dir/pg/primary" -l "$dir/pg/primary.log" -w start \
      -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200"
  fi
  export PGPASSWORD=$password
  if ! psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = 'event_booking'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE event_booking"
  fi
  if [ ! -s "$dir/pg/replica/PG_VERSION" ]; then
    say "taking the replica's base backup"
    as_pg env PGPASSWORD="$password" "$pg/pg_basebackup" -D "$dir/pg/replica" -R -X stream \
      --checkpoint=fast -h 127.0.0.1 -p "$pg_port" -U postgres
  fi
  if ! as_pg "$pg/pg_ctl" -D "$dir/pg/replica" status >/dev/null 2>&1; then
    say "starting the replica on 127.0.0.1:$replica_port"
    as_pg "$pg/pg_ctl" -D "$dir/pg/replica" -l "$dir/pg/replica.log" -w start \
      -o "-p $replica_port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200"
  fi

  url="postgres://postgres:$password@127.0.0.1:$pg_port/event_booking"
  read_url="postgres://postgres:$password@127.0.0.1:$replica_port/event_booking"
  [ -s "$dir/jwt_secret" ] || { head -c 48 /dev/urandom | base64 >"$dir/jwt_secret"; chmod 600 "$dir/jwt_secret"; }
  n=0
  for port in "${api_ports[@]}"; do
    n=$((n + 1))
    if alive "$dir/api$n.pid" event-booking; then continue; fi
    say "starting API instance $n on 127.0.0.1:$port"
    # The first instance migrates; the others wait for it (their own migration is a no-op).
    # nginx on 127.0.0.1 forwards the client's address; the rate limits key on it.
    DATABASE_URL=$url DATABASE_READ_URL=$read_url PORT=$port JWT_SECRET=$(cat "$dir/jwt_secret") \
      TRUSTED_PROXIES=${TRUSTED_PROXIES:-127.0.0.1} RUST_LOG=${RUST_LOG:-warn} \
      nohup "$bin" >"$dir/api$n.log" 2>&1 &
    echo $! >"$dir/api$n.pid"
    wait_for "http://127.0.0.1:$port/health" "API instance $n"
  done

  local upstreams=""
  for port in "${api_ports[@]}"; do upstreams+="        server 127.0.0.1:$port;\n"; done
  sed -e "s|@PREFIX@|$dir/nginx|g" -e "s|@LISTEN@|127.0.0.1:$nginx_port|" \
    -e "s|@UPSTREAMS@|${upstreams%\\n}|" "$root/deploy/nginx.conf.template" >"$dir/nginx/nginx.conf"
  if ! alive "$dir/nginx/nginx.pid" nginx; then
    say "starting nginx on 127.0.0.1:$nginx_port"
    nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -e "$dir/nginx/error.log"
  fi
  wait_for "http://127.0.0.1:$nginx_port/health" "nginx"
  say "up: http://127.0.0.1:$nginx_port (health: $(curl -fsS "http://127.0.0.1:$nginx_port/health"))"
}

stop() {
  local pg n
  if alive "$dir/nginx/nginx.pid" nginx; then
    say "stopping nginx"
    kill -QUIT "$(cat "$dir/nginx/nginx.pid")"
  fi
  for n in $(seq 1 "${#api_ports[@]}"); do
    if alive "$dir/api$n.pid" event-booking; then say "stopping API instance $n"; fi
    stop_pid "$dir/api$n.pid" event-booking &
  done
  wait
  pg=$(pg_bin)
  for node in replica primary; do
    if [ -d "$dir/pg/$node" ] && as_pg "$pg/pg_ctl" -D "$dir/pg/$node" status >/dev/null 2>&1; then
      say "stopping the $node"
      as_pg "$pg/pg_ctl" -D "$dir/pg/$node" -m fast -w stop >/dev/null
    fi
  done
}

status() {
  local n port
  for n in $(seq 1 "${#api_ports[@]}"); do
    port=${api_ports[$((n - 1))]}
    if alive "$dir/api$n.pid" event-booking; then echo "api$n: pid $(cat "$dir/api$n.pid"), :$port"; else echo "api$n: down"; fi
  done
  if alive "$dir/nginx/nginx.pid" nginx; then echo "nginx: pid $(cat "$dir/nginx/nginx.pid"), :$nginx_port"; else echo "nginx: down"; fi
  curl -fsS "http://127.0.0.1:$nginx_port/health" 2>/dev/null && echo || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  clean) stop; rm -rf "$dir" ;;
  *) echo "usage: $0 start|stop|status|clean" >&2; exit 2 ;;
esac

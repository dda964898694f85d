# A throwaway PostgreSQL server for the registry tests. Source this file, then call pg_start:
#
#     source .ci/postgres.sh && pg_start      # exports CRMSE_TEST_PG_URL, stops at exit
#
# It uses the Debian `postgresql` package (installed with apt-get when missing and root):
# initdb + pg_ctl in a temporary folder, trust authentication, a free localhost port and the
# unix socket in that folder. As root the server runs as the `postgres` user (PostgreSQL refuses
# root). The EXIT trap stops the server and removes the folder.

_pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ]; then echo "$d"; elif command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; fi
}

pg_start() {
  local bin port user
  bin=$(_pg_bin)
  if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
      || echo "ci: could not install postgresql"
    bin=$(_pg_bin)
  fi
  if [ -z "$bin" ]; then
    echo "ci: no PostgreSQL server found; the PostgreSQL registry tests will skip"
    return 0
  fi
  PG_DIR=$(mktemp -d /tmp/crmse-pg.XXXXXX)
  user=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    user=postgres
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  _pg_as() { if [ "$(id -un)" = "$user" ]; then "$@"; else runuser -u "$user" -- "$@"; fi; }
  _pg_as "$bin/initdb" -D "$PG_DIR/data" -U crmse -A trust -E UTF8 --no-instructions >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log"; return 1; }
  _pg_as "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null \
    || { cat "$PG_DIR/server.log"; return 1; }
  PG_CTL="$bin/pg_ctl"
  PG_USER="$user"
  export CRMSE_TEST_PG_URL="postgresql+psycopg://crmse@127.0.0.1:$port/postgres"
  trap pg_stop EXIT
  echo "ci: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $CRMSE_TEST_PG_URL"
}

pg_stop() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    if [ "$(id -un)" = "$PG_USER" ]; then "$PG_CTL" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
    else runuser -u "$PG_USER" -- "$PG_CTL" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true; fi
    rm -rf "$PG_DIR"
  fi
  PG_DIR=
}

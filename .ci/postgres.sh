#!/usr/bin/env bash
# Makes sure PostgreSQL is usable for CI and prints a DATABASE_URL on stdout:
# - installs Debian's `postgresql` package when the server binaries are missing (the tests'
#   throwaway-server mode needs them too);
# - uses the server on 127.0.0.1:5432 when it accepts the `postgres` user without a password;
# - otherwise starts a throwaway cluster (trust auth) on a free port, as the `postgres` user.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

bin_dir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(bin_dir)" ] || [ ! -x "$(bin_dir)/initdb" ]; then
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends postgresql postgresql-client >&2
fi
BIN=$(bin_dir)

try() { "$BIN/psql" "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

# ES_CI_FORCE_THROWAWAY=1 skips the running server (to exercise the fallback).
for url in postgres://postgres@127.0.0.1:5432/test postgres://postgres@127.0.0.1:5432/postgres; do
  if [ -z "${ES_CI_FORCE_THROWAWAY:-}" ] && [ -x "$BIN/psql" ] && try "$url"; then
    log "using the running server: $url"
    echo "$url"
    exit 0
  fi
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
dir=$(mktemp -d /tmp/es-ci-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$dir"
  as_pg=(runuser -u postgres --)
fi
log "starting a throwaway cluster in $dir on port $port"
"${as_pg[@]}" "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >&2
"${as_pg[@]}" "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c max_prepared_transactions=10 -c fsync=off" start >&2
# For the caller's clean-up: `pg_ctl -D <this> stop`.
if [ -n "${ES_CI_PG_DATA_FILE:-}" ]; then echo "$dir/data" >"$ES_CI_PG_DATA_FILE"; fi
echo "postgres://postgres@127.0.0.1:$port/postgres"

#!/usr/bin/env bash
# Starts a PgBouncer in transaction-pooling mode in front of a PostgreSQL server and prints
# its URL on stdout (everything else goes to stderr).
#
#   bash .ci/pgbouncer.sh [UPSTREAM_URL]     # default: $DATABASE_URL
#
# - installs Debian's `pgbouncer` package when the binary is missing;
# - writes its config, auth file, log and pid file in a fresh directory under /tmp;
# - listens on a free port of 127.0.0.1 (no Unix socket), trust auth, pool_mode
#   $ES_PGBOUNCER_POOL_MODE (default transaction; the es-postgres tests default to session,
#   see es-postgres/tests/pgbouncer/bouncer.rs);
# - runs as the `postgres` user when we are root (PgBouncer refuses to run as root).
#
# Stopping it is the caller's job: when ES_CI_PGBOUNCER_DIR_FILE names a file, the directory
# is written there; `kill "$(cat <dir>/pgbouncer.pid)"` stops it, then remove the directory.
set -euo pipefail

log() { echo "pgbouncer.sh: $*" >&2; }

upstream=${1:-${DATABASE_URL:-}}
if [ -z "$upstream" ]; then
  log "usage: pgbouncer.sh UPSTREAM_URL (or set DATABASE_URL)"
  exit 2
fi
# postgres://user[:password]@host[:port]/database[?params]
re='^postgres(ql)?://([^:@/]+)(:[^@/]*)?@([^:/?]+)(:([0-9]+))?/([^?/]+)'
if ! [[ $upstream =~ $re ]]; then
  log "cannot parse '$upstream': expected postgres://user@host[:port]/database"
  exit 2
fi
user=${BASH_REMATCH[2]}
password=${BASH_REMATCH[3]#:}
host=${BASH_REMATCH[4]}
port=${BASH_REMATCH[6]:-5432}
database=${BASH_REMATCH[7]}
pool_mode=${ES_PGBOUNCER_POOL_MODE:-transaction}
case $pool_mode in session | transaction) ;; *)
  log "ES_PGBOUNCER_POOL_MODE=$pool_mode: expected session or transaction"
  exit 2
  ;;
esac

bin=$(command -v pgbouncer || true)
if [ -z "$bin" ] && [ -x /usr/sbin/pgbouncer ]; then bin=/usr/sbin/pgbouncer; fi
if [ -z "$bin" ]; then
  log "installing Debian's pgbouncer package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends pgbouncer >&2
  bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
fi
log "$("$bin" --version | head -n 1)"

listen_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 56432)
dir=$(mktemp -d /tmp/es-ci-pgbouncer.XXXXXX)
if [ -n "${ES_CI_PGBOUNCER_DIR_FILE:-}" ]; then echo "$dir" >"$ES_CI_PGBOUNCER_DIR_FILE"; fi

# trust: PgBouncer checks no password, but the user must still be listed in the auth file.
printf '"%s" "%s"\n' "$user" "$password" >"$dir/userlist.txt"
cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$database = host=$host port=$port dbname=$database
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen_port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $pool_mode
max_client_conn = 400
default_pool_size = 20
; sqlx sends extra_float_digits at start-up; PgBouncer does not track it.
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = $user
EOF

as_user=()
if [ "$(id -u)" = 0 ]; then
  chown -R postgres: "$dir"
  as_user=(runuser -u postgres --)
fi
"${as_user[@]}" "$bin" -d "$dir/pgbouncer.ini" >&2

# Up when it answers a query through to the upstream server.
url="postgres://$user${password:+:$password}@127.0.0.1:$listen_port/$database"
for _ in $(seq 1 100); do
  if psql "$url" -Atqc 'SELECT 1' >/dev/null 2>&1; then
    log "listening on 127.0.0.1:$listen_port, pool_mode = $pool_mode, upstream $host:$port/$database (in $dir)"
    echo "$url"
    exit 0
  fi
  sleep 0.1
done
log "PgBouncer did not answer; its log:"
cat "$dir/pgbouncer.log" >&2 || true
exit 1

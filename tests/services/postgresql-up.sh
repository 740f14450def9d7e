#!/usr/bin/env bash
# Start a private PostgreSQL server (Debian's package) for flowlib's monitoring tests.
#
#   127.0.0.1:$PG_PORT (55432), database $PG_DB (flowlib_test), user $PG_USER (flowlib)
#   with a generated password; data directory $PG_DIR/data, owned by the postgres user.
#
# Leaves in $PG_DIR (/tmp/flowlib-postgresql):
#   url       the SQLAlchemy URL, postgresql+psycopg://flowlib:PASSWORD@127.0.0.1:55432/flowlib_test
#             (mode 0644: a test database on loopback; the tests read it)
#   password, postgresql.log, data/
# Needs root (installs postgresql if missing, runs the server as the postgres user).
# Idempotent: a server already answering on the port is left running. Stop with postgresql-down.sh.
set -euo pipefail
PORT="${PG_PORT:-55432}"
DB="${PG_DB:-flowlib_test}"
USER_NAME="${PG_USER:-flowlib}"
DIR="${PG_DIR:-/tmp/flowlib-postgresql}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
  echo "postgresql-up: $*" >&2
  [ -s "$DIR/postgresql.log" ] && { echo "--- last lines of $DIR/postgresql.log" >&2; tail -n 30 "$DIR/postgresql.log" >&2; }
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "must run as root"
bash "$HERE/install-postgresql.sh" >/dev/null || die "cannot install postgresql"
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_pg() { runuser -u postgres -- "$@"; }

exec 9>"${DIR%/}.lock"
flock -w 120 9 || die "another postgresql-up.sh/postgresql-down.sh holds ${DIR%/}.lock"

install -d -m 0755 -o postgres -g postgres "$DIR"
if [ ! -s "$DIR/password" ]; then
  (umask 022; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DIR/password")
fi
chown postgres:postgres "$DIR/password"
PASSWORD="$(cat "$DIR/password")"

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  if [ ! -s "$DIR/data/PG_VERSION" ]; then
    rm -rf "$DIR/data"
    as_pg "$BIN/initdb" -D "$DIR/data" -A scram-sha-256 --pwfile="$DIR/password" -U postgres >/dev/null \
      || die "initdb failed"
  fi
  install -d -m 0775 -o postgres -g postgres "$DIR/socket"
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgresql.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR/socket -c fsync=off -c max_connections=100" start >/dev/null 9>&- \
    || die "the server did not start"
fi
export PGPASSWORD="$PASSWORD"
psql_pg() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }
psql_pg -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'" | grep -q 1 \
  || psql_pg -c "CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASSWORD'"
psql_pg -c "ALTER ROLE $USER_NAME PASSWORD '$PASSWORD'"
psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
  || psql_pg -c "CREATE DATABASE $DB OWNER $USER_NAME"
echo "postgresql+psycopg://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB" > "$DIR/url"
chmod 0644 "$DIR/url"
PGPASSWORD="$PASSWORD" psql -X -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d "$DB" -tAc "SELECT version()" \
  || die "cannot log in as $USER_NAME"

#!/usr/bin/env bash
# Stop the PostgreSQL server that tests/services/postgresql-up.sh started.
#   --purge  also delete $PG_DIR (data directory, password, URL).
set -uo pipefail
DIR="${PG_DIR:-/tmp/flowlib-postgresql}"
exec 9>"${DIR%/}.lock"
flock -w 120 9 || { echo "postgresql-down: another postgresql-up.sh/postgresql-down.sh holds ${DIR%/}.lock" >&2; exit 1; }
status=0
if [ -s "$DIR/data/postmaster.pid" ]; then
  BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop || status=1
fi
if [ "${1:-}" = "--purge" ] && [ "$status" = 0 ]; then
  rm -rf "$DIR"
fi
exit "$status"

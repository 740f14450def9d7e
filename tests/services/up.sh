#!/usr/bin/env bash
# Install the test tools (tests/services/install-*.sh: Open MPI, GNU parallel) and start
# every test service this directory has a script for (tests/services/*-up.sh, e.g.
# slurm-up.sh, sge-up.sh, sshd-up.sh); record which are up in tests/services/.status:
#
#   slurm up
#   sge failed (exit 1, log /tmp/flowlib-services/sge.log)
#   sshd skipped (not root)
#
# Services need root (they install Debian packages and start daemons). The scripts run
# one after another (apt takes a lock), each bounded by FLOWLIB_SERVICE_TIMEOUT seconds
# (default 600). FLOWLIB_SERVICES="slurm sge" limits which ones run.
#
# Outside CI a service that cannot start is reported and its tests skip. In CI (CI=true)
# every service must come up: otherwise this script exits non-zero after trying them all.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATUS="$HERE/.status"
LOGDIR="${FLOWLIB_SERVICE_LOGS:-${TMPDIR:-/tmp}/flowlib-services}"
LIMIT="${FLOWLIB_SERVICE_TIMEOUT:-600}"
ONLY="${FLOWLIB_SERVICES:-}"
mkdir -p "$LOGDIR"
: > "$STATUS.tmp"
failures=0

for script in "$HERE"/install-*.sh "$HERE"/*-up.sh; do
  [ -e "$script" ] || continue
  name="$(basename "$script" .sh)"
  name="${name%-up}"
  if [ -n "$ONLY" ] && ! [[ " ${ONLY//,/ } " == *" $name "* ]]; then
    continue
  fi
  log="$LOGDIR/$name.log"
  if [ "$(id -u)" != 0 ]; then
    echo "$name skipped (not root)" >> "$STATUS.tmp"
    echo "up.sh: $name skipped: services need root" >&2
    failures=$((failures + 1))
    continue
  fi
  start=$SECONDS
  if timeout --kill-after=10 "$LIMIT" bash "$script" > "$log" 2>&1; then
    echo "$name up" >> "$STATUS.tmp"
    echo "up.sh: $name up in $((SECONDS - start)) s" >&2
  else
    rc=$?
    echo "$name failed (exit $rc, log $log)" >> "$STATUS.tmp"
    echo "up.sh: $name FAILED (exit $rc after $((SECONDS - start)) s); last lines of $log:" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
    failures=$((failures + 1))
  fi
done
mv "$STATUS.tmp" "$STATUS"

if [ "$failures" -gt 0 ] && [ "${CI:-}" = true ]; then
  echo "up.sh: $failures service(s) not up, and CI=true: failing" >&2
  exit 1
fi
exit 0

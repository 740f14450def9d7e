#!/usr/bin/env bash
# Stop sge_execd and sge_qmaster started by tests/services/sge-up.sh, by pid file only.
# Jobs are deleted first. Safe to run when nothing is up. Every wait is bounded.
set -uo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
SPOOL=/var/spool/gridengine
running() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }

if command -v qdel >/dev/null 2>&1 && timeout 10 qconf -sh >/dev/null 2>&1; then
  timeout 10 qdel -f -u '*' >/dev/null 2>&1 || true
  for (( i = 0; i < 50; i++ )); do
    [ -z "$(timeout 5 qstat -u '*' 2>/dev/null)" ] && break
    sleep 0.2
  done
fi
for pidfile in "$SPOOL"/execd/*/execd.pid "$SPOOL"/qmaster/qmaster.pid; do
  [ -s "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if running "$pid"; then
    kill "$pid" 2>/dev/null || true
    for (( i = 0; i < 100; i++ )); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
done
exit 0

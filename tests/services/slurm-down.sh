#!/usr/bin/env bash
# Stop what tests/services/slurm-up.sh started, by pid file only (never by name).
#   slurm-down.sh          cancel all jobs, stop slurmd, slurmctld, slurmdbd, MariaDB, munged
#   slurm-down.sh --purge  also delete Slurm's saved state, logs, config and accounting DB
# Safe to run when nothing is up. Every wait is bounded.
set -uo pipefail
PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1

running() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
stop_by_pidfile() {
  local pidfile="$1" pid i
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if running "$pid"; then
    kill "$pid" 2>/dev/null || true
    for (( i = 0; i < 100; i++ )); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

# Jobs first, so that no job process outlives slurmd.
if command -v squeue >/dev/null 2>&1 && timeout 10 squeue -h >/dev/null 2>&1; then
  jobs="$(timeout 10 squeue -h -o %i 2>/dev/null)"
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null
    for (( i = 0; i < 50; i++ )); do
      [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi
stop_by_pidfile /run/slurmd.pid
stop_by_pidfile /run/slurmctld.pid
stop_by_pidfile /run/slurmdbd.pid
if [ "$PURGE" = 1 ] && command -v mysqladmin >/dev/null 2>&1 && mysqladmin ping >/dev/null 2>&1; then
  # Through the server: deleting the database's files would corrupt InnoDB.
  mysql -u root -e 'DROP DATABASE IF EXISTS slurm_acct_db' || true
fi
stop_by_pidfile /run/mysqld/mysqld.pid
stop_by_pidfile /run/munge/munged.pid
if [ "$PURGE" = 1 ]; then
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*
  rm -f /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf
fi
exit 0

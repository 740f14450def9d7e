#!/usr/bin/env bash
# Start a single-host (Son of) Grid Engine 8.1.9 (Debian 12 packages) for flowlib's tests.
#
#   sge_qmaster + sge_execd on this machine; queue all.q with one slot per core and
#   a parallel environment "smp" ($pe_slots). Root only; daemons started by hand.
#   The Debian q* wrappers read /etc/default/gridengine, so clients need no SGE_ROOT.
#
# Idempotent: a re-run installs only what is missing and restarts the daemons this
# script started (by pid file). Bounded waits; on failure prints the daemons'
# messages files and exits non-zero. Stop with tests/services/sge-down.sh.
# Never install slurm-wlm-torque next to this: it conflicts with gridengine-client.
set -euo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
export DEBIAN_FRONTEND=noninteractive
HOST="$(hostname)"
COMMON="$SGE_ROOT/$SGE_CELL/common"
SPOOL=/var/spool/gridengine

log() { echo "sge-up: $*" >&2; }
die() {
  log "FAILED: $*"
  for f in "$SPOOL"/qmaster/messages "$SPOOL"/execd/*/messages; do
    [ -s "$f" ] && { echo "---- last lines of $f" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}
running() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
wait_for() {  # wait_for SECONDS COMMAND... : poll every 0.2 s
  local limit=$(( $1 * 5 )) i; shift
  for (( i = 0; i < limit; i++ )); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
stop_by_pidfile() {
  local pidfile pid i
  for pidfile in "$@"; do
    [ -s "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if running "$pid"; then
      kill "$pid" 2>/dev/null || true
      for (( i = 0; i < 100; i++ )); do running "$pid" || break; sleep 0.1; done
      running "$pid" && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
  done
}
# qconf -m* edits a temporary file with $EDITOR: a sed script makes that non-interactive.
qconf_sed() {
  local flag="$1" expr="$2" editor
  editor="$(mktemp)"
  printf '#!/bin/sh\nexec sed -i -e %s "$1"\n' "'$expr'" > "$editor"
  chmod +x "$editor"
  EDITOR="$editor" qconf "$flag" >/dev/null || { rm -f "$editor"; die "qconf $flag"; }
  rm -f "$editor"
}
[ "$(id -u)" = 0 ] || die "must run as root"

# 1. Packages. Without the preseeded master name a noninteractive install leaves
#    act_qmaster empty; the master's postinst creates the cell itself.
if ! dpkg -s gridengine-master gridengine-exec gridengine-client >/dev/null 2>&1; then
  log "installing gridengine-master gridengine-exec gridengine-client"
  debconf-set-selections <<SEL
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginemaster string $HOST
gridengine-common shared/gridenginecell string default
SEL
  apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update"
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends gridengine-master gridengine-exec gridengine-client >/dev/null \
    || die "apt-get install gridengine"
fi

# 2. Restart cleanly.
stop_by_pidfile "$SPOOL"/execd/*/execd.pid "$SPOOL"/qmaster/qmaster.pid

# 3. Naming: 127.0.0.1 reverse-resolves to "localhost" while gethostname() says $HOST;
#    qmaster would refuse the clients. host_aliases makes both names one host.
echo "$HOST" > "$COMMON/act_qmaster"
chown sgeadmin:sgeadmin "$COMMON/act_qmaster"
[ "$HOST" = localhost ] || echo "$HOST localhost" > "$COMMON/host_aliases"
install -d -o sgeadmin -g sgeadmin -m 0755 /run/gridengine

# 4. qmaster (daemonizes as sgeadmin).
/usr/sbin/sge_qmaster || die "sge_qmaster did not start"
wait_for 30 qconf -sh || die "qmaster does not answer qconf"

# 5. Let root run jobs (min_uid/min_gid default to 1000), report load and flush
#    accounting every few seconds, schedule every second. Submit host = this host.
qconf_sed -mconf 's/^min_uid .*/min_uid 0/; s/^min_gid .*/min_gid 0/; s/^load_report_time .*/load_report_time 00:00:05/; s/flush_time=[0-9:]*/flush_time=00:00:01/'
qconf_sed -msconf 's/^schedule_interval .*/schedule_interval 0:0:1/; s/^flush_submit_sec .*/flush_submit_sec 1/; s/^flush_finish_sec .*/flush_finish_sec 1/'
qconf -sh | grep -qx "$HOST" || qconf -ah "$HOST" >/dev/null
qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null

# 6. execd: its first start registers this host as an execution host.
/usr/sbin/sge_execd || die "sge_execd did not start"
exec_host_known() { qconf -sel | grep -qx "$HOST"; }
wait_for 30 exec_host_known || die "execd did not register $HOST"

# 7. Parallel environment "smp" and queue all.q (full definitions, replaced on re-runs).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/smp" <<'PE'
pe_name            smp
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     TRUE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
PE
if qconf -sp smp >/dev/null 2>&1; then qconf -Mp "$work/smp" >/dev/null; else qconf -Ap "$work/smp" >/dev/null; fi \
  || die "defining PE smp"
{
  printf '%-20s %s\n' qname all.q hostlist "$HOST" seq_no 0 load_thresholds NONE suspend_thresholds NONE \
    nsuspend 1 suspend_interval 00:05:00 priority 0 min_cpu_interval 00:05:00 processors UNDEFINED \
    qtype 'BATCH INTERACTIVE' ckpt_list NONE pe_list smp rerun FALSE slots "$(nproc)" tmpdir /tmp \
    shell /bin/bash prolog NONE epilog NONE shell_start_mode unix_behavior starter_method NONE \
    suspend_method NONE resume_method NONE terminate_method NONE notify 00:00:60 owner_list NONE \
    user_lists NONE xuser_lists NONE subordinate_list NONE complex_values NONE projects NONE \
    xprojects NONE calendar NONE initial_state default
  for limit in rt cpu fsize data stack core rss vmem; do
    printf '%-20s %s\n' "s_$limit" INFINITY "h_$limit" INFINITY
  done
} > "$work/all.q"
if qconf -sq all.q >/dev/null 2>&1; then qconf -Mq "$work/all.q" >/dev/null; else qconf -Aq "$work/all.q" >/dev/null; fi \
  || die "defining queue all.q"

# 8. Usable when the queue instance has no state flags (u = no load report yet, E, a, d...).
queue_ok() {
  qstat -f -q "all.q@$HOST" 2>/dev/null | awk -v q="all.q@$HOST" '$1 == q && $6 == "" {ok = 1} END {exit !ok}'
}
qmod -c "all.q@$HOST" >/dev/null 2>&1 || true    # clear an error state left by an earlier run
wait_for 40 queue_ok || { qstat -f >&2 || true; die "queue all.q@$HOST not ready"; }
log "up: queue all.q@$HOST, $(nproc) slots, PE smp"

#!/usr/bin/env bash
# Start a single-node Slurm (Debian 12 packages) for flowlib's provider tests.
#
#   munged + slurmctld + slurmd on this machine, partition "debug" (the default),
#   all traffic on 127.0.0.1. Root only; no systemd needed (daemons started by hand).
#
# Environment:
#   SLURM_PARTITION   partition name (default: debug)
#   SLURM_ACCOUNTING  1 = also MariaDB (loopback) + slurmdbd so that `sacct` works
#                     (default 0: flowlib's tests do not need it; see docs/providers/slurm.rst)
#
# Idempotent: a re-run installs only what is missing, rewrites slurm.conf and
# restarts the daemons this script started (found by pid file). Every wait is
# bounded; on failure the script prints the daemons' logs and exits non-zero.
# Stop with tests/services/slurm-down.sh.
set -euo pipefail

PARTITION="${SLURM_PARTITION:-debug}"
ACCOUNTING="${SLURM_ACCOUNTING:-0}"
NODE="$(hostname -s)"
LOGDIR=/var/log/slurm
export DEBIAN_FRONTEND=noninteractive

log() { echo "slurm-up: $*" >&2; }
die() {
  log "FAILED: $*"
  for f in "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" "$LOGDIR/slurmdbd.log" "$LOGDIR/mariadb.log"; do
    [ -s "$f" ] && { echo "---- last lines of $f" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}
# A zombie still answers `kill -0` (PID 1 here reaps late), so look at the process state.
running() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
# wait_for SECONDS COMMAND... : poll COMMAND every 0.2 s until it succeeds or time runs out.
wait_for() {
  local limit=$(( $1 * 5 )) i; shift
  for (( i = 0; i < limit; i++ )); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
stop_by_pidfile() {
  local pidfile="$1" pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if running "$pid"; then
    kill "$pid" 2>/dev/null || true
    local i
    for (( i = 0; i < 100; i++ )); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}
[ "$(id -u)" = 0 ] || die "must run as root"

# 1. Packages (postinst does not start daemons here: policy-rc.d refuses).
wanted="slurm-wlm munge"
[ "$ACCOUNTING" = 1 ] && wanted="$wanted slurmdbd mariadb-server"
missing=""
for pkg in $wanted; do dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"; done
if [ -n "$missing" ]; then
  log "installing$missing"
  apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update"
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >/dev/null || die "apt-get install$missing"
fi

# 2. Restart cleanly: stop the Slurm daemons an earlier run started (job state is kept).
stop_by_pidfile /run/slurmd.pid
stop_by_pidfile /run/slurmctld.pid

# 3. slurmd finds its NodeName from `hostname -s`; that name must resolve.
getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >> /etc/hosts

# 4. munge: key, directories, daemon running as user munge.
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n | unmunge; }
if ! munge_ok >/dev/null 2>&1; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged || die "munged did not start"
  wait_for 10 munge_ok || die "munge credentials do not verify"
fi

install -d -m 0755 /etc/slurm "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd

# 5. slurm.conf: this machine is the only node (its CPUs and memory as slurmd -C sees them).
if [ "$ACCOUNTING" = 1 ]; then
  accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  accounting="AccountingStorageType=accounting_storage/none"
fi
nodeline="$(slurmd -C | head -n 1)"
case "$nodeline" in NodeName=*) ;; *) die "slurmd -C gave no node line: $nodeline" ;; esac
cat > /etc/slurm/slurm.conf <<CONF
# Written by flowlib tests/services/slurm-up.sh
ClusterName=flowlib
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
${accounting}
JobCompType=jobcomp/filetxt
JobCompLoc=${LOGDIR}/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${LOGDIR}/slurmctld.log
SlurmdLogFile=${LOGDIR}/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
${nodeline} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

# 6. Optional accounting: MariaDB on loopback + slurmdbd (both need slurm.conf first).
if [ "$ACCOUNTING" = 1 ]; then
  if ! mysqladmin ping >/dev/null 2>&1; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
      --pid-file=/run/mysqld/mysqld.pid >"$LOGDIR/mariadb.log" 2>&1 </dev/null &
    wait_for 60 mysqladmin ping || die "MariaDB did not answer"
  fi
  mysql -u root <<'SQL' || die "creating the accounting database"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'flowlib-test-only';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
  cat > /etc/slurm/slurmdbd.conf <<'CONF'
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=flowlib-test-only
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
  chmod 0600 /etc/slurm/slurmdbd.conf
  if ! { [ -s /run/slurmdbd.pid ] && running "$(cat /run/slurmdbd.pid)"; }; then
    /usr/sbin/slurmdbd || die "slurmdbd did not start"
  fi
  wait_for 30 sacctmgr -n list cluster || die "slurmdbd does not answer sacctmgr"
fi

# 7. The daemons (each daemonizes and writes its pid file).
/usr/sbin/slurmctld || die "slurmctld did not start"
/usr/sbin/slurmd || die "slurmd did not start"

# 8. Usable when the node is idle (or busy with leftover jobs). A node left DOWN or
#    DRAINED in the saved state by an earlier run is resumed once.
node_usable() { sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }
if ! wait_for 20 node_usable; then
  scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  wait_for 10 node_usable || { sinfo -R >&2 || true; die "node $NODE is not idle"; }
fi
log "up: partition $PARTITION on node $NODE (accounting=$ACCOUNTING)"

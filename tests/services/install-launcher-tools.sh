#!/usr/bin/env bash
# Install the real launcher tools that Debian packages, for tests/test_launchers.py:
#
#   openmpi-bin   Open MPI's mpiexec / mpirun   (MpiExecLauncher, MpiRunLauncher)
#   parallel      GNU parallel                  (GnuParallelLauncher)
#
# srun comes with Slurm (tests/services/slurm-up.sh); aprun and jsrun exist only on
# Cray and IBM machines and are tested with the fakes in tests/fakebin.
#
# Idempotent: installs only what is missing and runs `apt-get update` only then.
# Needs root. Waits up to 5 minutes for the dpkg lock, since other set-up scripts
# may be installing at the same time. Exits non-zero if a tool is still missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "install-launcher-tools: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

missing=""
for pkg in openmpi-bin parallel; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  log "installing$missing"
  apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
  apt-get "${apt_opts[@]}" update
  # shellcheck disable=SC2086  # $missing is a list of package names
  apt-get "${apt_opts[@]}" install -y --no-install-recommends $missing >/dev/null
fi

for tool in mpiexec mpirun parallel; do
  command -v "$tool" >/dev/null || { log "$tool is still missing after the install"; exit 1; }
done

#!/usr/bin/env bash
# Install Open MPI's compiler wrapper and headers (libopenmpi-dev: mpicc, mpi.h) next to
# its runtime (openmpi-bin), for tests/htex/test_mpi_executor.py, which compiles a small
# MPI hello-world with mpicc and runs it with mpiexec through the MPIExecutor.
#
# Idempotent: installs only what is missing and runs `apt-get update` only then.
# Needs root. Waits up to 5 minutes for the dpkg lock, since other set-up scripts
# may be installing at the same time. Exits non-zero if mpicc cannot compile an
# MPI program afterwards.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "install-mpi-dev: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

missing=""
for pkg in openmpi-bin libopenmpi-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  log "installing$missing"
  apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
  apt-get "${apt_opts[@]}" update
  # shellcheck disable=SC2086  # $missing is a list of package names
  apt-get "${apt_opts[@]}" install -y --no-install-recommends $missing >/dev/null
fi

for tool in mpicc mpiexec; do
  command -v "$tool" >/dev/null || { log "$tool is still missing after the install"; exit 1; }
done
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
printf '#include <mpi.h>\nint main(int c, char **v) { MPI_Init(&c, &v); MPI_Finalize(); return 0; }\n' >"$scratch/t.c"
mpicc -o "$scratch/t" "$scratch/t.c" || { log "mpicc cannot compile an MPI program"; exit 1; }

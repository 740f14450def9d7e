#!/usr/bin/env bash
# Install Debian's PostgreSQL server (for the monitoring store's PostgreSQL tests; started by
# tests/services/postgresql-up.sh). Idempotent; needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" -eq 0 ] || { echo "install-postgresql: must run as root" >&2; exit 1; }
have() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; }
if ! have; then
  APT=(apt-get -o DPkg::Lock::Timeout=120 -y -qq)
  if ! "${APT[@]}" install --no-install-recommends postgresql >/dev/null 2>&1; then
    "${APT[@]}" update
    "${APT[@]}" install --no-install-recommends postgresql >/dev/null
  fi
fi
have || { echo "install-postgresql: no postgres binary after installing postgresql" >&2; exit 1; }
ls -d /usr/lib/postgresql/*/bin/postgres

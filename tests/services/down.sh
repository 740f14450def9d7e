#!/usr/bin/env bash
# Stop every test service that has a tests/services/*-down.sh, in the reverse order of
# up.sh, and remove tests/services/.status. Each script stops only what its *-up.sh
# started (by pid file). Never fails the caller: a stop that fails is reported.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIMIT="${FLOWLIB_SERVICE_TIMEOUT:-120}"
scripts=("$HERE"/*-down.sh)
for (( i = ${#scripts[@]} - 1; i >= 0; i-- )); do
  script="${scripts[i]}"
  [ -e "$script" ] && [ "$(basename "$script")" != down.sh ] || continue
  name="$(basename "$script" -down.sh)"
  if ! timeout --kill-after=10 "$LIMIT" bash "$script" "$@"; then
    echo "down.sh: stopping $name failed" >&2
  fi
done
rm -f "$HERE/.status"
exit 0

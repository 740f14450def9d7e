#!/usr/bin/env bash
# Make the Python environment that the Globus Compute endpoint stand-in runs in
# (tests/globus_compute/endpoint_stand_in.py, started by the tests themselves):
#
#   $FLOWLIB_GC_ENDPOINT_VENV (/tmp/flowlib-gc-endpoint-venv) with globus-compute-endpoint
#
# The endpoint package depends on Parsl, which must not be installed into flowlib's own
# venv, so it gets a venv of its own. flowlib itself reaches the endpoint through
# PYTHONPATH (the tests set it to this checkout), as an endpoint's workers would have it.
# Idempotent: a venv whose stamp matches the requirements is left alone. Needs PyPI
# (about 25 s the first time). Nothing keeps running, so there is no -down.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${FLOWLIB_GC_ENDPOINT_VENV:-/tmp/flowlib-gc-endpoint-venv}"
# pytest: the endpoint imports the test modules that define the apps, and they import pytest.
REQUIREMENTS="globus-compute-endpoint==4.19.0 cloudpickle>=2.2 dill>=0.3.6 tblib>=2.0 typeguard>=4.0 pytest>=7.4"

log() { echo "globus-endpoint-up: $*" >&2; }
# The same interpreter as flowlib's venv, so both sides agree on bytecode and pickles.
PY=python3
[ -x "$REPO/.venv/bin/python" ] && PY="$REPO/.venv/bin/python"

exec 9>"${VENV%/}.lock"
flock -w 300 9 || { log "another globus-endpoint-up.sh holds ${VENV%/}.lock"; exit 1; }

want="$("$PY" -c 'import sys; print(sys.version.split()[0])') $REQUIREMENTS"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.flowlib-stamp" 2>/dev/null)" = "$want" ]; then
  log "ready (already made): $VENV"
  exit 0
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# shellcheck disable=SC2086  # $REQUIREMENTS is a list of requirement specifiers
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQUIREMENTS
"$VENV/bin/python" -c 'import globus_compute_endpoint.engines, pika' \
  || { log "the endpoint package does not import"; exit 1; }
printf '%s\n' "$want" > "$VENV/.flowlib-stamp"
log "ready: $VENV"

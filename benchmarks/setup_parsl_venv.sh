#!/usr/bin/env bash
# Create benchmarks/.parsl-venv: one interpreter that can import both Parsl and
# flowlib, so benchmarks/side_by_side.py can drive both libraries with the same
# benchmark code.
#
# Usage: bash benchmarks/setup_parsl_venv.sh
#
# Environment:
#   PYTHON          interpreter used to create the venv (default: python3)
#   PARSL_VERSION   Parsl release to install (default: 2026.10.26)
#   PARSL_VENV      where to create the venv (default: benchmarks/.parsl-venv)
#
# Idempotent: if the venv exists, has the wanted Parsl version, finds flowlib
# in this repository and was set up from the current pyproject.toml, nothing
# is installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${PYTHON:-python3}"
parsl_version="${PARSL_VERSION:-2026.10.26}"
venv="${PARSL_VENV:-$here/.parsl-venv}"
vpy="$venv/bin/python"

# Prints "ok" when the venv already holds the wanted Parsl and this repo's flowlib.
venv_state() {
    [ -x "$vpy" ] || { echo "missing"; return; }
    # Run from / so the current directory cannot shadow the installed flowlib.
    (cd / && "$vpy" - "$parsl_version" "$repo") <<'EOF' 2>/dev/null || echo "incomplete"
import importlib.metadata as md
import os
import sys

want_parsl, repo = sys.argv[1], os.path.realpath(sys.argv[2])
try:
    have_parsl = md.version("parsl")
except md.PackageNotFoundError:
    have_parsl = None
try:
    import importlib.util

    # find_spec locates the package without running flowlib/__init__.py.
    spec = importlib.util.find_spec("flowlib")
except Exception:
    spec = None
places = []
if spec is not None:
    places = [spec.origin or ""] + list(spec.submodule_search_locations or [])
from_repo = any(
    os.path.realpath(p).startswith(repo + os.sep) for p in places if os.path.isabs(p)
)
ok = have_parsl == want_parsl and from_repo
print("ok" if ok else "incomplete")
EOF
}

# flowlib's dependencies come from pyproject.toml: reinstall when it changes.
stamp="$venv/.flowlib-pyproject.sha256"
want_stamp="$( (sha256sum "$repo/pyproject.toml"; echo monitoring) | sha256sum | cut -d' ' -f1)"
have_stamp="$(cat "$stamp" 2>/dev/null || true)"

state="$(venv_state)"
if [ "$state" = "ok" ] && [ "$have_stamp" = "$want_stamp" ]; then
    echo "parsl venv ready: $venv (parsl==$parsl_version, flowlib from $repo)"
    exit 0
fi

if [ ! -x "$vpy" ]; then
    echo "creating venv $venv with $python"
    "$python" -m venv "$venv"
fi
"$vpy" -m pip install --quiet --upgrade pip
# The monitoring extras: the monitoring case compares both MonitoringHubs.
"$vpy" -m pip install --quiet "parsl[monitoring]==$parsl_version"
"$vpy" -m pip install --quiet -e "$repo[monitoring]"
echo "$want_stamp" >"$stamp"

state="$(venv_state)"
if [ "$state" != "ok" ]; then
    echo "setup_parsl_venv: venv $venv is still not usable (state: $state)" >&2
    exit 1
fi
echo "parsl venv ready: $venv (parsl==$parsl_version, flowlib from $repo)"

#!/usr/bin/env bash
# Install tmux (the progress-bar test runs a workflow in a real terminal under it). Idempotent; needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" -eq 0 ] || { echo "install-tmux: must run as root" >&2; exit 1; }
command -v tmux >/dev/null && { tmux -V; exit 0; }
APT=(apt-get -o DPkg::Lock::Timeout=120 -y -qq)
if ! "${APT[@]}" install --no-install-recommends tmux >/dev/null 2>&1; then
  "${APT[@]}" update
  "${APT[@]}" install --no-install-recommends tmux >/dev/null
fi
tmux -V

#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the dashboard's browser test
# (tests/monitoring/test_browser.py drives it with Playwright, executable_path=/usr/bin/chromium;
# Playwright's own browser download is never used). Idempotent; needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" -eq 0 ] || { echo "install-chromium: must run as root" >&2; exit 1; }
[ -x /usr/bin/chromium ] && { /usr/bin/chromium --version; exit 0; }
APT=(apt-get -o DPkg::Lock::Timeout=120 -y -qq)
if ! "${APT[@]}" install --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1; then
  "${APT[@]}" update
  "${APT[@]}" install --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version

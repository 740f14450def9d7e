#!/usr/bin/env bash
# Stop the sshd servers that tests/services/sshd-up.sh started, by their pid files only.
#   --purge  also delete $SSHD_DIR and take the test key out of the authorized_keys of
#            $SSHD_USER and root (the users themselves are left in place).
# Connections still open keep their per-connection sshd processes until they close.
set -uo pipefail
DIR="${SSHD_DIR:-/tmp/flowlib-sshd}"
TUSER="${SSHD_USER:-flowtest}"

alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }

exec 9>"${DIR%/}.lock"
flock -w 120 9 || { echo "sshd-down: another sshd-up.sh/sshd-down.sh holds ${DIR%/}.lock" >&2; exit 1; }

status=0
for pidfile in "$DIR/sshd.pid" "$DIR/sshd_kbd.pid"; do
  [ -s "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then echo "sshd-down: pid $pid ($pidfile) did not stop" >&2; status=1; continue; fi
    echo "sshd-down: stopped pid $pid ($pidfile)"
  fi
  rm -f "$pidfile"
done

if [ "${1:-}" = "--purge" ]; then
  if [ -s "$DIR/id_ed25519.pub" ]; then
    key="$(cat "$DIR/id_ed25519.pub")"
    for u in "$TUSER" root; do
      home="$(getent passwd "$u" | cut -d: -f6)" || continue
      ak="$home/.ssh/authorized_keys"
      [ -f "$ak" ] || continue
      grep -vxF "$key" "$ak" > "$ak.flowlib-tmp" || true
      cat "$ak.flowlib-tmp" > "$ak"   # keep the file's owner and mode
      rm -f "$ak.flowlib-tmp"
    done
  fi
  rm -rf "$DIR"
fi
exit "$status"

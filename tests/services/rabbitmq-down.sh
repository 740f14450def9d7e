#!/usr/bin/env bash
# Stop the RabbitMQ node that rabbitmq-up.sh started (by its pid file), and the epmd it
# spawned (asked to exit, never killed by name). Never fails when nothing runs.
set -uo pipefail
export RABBITMQ_NODENAME=rabbit@localhost ERL_EPMD_ADDRESS=127.0.0.1
PIDFILE=/run/rabbitmq/rabbit.pid

# A zombie passes `kill -0`, and PID 1 on these machines reaps lazily: look at the state instead.
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" && [ -n "$s" ] && [ "${s#Z}" = "$s" ]; }

exec 9>/run/flowlib-rabbitmq.lock
flock -w 120 9 || { echo "rabbitmq-down: another rabbitmq-up.sh/rabbitmq-down.sh holds the lock" >&2; exit 1; }

status=0
pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if [ -n "$pid" ] && alive "$pid"; then
  timeout 60 rabbitmqctl -q stop "$PIDFILE" >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for _ in $(seq 200); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then echo "rabbitmq-down: pid $pid did not stop" >&2; status=1; else echo "rabbitmq-down: stopped pid $pid"; fi
fi
[ "$status" = 0 ] && rm -f "$PIDFILE"
command -v epmd >/dev/null && epmd -kill >/dev/null 2>&1
exit "$status"

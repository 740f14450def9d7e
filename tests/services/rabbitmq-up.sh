#!/usr/bin/env bash
# Start a RabbitMQ node for the Globus Compute integration tests (tests/globus_compute/):
#
#   amqp://guest:guest@127.0.0.1:5672/   (the guest account may log in from loopback only)
#
# Needs root and rabbitmq-server (install-rabbitmq.sh installs it; this script does too
# when it is missing). Idempotent: a node that already answers is left running. The node,
# its Erlang distribution port and epmd listen on 127.0.0.1 only. Pid file:
# /run/rabbitmq/rabbit.pid. Stop with tests/services/rabbitmq-down.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PIDFILE=/run/rabbitmq/rabbit.pid
LOG=/var/log/rabbitmq/flowlib-foreground.log

die() {
  echo "rabbitmq-up: $*" >&2
  [ -s "$LOG" ] && { echo "--- last lines of $LOG" >&2; tail -n 30 "$LOG" >&2; }
  exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root (it installs rabbitmq-server and starts the node)"
command -v rabbitmq-server >/dev/null || bash "$HERE/install-rabbitmq.sh"

export RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
       ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_PID_FILE=$PIDFILE \
       RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

# Several test sessions may call this at once: one at a time (the later ones find it running).
exec 9>/run/flowlib-rabbitmq.lock
flock -w 120 9 || die "another rabbitmq-up.sh/rabbitmq-down.sh holds /run/flowlib-rabbitmq.lock"

install -d -o rabbitmq -g rabbitmq -m 0755 /run/rabbitmq /var/log/rabbitmq
if rabbitmqctl -q status >/dev/null 2>&1; then
  echo "rabbitmq-up: already running (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'))"
else
  # The Debian wrapper drops to user rabbitmq and stays in the foreground: detach it.
  setsid /usr/sbin/rabbitmq-server >"$LOG" 2>&1 </dev/null &
  # Bounded: `wait` gives up after 120 s if the node never writes its pid file and starts.
  rabbitmqctl -q wait --timeout 120 "$PIDFILE" || die "the node did not start"
fi
rabbitmqctl -q await_startup || die "the node did not finish starting"
# Prove the AMQP port takes connections.
(exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null || die "nothing accepts connections on 127.0.0.1:5672"
echo "rabbitmq-up: ready: amqp://guest:guest@127.0.0.1:5672/ (pid $(cat "$PIDFILE"))"

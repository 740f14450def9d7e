#!/usr/bin/env bash
# Install RabbitMQ (Debian 12: rabbitmq-server 3.10) for the Globus Compute integration
# tests: the SDK's real result watcher consumes task results from an AMQP queue, and the
# local stand-in for the endpoint takes its tasks from one. rabbitmq-up.sh starts it.
#
# Idempotent: installs only what is missing and runs `apt-get update` only then. Needs
# root. Waits up to 5 minutes for the dpkg lock (other set-up scripts may be installing).
# The package's postinst does not start the daemon here (policy-rc.d refuses), which is
# what we want: rabbitmq-up.sh starts it on 127.0.0.1 only.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "install-rabbitmq: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

if ! dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null | grep -q 'install ok installed'; then
  log "installing rabbitmq-server"
  apt_opts=(-o DPkg::Lock::Timeout=300 -qq)
  if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends rabbitmq-server >/dev/null 2>&1; then
    apt-get "${apt_opts[@]}" update
    apt-get "${apt_opts[@]}" install -y --no-install-recommends rabbitmq-server >/dev/null
  fi
fi
for tool in rabbitmq-server rabbitmqctl; do
  command -v "$tool" >/dev/null || { log "$tool is still missing after the install"; exit 1; }
done

#!/usr/bin/env bash
# Make sure a RabbitMQ message broker runs on this machine (the AiiDA daemon needs one). Idempotent:
# installs Debian's rabbitmq-server when missing, starts it detached when it is not answering, waits
# until it answers. No systemd needed.
#   bash scripts/broker.sh          # install if needed, start, wait
#   bash scripts/broker.sh stop     # stop it
set -euo pipefail
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

if [ "${1:-}" = "stop" ]; then
  step "stopping RabbitMQ"
  $SUDO rabbitmqctl stop >/dev/null 2>&1 && echo "stopped" || echo "was not running"
  exit 0
fi

step "RabbitMQ (message broker of the AiiDA daemon)"
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
  echo "installed rabbitmq-server from Debian"
fi
if $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
  echo "RabbitMQ is running"
  exit 0
fi
# AiiDA's long-running tasks exceed RabbitMQ's default 30 min consumer timeout: disable it.
CONF=/etc/rabbitmq/advanced.config
if ! grep -q consumer_timeout "$CONF" 2>/dev/null; then
  echo '[{rabbit, [{consumer_timeout, undefined}]}].' | $SUDO tee "$CONF" >/dev/null
fi
$SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 60); do
  if $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
    echo "RabbitMQ started (amqp://guest:guest@127.0.0.1:5672)"
    exit 0
  fi
  sleep 1
done
echo "RabbitMQ did not answer within 60 s; see /var/log/rabbitmq/" >&2
exit 1

#!/bin/bash
# The container's health check: GET /healthz on the metrics port with bash's
# /dev/tcp, so the image needs no curl. Healthy only on "HTTP/1.1 200": every
# core answers and at least one backend is up.
#
#   FUNNEL_METRICS_PORT  port of metrics.listen (default 9633)
#   FUNNEL_METRICS_HOST  address to ask (default 127.0.0.1)
set -eu
host=${FUNNEL_METRICS_HOST:-127.0.0.1}
port=${FUNNEL_METRICS_PORT:-9633}
exec 3<>"/dev/tcp/$host/$port"
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
IFS= read -r -t 2 status <&3
exec 3<&-
status=${status%$'\r'}
case $status in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "unhealthy: ${status:-no answer}" >&2; exit 1 ;;
esac

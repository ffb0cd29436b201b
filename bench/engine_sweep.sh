#!/usr/bin/env bash
# The engine's load check: sysbench oltp_point_select and oltp_read_only
# directly against a throwaway MariaDB and through Funnel (16 backend
# connections in all), at 1, 64, 1024 and 4096 threads with plain queries,
# then oltp_read_only at 1024 threads with sysbench's default prepared
# statements through Funnel, and oltp_point_select at 1024 threads over TLS
# through Funnel (1024 TLS logins at once). Fails when any run through
# Funnel has an error or a reconnect.
#
#   bench/engine_sweep.sh [--time SECONDS] [--threads "1 64 1024 4096"] [--out FILE]
#
# MariaDB runs at its defaults apart from what the throwaway setup needs
# (max_connections is raised only so the direct runs can connect at all).
source "$(dirname "$0")/lib.sh"

TIME=10
THREADS="1 64 1024 4096"
OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --time) TIME=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

ensure_packages
raise_nofile
cargo build --release -p funnel --quiet

WORK=$(mktemp -d /tmp/funnel-sweep.XXXXXX)
cleanup() {
  [ -n "${FUNNEL_PID:-}" ] && stop_pid "$FUNNEL_PID"
  [ -n "${MARIADB_PID:-}" ] && stop_pid "$MARIADB_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

MARIADB_MAX_CONNECTIONS=5000 start_mariadb "$WORK/db"
sql "$MARIADB_PORT" "CREATE DATABASE sbtest; CREATE USER sbtest@'%' IDENTIFIED BY 'sbtest'; GRANT ALL ON *.* TO sbtest@'%'"
log "preparing sysbench tables"
sysbench oltp_read_only --mysql-host=127.0.0.1 --mysql-port="$MARIADB_PORT" --mysql-user=sbtest \
  --mysql-password=sbtest --mysql-db=sbtest --tables="${SB_TABLES:-4}" --table-size="${SB_TABLE_SIZE:-10000}" \
  prepare >"$WORK/prepare.log" 2>&1

# TLS for clients: Funnel's certificate, and the files sysbench's
# --mysql-ssl=on reads from its working directory.
mkdir -p "$WORK/tls"
(cd "$WORK/tls" \
  && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=127.0.0.1 \
  && cp cert.pem cacert.pem \
  && openssl req -x509 -newkey rsa:2048 -nodes -keyout client-key.pem -out client-cert.pem -days 2 -subj /CN=sbtest) \
  >"$WORK/tls/openssl.log" 2>&1

FUNNEL_PORT=$(free_port)
cat >"$WORK/funnel.yaml" <<YAML
listen: 127.0.0.1:$FUNNEL_PORT
cores: 2
users:
  - name: sbtest
    password: sbtest
    default_schema: sbtest
backends:
  - name: primary
    address: 127.0.0.1:$MARIADB_PORT
    user: sbtest
    password: sbtest
pool:
  max_per_core: 8
  min_idle_per_core: 2
backlog:
  max_waiting_per_core: 10000
  wait_timeout: 30s
client:
  max_connections: 20000
  tls:
    cert: $WORK/tls/cert.pem
    key: $WORK/tls/key.pem
log:
  level: warn
YAML
start_funnel "$WORK/funnel.yaml" "$WORK/funnel.log"

failed=0
printf '%-18s %7s %-7s %10s %10s %9s %7s %6s\n' workload threads target tps qps p95_ms errors recon | tee ${OUT:+"$OUT"}
for workload in oltp_point_select oltp_read_only; do
  for t in $THREADS; do
    for target in direct funnel; do
      port=$MARIADB_PORT
      [ $target = funnel ] && port=$FUNNEL_PORT
      read -r tps qps p95 errs recon <<<"$(sysbench_run "$port" "$workload" "$t" "$TIME" --db-ps-mode=disable)"
      printf '%-18s %7s %-7s %10s %10s %9s %7s %6s\n' "$workload" "$t" "$target" "$tps" "$qps" "$p95" "$errs" "$recon" \
        | tee -a ${OUT:+"$OUT"}
      if [ $target = funnel ] && { [ "$tps" = FAILED ] || [ "${errs:-1}" != 0 ] || [ "${recon:-1}" != 0 ]; }; then
        failed=1
      fi
    done
  done
done
# Prepared statements multiplexed: sysbench's default --db-ps-mode=auto at 1024 threads.
read -r tps qps p95 errs recon <<<"$(sysbench_run "$FUNNEL_PORT" oltp_read_only 1024 "$TIME")"
printf '%-18s %7s %-7s %10s %10s %9s %7s %6s\n' "oltp_read_only(ps)" 1024 funnel "$tps" "$qps" "$p95" "$errs" "$recon" \
  | tee -a ${OUT:+"$OUT"}
if [ "$tps" = FAILED ] || [ "${errs:-1}" != 0 ] || [ "${recon:-1}" != 0 ]; then
  failed=1
fi
# TLS logins by the thousand: each client's hello may arrive with its
# SSLRequest in one read, which Funnel once refused.
read -r tps qps p95 errs recon <<<"$(cd "$WORK/tls" && sysbench_run "$FUNNEL_PORT" oltp_point_select 1024 "$TIME" \
  --db-ps-mode=disable --mysql-ssl=on)"
printf '%-18s %7s %-7s %10s %10s %9s %7s %6s\n' "point_select(tls)" 1024 funnel "$tps" "$qps" "$p95" "$errs" "$recon" \
  | tee -a ${OUT:+"$OUT"}
if [ "$tps" = FAILED ] || [ "${errs:-1}" != 0 ] || [ "${recon:-1}" != 0 ]; then
  failed=1
fi
peak=$(sql "$MARIADB_PORT" "SHOW GLOBAL STATUS LIKE 'Max_used_connections'" | awk '{print $2}')
log "MariaDB Max_used_connections over the whole run (direct runs included): $peak"
if [ $failed -ne 0 ]; then
  echo "engine sweep: a run through Funnel failed or had errors/reconnects" >&2
  tail -20 "$WORK/funnel.log" >&2
  exit 1
fi
echo "engine sweep: all runs through Funnel passed with 0 errors and 0 reconnects"

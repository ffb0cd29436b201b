# Shared shell helpers for the demo, the benchmarks and CI: install what is
# missing, start and stop throwaway MariaDB servers, start Funnel.
# Source it; never run it. Only ever touches servers it started itself.

set -euo pipefail

FUNNEL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs MariaDB, its client, sysbench and openssl when any is missing,
# and each extra tool named in the arguments (ensure_packages strace).
ensure_packages() {
  local missing=() extra
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
  command -v sysbench >/dev/null 2>&1 || missing+=(sysbench)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  # Extra tools a caller needs, named the same as their Debian package.
  for extra in "$@"; do
    command -v "$extra" >/dev/null 2>&1 || missing+=("$extra")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  export PATH="$PATH:/usr/sbin"
}

# ensure_node_connectors DIR name@version...: node and npm (Debian's
# nodejs and npm) and the named npm packages in DIR/node_modules, each at
# its version; installs only what is missing.
ensure_node_connectors() {
  local dir=$1; shift
  command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
  local spec missing=()
  for spec in "$@"; do
    grep -qs "\"version\": \"${spec##*@}\"" "$dir/node_modules/${spec%@*}/package.json" || missing+=("$spec")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "npm install ${missing[*]}"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "$@" >/dev/null
  fi
}

# Raises the soft open-files limit to the hard one (thousands of clients).
raise_nofile() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_mariadb DIR [extra mariadbd args...]: a throwaway server in DIR;
# sets MARIADB_PORT and MARIADB_PID. Root has no password over TCP.
start_mariadb() {
  local dir=$1; shift
  # Its own tmpdir: a starting mariadbd deletes every #sql* file in its
  # tmpdir, in /tmp the temporary tables of every other server there.
  mkdir -p "$dir/tmp"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" \
      --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; return 1; }
  fi
  MARIADB_PORT=$(free_port)
  local user_arg=()
  [ "$(id -u)" -eq 0 ] && user_arg=(--user=root)
  mariadbd --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin \
    --innodb-buffer-pool-size="${MARIADB_BUFFER_POOL:-256M}" --innodb-flush-log-at-trx-commit=2 \
    --max-connections="${MARIADB_MAX_CONNECTIONS:-151}" --log-error="$dir/error.log" \
    "${user_arg[@]}" "$@" >>"$dir/error.log" 2>&1 &
  MARIADB_PID=$!
  wait_ready MariaDB "$MARIADB_PID" 60 "$dir/error.log" \
    mariadb -h127.0.0.1 -P"$MARIADB_PORT" -uroot -e 'SELECT 1' || return 1
  export MARIADB_PORT MARIADB_PID
}

# wait_ready NAME PID SECONDS LOG COMMAND...: polls COMMAND until it
# succeeds; fails with the tail of LOG when PID dies or time runs out.
wait_ready() {
  local name=$1 pid=$2 limit=$3 logfile=$4; shift 4
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
      echo "$name did not start; its log:" >&2
      tail -30 "$logfile" >&2
      return 1
    fi
    sleep 0.1
  done
}

# stop_pid PID: SIGTERM, then SIGKILL after 20 s; waits for it.
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -gt $deadline ] && kill -9 "$pid" 2>/dev/null
    sleep 0.1
  done
}

# sql PORT STATEMENTS: runs SQL as root on a throwaway server.
sql() {
  local port=$1; shift
  mariadb -h127.0.0.1 -P"$port" -uroot -N -e "$*"
}

# start_funnel CONFIG LOG: runs the release binary; sets FUNNEL_PID; waits
# until it accepts connections on FUNNEL_PORT.
start_funnel() {
  local config=$1 logfile=$2
  "$FUNNEL_ROOT/target/release/funnel" --config "$config" >"$logfile" 2>&1 &
  FUNNEL_PID=$!
  wait_ready Funnel "$FUNNEL_PID" 30 "$logfile" \
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $FUNNEL_PORT), 1)" || return 1
  export FUNNEL_PID
}

# sysbench_run PORT WORKLOAD THREADS SECONDS [extra args]: prints
# "tps qps p95_ms errors reconnects" (or "FAILED" and the reason).
sysbench_run() {
  local port=$1 workload=$2 threads=$3 secs=$4; shift 4
  local out
  out=$(sysbench "$workload" --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=sbtest \
    --mysql-password=sbtest --mysql-db=sbtest --tables="${SB_TABLES:-4}" --table-size="${SB_TABLE_SIZE:-10000}" \
    --threads="$threads" --time="$secs" --report-interval=0 --percentile=95 "$@" run 2>&1) || true
  local tps qps p95 errs recon
  tps=$(awk '/transactions:/ {gsub(/[()]/,"",$3); print $3}' <<<"$out")
  qps=$(awk '/queries:/ && !/performed/ {gsub(/[()]/,"",$3); print $3}' <<<"$out")
  p95=$(awk '/95th percentile:/ {print $3}' <<<"$out")
  errs=$(awk '/ignored errors:/ {print $3}' <<<"$out")
  recon=$(awk '/reconnects:/ {print $2}' <<<"$out")
  if [ -z "$tps" ]; then
    echo "FAILED $(grep -m1 -E 'FATAL|error' <<<"$out" | tr '\t' ' ')"
  else
    echo "$tps $qps $p95 $errs $recon"
  fi
}

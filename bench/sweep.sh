#!/usr/bin/env bash
# One command for the whole end-to-end benchmark: installs what is missing
# (mariadb-server, mariadb-client and sysbench via apt, matplotlib via pip),
# builds the release binary, then runs bench/sweep.py with all arguments.
#
#   bench/sweep.sh                 # full default sweep (~60 min) + idle RSS + CPU per query
#   bench/sweep.sh --quick         # smoke test (threads 1 64 1024, 10 s, point_select)
#   bench/sweep.sh --threads "1 8 64 256 1024 4096" --time 20 --workloads "oltp_point_select oltp_read_only"
#
# See bench/README.md and `python3 bench/sweep.py --help`.
source "$(dirname "$0")/lib.sh"

ensure_packages
raise_nofile
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  log "installing matplotlib (for the plot)"
  python3 -m pip install --quiet matplotlib || log "matplotlib missing: the sweep runs, without its PNG"
fi
log "building target/release/funnel"
(cd "$FUNNEL_ROOT" && cargo build --release -p funnel --quiet)
exec python3 "$FUNNEL_ROOT/bench/sweep.py" "$@"

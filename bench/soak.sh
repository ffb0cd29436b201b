#!/usr/bin/env bash
# Soak test (not part of CI): installs what is missing, builds the release
# binary, then runs bench/soak.py with the given arguments, e.g.
#
#   bench/soak.sh                                   # 30 min, 2048 threads, kill every 180 s
#   bench/soak.sh --duration 2m --threads 256 --kill-every 45s --warmup 20s   # smoke
source "$(dirname "$0")/lib.sh"

ensure_packages
raise_nofile
cd "$FUNNEL_ROOT"
log "building target/release/funnel"
cargo build --release -p funnel
exec python3 bench/soak.py "$@"

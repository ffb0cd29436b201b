#!/usr/bin/env bash
# Starts one throwaway MariaDB with bench/lib.sh's start_mariadb, for the
# Python benchmark scripts, and prints "PORT PID" on its last line.
#
#   bench/mariadb.sh DIR [extra mariadbd args...]
#
# Environment: MARIADB_BUFFER_POOL, MARIADB_MAX_CONNECTIONS (as in lib.sh).
# The server keeps running after this script exits; the caller stops it by
# PID (SIGTERM, then SIGKILL), as lib.sh's stop_pid does.
source "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 DIR [mariadbd args...]" >&2; exit 2; }
export PATH="$PATH:/usr/sbin"
raise_nofile
dir=$1; shift
start_mariadb "$dir" "$@"
echo "$MARIADB_PORT $MARIADB_PID"

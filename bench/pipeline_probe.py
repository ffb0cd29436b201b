#!/usr/bin/env python3
"""How much of MariaDB's CPU per point select is the wake-up, not the query.

A pool can beat direct connections only where it makes the server's work
cheaper. The server's cost per point select on this host (75 µs, against a
primary-key lookup of 14-18 µs) is mostly reading, waking and writing. This
probe sends point selects straight to a throwaway MariaDB over N
connections, `depth` commands at a time in one write per connection (the
MySQL protocol lets a client send its next command before the previous
answer arrives; the server runs them in order), and reports mariadbd's CPU
per query for each depth. Depth 1 is what every client and every proxy
sends today; a proxy that multiplexed the commands of several clients onto
one connection this way would get the deeper figures.

The client here is Python and runs on the same CPUs, so the throughput
figures mean little; the server's CPU per query is the finding. Depths are
interleaved and repeated.

Writes <name>.json and <name>.md to --out (default bench/results/<date>-<host>/).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, MariaDB, MiniConn, default_results_dir, log, machine_info,
    proc_cpu_seconds, run_script, workdir, write_report,
)

#: Packets in the answer to one point select without DEPRECATE_EOF: column
#: count, one column definition, EOF, the row, EOF.
ANSWER_PACKETS = 5


def measure(conns: list[MiniConn], depth: int, seconds: float, rows: int, pid: int) -> tuple[float, float]:
    """Runs point selects `depth` deep on every connection for `seconds`;
    returns (queries per second, mariadbd µs of CPU per query)."""
    done = 0
    cpu0 = proc_cpu_seconds(pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for c in conns:
            c.seq = 0
            batch = b""
            for _ in range(depth):
                p = b"\x03" + f"SELECT c FROM sbtest1 WHERE id={random.randint(1, rows)}".encode()
                batch += len(p).to_bytes(3, "little") + b"\0" + p
            c.sock.sendall(batch)
        for c in conns:
            for _ in range(depth * ANSWER_PACKETS):
                c.read_packet()
            done += depth
    elapsed = time.monotonic() - t0
    cpu = proc_cpu_seconds(pid) - cpu0
    return done / elapsed, cpu / done * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conns", type=int, default=32, help="server connections (Funnel's default pool: 2 x 16)")
    p.add_argument("--depths", default="1 2 4 8", help="commands in flight per connection")
    p.add_argument("--time", type=float, default=5, help="seconds per measurement")
    p.add_argument("--rounds", type=int, default=3, help="measurements per depth (interleaved)")
    p.add_argument("--rows", type=int, default=10000, help="rows in the one sysbench table")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default="pipeline_probe")
    a = p.parse_args(argv)
    depths = [int(d) for d in a.depths.split()]
    samples: dict[int, list[tuple[float, float]]] = {d: [] for d in depths}
    with Cleanup() as cleanup:
        db = MariaDB.start(workdir("pipeline") / "db", "direct")
        cleanup.push(db.stop)
        db.prepare_sysbench(1, a.rows)
        conns = [MiniConn("127.0.0.1", db.port, SB_USER, SB_PASSWORD, SB_DB) for _ in range(a.conns)]
        for c in conns:
            cleanup.push(c.close)
        for r in range(a.rounds):
            for d in depths[r % len(depths):] + depths[:r % len(depths)]:
                qps, us = measure(conns, d, a.time, a.rows, db.pid)
                samples[d].append((round(qps), round(us, 1)))
                log(f"round {r} depth {d}: {qps:.0f} qps, mariadbd {us:.1f} µs per query")
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
           "samples": {str(d): s for d, s in samples.items()},
           "median_us": {str(d): statistics.median(us for _, us in s) for d, s in samples.items()}}
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, a.name, res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    a, m, med = res["args"], res["machine"], res["median_us"]
    base = med[str(a["depths"].split()[0])]
    lines = [f"# MariaDB's CPU per point select, by commands in flight per connection ({res['started'][:10]}, "
             f"{m.get('hostname')})", "",
             f"`bench/pipeline_probe.py`: {a['conns']} connections to a throwaway MariaDB, point selects sent "
             f"`depth` at a time per connection, {a['time']:.0f} s per measurement, {a['rounds']} interleaved "
             f"rounds, medians; {m.get('cpus')} CPUs shared with the Python client.", "",
             "| depth | mariadbd µs / query | vs depth 1 | all samples (qps, µs) |", "|---:|---:|---:|---|"]
    for d in a["depths"].split():
        s = res["samples"][d]
        lines.append(f"| {d} | {med[d]:.1f} | {med[d] / base:.2f}x | "
                     + ", ".join(f"({q}, {u})" for q, u in s) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

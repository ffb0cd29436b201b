#!/usr/bin/env python3
"""What a hop costs on this host: a message round trip with and without a wake-up.

A proxy puts two more hops on every query. Each hop is a `send` that must
wake a sleeping reader, and on a VM that wake-up can cost far more than the
system calls around it. This probe separates the parts, over loopback TCP and
over a Unix socket pair, with a small request (64 bytes, like a point select)
and a small reply (200 bytes, like its one-row result):

  no-wake     one process writes the request and reads it, writes the reply
              and reads it: the same 4 system calls, no sleeping, no switch
  same-cpu    two processes pinned to the same CPU: each round trip also
              switches from one to the other and back
  cross-cpu   two processes pinned to different CPUs: each round trip also
              wakes the other CPU twice (an IPI, and on an idle vCPU a halt
              and a VM exit)

Python's own cost per round trip is in all three alike (it is most of
`no-wake`), so compare the rows, not the absolute figures. Runs are
interleaved and repeated; the report gives medians.

Writes <name>.json and <name>.md to --out (default bench/results/<date>-<host>/).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import default_results_dir, log, machine_info, write_report, run_script  # noqa: E402

REQUEST = b"q" * 64
REPLY = b"r" * 200


def recv_exact(s: socket.socket, n: int) -> bool:
    got = 0
    while got < n:
        chunk = s.recv(n - got)
        if not chunk:
            return False
        got += len(chunk)
    return True


def pair(transport: str) -> tuple[socket.socket, socket.socket]:
    """A connected pair of sockets: loopback TCP (no Nagle, like Funnel) or Unix."""
    if transport == "unix":
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    a = socket.create_connection(srv.getsockname())
    b, _ = srv.accept()
    srv.close()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def no_wake(transport: str, rounds: int) -> float:
    """µs per round trip when one process plays both ends."""
    a, b = pair(transport)
    os.sched_setaffinity(0, {0})
    started = time.perf_counter()
    for _ in range(rounds):
        a.sendall(REQUEST)
        recv_exact(b, len(REQUEST))
        b.sendall(REPLY)
        recv_exact(a, len(REPLY))
    took = time.perf_counter() - started
    a.close()
    b.close()
    return took / rounds * 1e6


def two_processes(transport: str, rounds: int, cpu_a: int, cpu_b: int) -> float:
    """µs per round trip between two processes pinned to `cpu_a` and `cpu_b`."""
    a, b = pair(transport)
    child = os.fork()
    if child == 0:
        # The echoing end: never returns into the caller's code.
        try:
            a.close()
            os.sched_setaffinity(0, {cpu_b})
            while recv_exact(b, len(REQUEST)):
                b.sendall(REPLY)
        finally:
            os._exit(0)
    b.close()
    os.sched_setaffinity(0, {cpu_a})
    for _ in range(min(1000, rounds)):  # both ends settled on their CPUs
        a.sendall(REQUEST)
        recv_exact(a, len(REPLY))
    started = time.perf_counter()
    for _ in range(rounds):
        a.sendall(REQUEST)
        recv_exact(a, len(REPLY))
    took = time.perf_counter() - started
    a.close()
    os.waitpid(child, 0)
    return took / rounds * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20000, help="round trips per measurement")
    p.add_argument("--repeats", type=int, default=5, help="measurements per case (interleaved)")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default="wakeup_cost")
    a = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        p.error("needs CPUs 0 and 1 in this process's affinity")
    saved = os.sched_getaffinity(0)
    cases = [(t, kind) for t in ("tcp", "unix") for kind in ("no-wake", "same-cpu", "cross-cpu")]
    samples: dict[str, list[float]] = {f"{t}/{k}": [] for t, k in cases}
    try:
        for rep in range(a.repeats):
            for t, kind in cases[rep % len(cases):] + cases[:rep % len(cases)]:
                if kind == "no-wake":
                    us = no_wake(t, a.rounds)
                else:
                    us = two_processes(t, a.rounds, 0, 0 if kind == "same-cpu" else 1)
                samples[f"{t}/{kind}"].append(round(us, 2))
                log(f"repeat {rep} {t} {kind}: {us:.1f} us per round trip")
    finally:
        os.sched_setaffinity(0, saved)
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
           "samples_us": samples, "median_us": {k: statistics.median(v) for k, v in samples.items()}}
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, a.name, res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    a, m, med = res["args"], res["machine"], res["median_us"]
    lines = [f"# What a hop costs: round trips with and without a wake-up ({res['started'][:10]}, "
             f"{m.get('hostname')})", "",
             f"`bench/wakeup_cost.py`: {a['rounds']} round trips of a 64-byte request and a 200-byte reply per "
             f"measurement, {a['repeats']} interleaved measurements per case, medians; {m.get('cpus')} CPUs. "
             "All rows carry the same Python overhead; the differences between rows are the kernel's.", "",
             "| transport | no wake-up (1 process) | 2 processes, same CPU | 2 processes, different CPUs | "
             "one cross-CPU wake-up costs |", "|---|---:|---:|---:|---:|"]
    for t in ("tcp", "unix"):
        nw, same, cross = (med[f"{t}/{k}"] for k in ("no-wake", "same-cpu", "cross-cpu"))
        lines.append(f"| {t} | {nw:.1f} µs | {same:.1f} µs | {cross:.1f} µs | ~{(cross - nw) / 2:.1f} µs |")
    lines += ["", "The last column is (different CPUs − no wake-up) / 2: each round trip wakes the other side "
              "twice. All samples (µs):", ""]
    lines += [f"- {k}: {', '.join(f'{x:.1f}' for x in v)}" for k, v in res["samples_us"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

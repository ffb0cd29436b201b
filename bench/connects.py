#!/usr/bin/env python3
"""Connects per second through Funnel against direct MariaDB, with a real connector.

Short-lived connections are how PHP pages, cron jobs and many Python services talk to MySQL:
connect, a statement or two, disconnect. pymysql sends `SET AUTOCOMMIT = 0` as it connects (and
from 1.1 on, `SET NAMES utf8mb4` before it), so each connect is a login plus a statement or two
before the client's own work.
This script runs `--threads` such clients for `--time` seconds against direct MariaDB and
against each Funnel binary given (`--bin label:PATH`), side by side in rotating order, and
reports connects per second, connect latency (login and the connector's SETs) and errors.

With `--held K`, K clients first open a transaction on each Funnel and keep it (holding K of
its backend connections; with K = the pool size, every one), and `--query ''` then measures
connects alone: the case a client library meets when it connects while the pool is busy.

Needs pymysql (`apt-get install -y python3-pymysql`; run with /usr/bin/python3).

Example:
  /usr/bin/python3 bench/connects.py --threads 16 --time 10 --rounds 2 --pool 4 \\
      --bin before:/tmp/funnel-base --bin after:target/release/funnel
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, Funnel, MariaDB, default_results_dir, log, machine_info,
    proc_cpu_ns, raise_nofile, run_script, workdir, write_report,
)

try:
    import pymysql
except ImportError:  # pragma: no cover
    sys.exit("pymysql is missing: apt-get install -y python3-pymysql, then run with /usr/bin/python3")


def run_clients(port: int, threads: int, seconds: float, query: str) -> dict:
    """`threads` clients connecting, running `query` (if any) and leaving, for `seconds`."""
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    connect_ms: list[float] = []
    errors: dict[str, int] = {}

    def worker() -> None:
        mine: list[float] = []
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                c = pymysql.connect(host="127.0.0.1", port=port, user=SB_USER, password=SB_PASSWORD,
                                    database=SB_DB, charset="utf8mb4", connect_timeout=30,
                                    read_timeout=60)
                mine.append((time.monotonic() - t0) * 1000)
                if query:
                    with c.cursor() as cur:
                        cur.execute(query)
                        cur.fetchall()
                c.close()
            except pymysql.MySQLError as e:
                key = str(e.args[0]) if e.args else type(e).__name__
                with lock:
                    errors[key] = errors.get(key, 0) + 1
        with lock:
            connect_ms.extend(mine)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - started
    connect_ms.sort()

    def pct(p: float) -> float | None:
        return connect_ms[min(len(connect_ms) - 1, int(len(connect_ms) * p))] if connect_ms else None

    return {"connects": len(connect_ms), "per_sec": len(connect_ms) / took, "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": connect_ms[-1] if connect_ms else None, "errors": errors}


def hold(port: int, k: int) -> list:
    """K clients each holding a backend connection with an open transaction."""
    held = []
    for _ in range(k):
        c = pymysql.connect(host="127.0.0.1", port=port, user=SB_USER, password=SB_PASSWORD,
                            database=SB_DB)
        with c.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT 1")
        held.append(c)
    return held


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--time", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pool", type=int, default=4, help="pool.max_per_core (cores: 1)")
    ap.add_argument("--held", type=int, default=0, help="Funnel backend connections held by open transactions")
    ap.add_argument("--query", default="SELECT 1", help="run after each connect ('' for none)")
    ap.add_argument("--wait-timeout", default="10s", help="backlog.wait_timeout")
    ap.add_argument("--bin", action="append", default=[], help="label:PATH of a Funnel binary")
    ap.add_argument("--name", default="connects")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if not a.bin:
        ap.error("give at least one --bin label:PATH")
    raise_nofile()
    out = a.out or default_results_dir()
    wd = workdir("funnel-connects-")
    res: dict = {"args": vars(a) | {"out": str(out)}, "machine": machine_info(), "rounds": []}
    with Cleanup() as cleanup:
        db = MariaDB.start(wd / "db", "direct")
        cleanup.push(db.stop)
        db.create_sbtest()
        # (label, port, pid of the Funnel process or None)
        targets: list[tuple[str, int, int | None]] = [("direct", db.port, None)]
        for spec in a.bin:
            label, path = spec.split(":", 1)
            f = Funnel.start(wd, Path(path), db.port, cores=1, pool_per_core=a.pool, name=label,
                             wait_timeout=a.wait_timeout)
            cleanup.push(f.stop)
            targets.append((label, f.port, f.pid))
            if a.held:
                held = hold(f.port, a.held)
                cleanup.push(lambda h=held: [c.close() for c in h])
        for r in range(a.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            row = {}
            for label, port, pid in order:
                log(f"round {r + 1}: {label}, {a.threads} clients, {a.time:g} s")
                # Statements the server ran, and Funnel's CPU, per connect: what
                # each connect cost the box, free of the clients' noise.
                questions = db.status("Questions")
                cpu = proc_cpu_ns(pid) if pid else 0
                got = run_clients(port, a.threads, a.time, a.query)
                n = max(got["connects"], 1)
                got["server_statements_per_connect"] = (db.status("Questions") - questions) / n
                got["funnel_cpu_us_per_connect"] = (proc_cpu_ns(pid) - cpu) / n / 1000 if pid else None
                row[label] = got
            res["rounds"].append(row)
    labels = [t[0] for t in targets]
    md = [f"# Connects through Funnel ({a.threads} pymysql clients, {a.time:g} s x {a.rounds} rounds)", "",
          f"Each client (pymysql {pymysql.__version__}): connect (login and the connector's `SET`s), "
          f"{'`' + a.query + '`' if a.query else 'nothing'}, disconnect. Funnel: 1 core, pool {a.pool}, "
          f"{a.held} backend connections held by open transactions, backlog.wait_timeout {a.wait_timeout}.", "",
          "| target | connects/s (median) | vs direct | connect p50 ms | p99 ms | max ms | server statements / connect | Funnel CPU µs / connect | errors |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    direct = statistics.median(r["direct"]["per_sec"] for r in res["rounds"])
    for label in labels:
        runs = [r[label] for r in res["rounds"]]
        per_sec = statistics.median(x["per_sec"] for x in runs)
        p50 = statistics.median(x["p50_ms"] or 0 for x in runs)
        p99 = statistics.median(x["p99_ms"] or 0 for x in runs)
        mx = max(x["max_ms"] or 0 for x in runs)
        errs: dict[str, int] = {}
        for x in runs:
            for k, v in x["errors"].items():
                errs[k] = errs.get(k, 0) + v
        stmts = statistics.median(x["server_statements_per_connect"] for x in runs)
        cpus = [x["funnel_cpu_us_per_connect"] for x in runs if x["funnel_cpu_us_per_connect"] is not None]
        cpu = f"{statistics.median(cpus):.0f}" if cpus else "-"
        md.append(f"| {label} | {per_sec:.0f} | {per_sec / direct:.2f}x | {p50:.1f} | {p99:.1f} | {mx:.0f} | "
                  f"{stmts:.2f} | {cpu} | {', '.join(f'{k}: {v}' for k, v in sorted(errs.items())) or '0'} |")
    write_report(out, a.name, res, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main)

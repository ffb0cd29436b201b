#!/usr/bin/env python3
"""Clients of different connection settings sharing a full pool.

A pool keeps backend connections by the client settings that shape the server's replies: the
handshake charset and a few capability flags (docs/multiplexing.md). Real fleets mix them:
libmariadb and PyMySQL log in with utf8mb4_general_ci, Connector/J and the Node.js connectors
with utf8mb4_unicode_ci; some clients ask for CLIENT_FOUND_ROWS. When the pool is full and the
next waiter's settings differ from those of the connection just released, the connection has to
change: a charset with one `SET NAMES`, capability flags only by closing it and logging in anew.

This script runs `--clients` pymysql clients doing point selects for `--time` seconds, in five
mixes, through each Funnel binary given (`--bin label:PATH`), side by side in rotating order:
- `one key`: every client utf8mb4;
- `two charsets`: half utf8mb4, half latin1;
- `one in eight latin1`: a small group of another charset beside a large one;
- `multi-statements`: half with CLIENT_MULTI_STATEMENTS (as libmariadb asks);
- `found rows`: half with CLIENT_FOUND_ROWS (as Connector/J asks).
It reports queries per second, backend connections opened and switched, and Funnel's CPU per
query (from `SHOW STATS` on its admin port and /proc).

Needs pymysql (`apt-get install -y python3-pymysql`; run with /usr/bin/python3).

Example:
  /usr/bin/python3 bench/mixed_clients.py --clients 32 --pool 8 --time 10 --rounds 2 \\
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
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, Funnel, MariaDB, default_results_dir, free_port, log,
    machine_info, proc_cpu_ns, raise_nofile, run_script, workdir, write_report,
)

try:
    import pymysql
    from pymysql.constants import CLIENT
except ImportError:  # pragma: no cover
    sys.exit("pymysql is missing: apt-get install -y python3-pymysql, then run with /usr/bin/python3")

ROWS = 10000

#: mix name -> (charset, extra flags, every how many clients one has them); the others: utf8mb4,
#: no extra flags
MIXES = {
    "one key": ("utf8mb4", 0, 2),
    "two charsets": ("latin1", 0, 2),
    "one in eight latin1": ("latin1", 0, 8),
    "multi-statements": ("utf8mb4", CLIENT.MULTI_STATEMENTS, 2),
    "found rows": ("utf8mb4", CLIENT.FOUND_ROWS, 2),
}


def run_clients(port: int, clients: int, seconds: float, other: tuple[str, int, int]) -> dict:
    """`clients` connections running point selects for `seconds`; one in `other[2]` of them with
    `other`'s charset and flags."""
    stop = threading.Event()
    lock = threading.Lock()
    done = [0]
    errors: dict[str, int] = {}
    # Per kind of client (the usual ones, the others): every query's latency, ms.
    lat: list[list[float]] = [[], []]
    every = other[2]
    conns = []
    for i in range(clients):
        charset, flags = other[:2] if i % every == every - 1 else ("utf8mb4", 0)
        conns.append(pymysql.connect(host="127.0.0.1", port=port, user=SB_USER, password=SB_PASSWORD,
                                     database=SB_DB, charset=charset, client_flag=flags,
                                     autocommit=True, read_timeout=60))

    def worker(c, seed: int) -> None:
        n = 0
        mine: list[float] = []
        with c.cursor() as cur:
            while not stop.is_set():
                try:
                    t0 = time.monotonic()
                    cur.execute("SELECT c FROM sbtest1 WHERE id = %s", ((seed + n * 7919) % ROWS + 1,))
                    cur.fetchall()
                    mine.append((time.monotonic() - t0) * 1000)
                    n += 1
                except pymysql.MySQLError as e:
                    key = str(e.args[0]) if e.args else type(e).__name__
                    with lock:
                        errors[key] = errors.get(key, 0) + 1
        with lock:
            done[0] += n
            lat[int(seed % every == every - 1)].extend(mine)

    ts = [threading.Thread(target=worker, args=(c, i)) for i, c in enumerate(conns)]
    started = time.monotonic()
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    took = time.monotonic() - started
    for c in conns:
        c.close()
    def pct(xs: list[float], p: float) -> float | None:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None

    return {"queries": done[0], "qps": done[0] / took, "errors": errors,
            "p50_ms": [pct(x, 0.5) for x in lat], "p99_ms": [pct(x, 0.99) for x in lat]}


def stats(admin_port: int) -> dict[str, int]:
    """SHOW STATS totals (all cores) from Funnel's admin port."""
    c = pymysql.connect(host="127.0.0.1", port=admin_port, user="admin", password="admin", autocommit=None)
    try:
        with c.cursor() as cur:
            cur.execute("SHOW STATS")
            return {r[1]: int(r[2]) for r in cur.fetchall() if r[0] == "all" and str(r[2]).isdigit()}
    finally:
        c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--time", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pool", type=int, default=8, help="pool.max_per_core (cores: 1)")
    ap.add_argument("--bin", action="append", default=[], help="label:PATH of a Funnel binary")
    ap.add_argument("--name", default="mixed_clients")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if not a.bin:
        ap.error("give at least one --bin label:PATH")
    raise_nofile()
    out = a.out or default_results_dir()
    wd = workdir("funnel-mixed-")
    res: dict = {"args": vars(a) | {"out": str(out)}, "machine": machine_info(), "rounds": []}
    with Cleanup() as cleanup:
        db = MariaDB.start(wd / "db", "direct")
        cleanup.push(db.stop)
        db.prepare_sysbench(1, ROWS)
        # (label, client port, admin port, pid)
        targets: list[tuple[str, int, int, int]] = []
        for spec in a.bin:
            label, path = spec.split(":", 1)
            admin = free_port()
            f = Funnel.start(wd, Path(path), db.port, cores=1, pool_per_core=a.pool, name=label,
                             extra_yaml=f"admin:\n  listen: 127.0.0.1:{admin}\n  user: admin\n  password: admin\n")
            cleanup.push(f.stop)
            targets.append((label, f.port, admin, f.pid))
        runs = [(t, mix) for mix in MIXES for t in targets]
        for r in range(a.rounds):
            order = runs[r % len(runs):] + runs[:r % len(runs)]
            row: dict = {}
            for (label, port, admin, pid), mix in order:
                log(f"round {r + 1}: {label}, {mix}, {a.clients} clients, {a.time:g} s")
                before, cpu = stats(admin), proc_cpu_ns(pid)
                got = run_clients(port, a.clients, a.time, MIXES[mix])
                after = stats(admin)
                delta = {k: after[k] - before.get(k, 0) for k in after}
                got["backend_opened"] = delta.get("backend_connections_opened", 0)
                got["switched"] = delta.get("backend_connections_switched")
                got["funnel_cpu_us_per_query"] = (proc_cpu_ns(pid) - cpu) / max(got["queries"], 1) / 1000
                row[f"{label} / {mix}"] = got
            res["rounds"].append(row)
    md = [f"# Clients of mixed settings on a full pool ({a.clients} pymysql clients, {a.time:g} s x {a.rounds} rounds)", "",
          f"Funnel: 1 core, pool {a.pool}. Each client runs point selects on a {ROWS}-row table; in the mixed "
          "runs half of the clients (or one in eight) log in with latin1, CLIENT_MULTI_STATEMENTS or "
          "CLIENT_FOUND_ROWS. "
          "Medians; connections opened and switched are per run (`-`: the binary does not count them).", "",
          "| binary | mix | qps | vs one key | p50 ms usual / other clients | p99 ms usual / other clients | backend connections opened | switched | Funnel CPU µs / query | errors |",
          "|---|---|---:|---:|---|---|---:|---:|---:|---|"]
    for label, *_ in targets:
        base = statistics.median(r[f"{label} / one key"]["qps"] for r in res["rounds"])
        for mix in MIXES:
            xs = [r[f"{label} / {mix}"] for r in res["rounds"]]
            qps = statistics.median(x["qps"] for x in xs)
            opened = statistics.median(x["backend_opened"] for x in xs)
            sw = [x["switched"] for x in xs if x["switched"] is not None]
            cpu = statistics.median(x["funnel_cpu_us_per_query"] for x in xs)
            errs: dict[str, int] = {}
            for x in xs:
                for k, v in x["errors"].items():
                    errs[k] = errs.get(k, 0) + v
            switches = f"{statistics.median(sw):.0f}" if sw else "-"
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(errs.items())) or "0"
            p50 = " / ".join(f"{statistics.median(x['p50_ms'][h] for x in xs):.2f}" for h in (0, 1))
            p99 = " / ".join(f"{statistics.median(x['p99_ms'][h] for x in xs):.1f}" for h in (0, 1))
            md.append(f"| {label} | {mix} | {qps:.0f} | {qps / base:.2f}x | {p50} | {p99} | {opened:.0f} | "
                      f"{switches} | {cpu:.1f} | {shown} |")
    write_report(out, a.name, res, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main)

#!/usr/bin/env python3
"""Batched inserts through Funnel against direct MariaDB, with MariaDB's bulk protocol.

MariaDB's connectors send a batch of rows for one prepared INSERT as one
`COM_STMT_BULK_EXECUTE` where the server offers bulk operations
(Connector/J `useBulkStmts`, Connector/Node.js `batch()`, Connector/C array
binding), and as one `COM_STMT_EXECUTE` per row where it does not. Funnel
offers bulk operations since session 23; before, its clients took the
per-row path. This script measures both paths side by side: `--clients`
Node.js clients (MariaDB Connector/Node.js, installed by the connector
tests under target/node-connectors) each insert `--batches` batches of
`--rows` rows, against

  direct       MariaDB, bulk (the connector's default)
  funnel       Funnel in front of it, bulk
  funnel-rows  Funnel, the connector told `bulk: false`: one execute per
               row, pipelined (what Funnel's clients got before)
  direct-rows  MariaDB, one execute per row, for comparison

in rotating order, `--rounds` times. It reports rows per second, the
server's and Funnel's CPU per 1000 rows, and checks every row arrived.

Writes <name>.json and <name>.md to --out (default bench/results/<date>-<host>/).

Example:
  /usr/bin/python3 bench/bulk_insert.py --clients 4 --batches 20 --rows 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    ROOT, SB_DB, SB_PASSWORD, SB_USER, Funnel, MariaDB, default_results_dir, log, machine_info,
    proc_cpu_ns, run_script, workdir, write_report,
)

NODE_MODULES = ROOT / "target" / "node-connectors" / "node_modules"

# One client: `batches` batch() calls of `rows` rows into table `t_<who>`.
CLIENT_JS = r"""
const mariadb = require('mariadb');
const [port, user, password, db, who, batches, rows, bulk] = process.argv.slice(2);
(async () => {
  const c = await mariadb.createConnection({ host: '127.0.0.1', port: Number(port), user, password,
    database: db, bulk: bulk === '1' });
  const table = 't_' + who;
  await c.query(`CREATE OR REPLACE TABLE ${table} (id INT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(40), c DOUBLE)`);
  const started = process.hrtime.bigint();
  for (let i = 0; i < Number(batches); i++) {
    const vals = Array.from({ length: Number(rows) }, (_, k) => [i * 100000 + k, 'row ' + k + ' of batch ' + i, k / 7]);
    await c.batch(`INSERT INTO ${table} (a, b, c) VALUES (?, ?, ?)`, vals);
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const [{ n }] = await c.query(`SELECT COUNT(*) AS n FROM ${table}`);
  await c.end();
  console.log(JSON.stringify({ secs, rows: Number(n) }));
})().catch((e) => { console.error(e); process.exit(1); });
"""

TARGETS = ["direct", "funnel", "funnel-rows", "direct-rows"]


def run_clients(port: int, user: str, password: str, clients: int, batches: int, rows: int,
                bulk: bool, tag: str, script: Path) -> dict:
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
    started = time.monotonic()
    procs = [subprocess.Popen(["node", str(script), str(port), user, password, SB_DB, f"{tag}{i}",
                               str(batches), str(rows), "1" if bulk else "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(clients)]
    outs = [p.communicate(timeout=600) for p in procs]
    wall = time.monotonic() - started
    errors = [err.strip()[-300:] for p, (_, err) in zip(procs, outs) if p.returncode != 0]
    results = [json.loads(out.strip().splitlines()[-1]) for p, (out, _) in zip(procs, outs) if p.returncode == 0]
    return {"wall": wall, "errors": errors, "rows_seen": sum(r["rows"] for r in results),
            "client_secs": [r["secs"] for r in results]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--rows", type=int, default=1000, help="rows per batch() call")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pool", type=int, default=2, help="Funnel's pool.max_per_core")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--name", default="bulk_insert")
    a = p.parse_args()
    if not (NODE_MODULES / "mariadb").exists():
        sys.exit(f"{NODE_MODULES}/mariadb is missing: run `cargo nextest run -p funnel --test node_connectors` once")
    out_dir = a.out or default_results_dir()
    work = workdir("bulk-insert")
    script = work / "client.js"
    script.write_text(CLIENT_JS)
    db = MariaDB.start(work / "db", "direct")
    funnel = None
    try:
        db.create_sbtest()
        funnel = Funnel.start(work, Funnel.private_binary(work), db.port, cores=1, pool_per_core=a.pool)
        points: list[dict] = []
        for rnd in range(a.rounds):
            order = TARGETS[rnd % len(TARGETS):] + TARGETS[:rnd % len(TARGETS)]
            for target in order:
                through = target.startswith("funnel")
                port = funnel.port if through else db.port
                cpu0 = (proc_cpu_ns(db.pid), proc_cpu_ns(funnel.pid))
                r = run_clients(port, SB_USER, SB_PASSWORD, a.clients, a.batches, a.rows,
                                not target.endswith("-rows"), f"r{rnd}{target.replace('-', '')}", script)
                cpu1 = (proc_cpu_ns(db.pid), proc_cpu_ns(funnel.pid))
                total = a.clients * a.batches * a.rows
                point = {
                    "round": rnd, "target": target, "rows": total, "rows_seen": r["rows_seen"],
                    "errors": r["errors"], "wall_s": r["wall"],
                    "rows_per_s": total / r["wall"],
                    "mariadbd_us_per_1000": (cpu1[0] - cpu0[0]) / 1e3 / (total / 1000),
                    "funnel_us_per_1000": ((cpu1[1] - cpu0[1]) / 1e3 / (total / 1000)) if through else None,
                }
                log(f"round {rnd} {target}: {point['rows_per_s']:.0f} rows/s, {len(r['errors'])} errors, "
                    f"{r['rows_seen']}/{total} rows")
                points.append(point)
        res = {"args": vars(a) | {"out": str(out_dir)}, "machine": machine_info(), "points": points}
        md = report(res)
        stem = write_report(out_dir, a.name, res, md)
        print(md)
        log(f"wrote {stem}.json and {stem}.md")
    finally:
        if funnel:
            funnel.stop()
        db.stop()


def report(res: dict) -> str:
    a = res["args"]
    lines = [
        f"# Batched inserts with MariaDB Connector/Node.js `batch()` ({time.strftime('%Y-%m-%d')})",
        "",
        f"`bench/bulk_insert.py`: {a['clients']} clients at once, each {a['batches']} batches of "
        f"{a['rows']} rows (3 columns) into a table of its own; Funnel `cores: 1`, "
        f"`pool.max_per_core: {a['pool']}`; {a['rounds']} rounds, targets in rotating order; medians.",
        "",
        "| target | rows/s | vs direct (bulk) | mariadbd µs / 1000 rows | Funnel µs / 1000 rows | errors | rows checked |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    by = {t: [p for p in res["points"] if p["target"] == t] for t in TARGETS}
    base = statistics.median(p["rows_per_s"] for p in by["direct"]) if by["direct"] else None
    for t in TARGETS:
        ps = by[t]
        if not ps:
            continue
        rate = statistics.median(p["rows_per_s"] for p in ps)
        db_cpu = statistics.median(p["mariadbd_us_per_1000"] for p in ps)
        f_cpu = [p["funnel_us_per_1000"] for p in ps if p["funnel_us_per_1000"] is not None]
        ok = all(p["rows_seen"] == p["rows"] for p in ps)
        funnel_cpu = f"{statistics.median(f_cpu):,.0f}" if f_cpu else "—"
        errors = sum(len(p["errors"]) for p in ps)
        lines.append(f"| {t} | {rate:,.0f} | {rate / base:.2f}x | {db_cpu:,.0f} | {funnel_cpu} | "
                     f"{errors} | {'all' if ok else 'MISSING ROWS'} |")
    lines += ["", "`funnel-rows` is what Funnel's clients got before it offered bulk operations (the "
              "connector falls back to one execute per row)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

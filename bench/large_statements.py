#!/usr/bin/env python3
"""A mysqldump restore through Funnel against the same restore sent directly.

Large statements cost Funnel per byte: it reads each COM_QUERY's text before
forwarding it (see crates/funnel-engine/src/session/scan_cost.rs for the
per-pass numbers). Here a table of about --mb MB of text rows with escapes is
written once, dumped with `mariadb-dump` (extended INSERTs of about 1 MiB,
its default --net-buffer-length), then restored with the `mariadb` CLI into a
fresh schema: directly, and through each Funnel binary given (`cores: 1`).
Reports wall time and Funnel's CPU time (utime + stime of its process) for
each restore.

  python3 bench/large_statements.py --binary before=PATH --binary after=PATH [--mb 200]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import time
from pathlib import Path

import sys
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, Funnel, MariaDB, default_results_dir, log,
    proc_cpu_seconds, run_script, workdir, write_report,
)

WORDS = ["lorem", "ipsum", "it's", 'say "hi"', "C:\\temp\\x", "line\nbreak", "tab\there",
         "caf\u00e9", "na\u00efve", "user", "password", "kill", "100%", "a_b", "O'Brien"]


def generate(path: Path, mb: int, seed: int = 7) -> None:
    """A plain SQL file of single-row INSERTs totalling about `mb` MB of text."""
    rng = random.Random(seed)
    target = mb << 20
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(255), b TEXT, c DOUBLE, d DATETIME);\n")
        f.write("BEGIN;\n")
        row = 0
        while written < target:
            values = []
            for _ in range(200):
                row += 1
                a = " ".join(rng.choice(WORDS) for _ in range(8))
                b = " ".join(rng.choice(WORDS) for _ in range(60))
                esc = lambda s: s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
                values.append(f"({row},'{esc(a)}','{esc(b)}',{row * 0.25},'2024-01-01 00:00:00')")
            line = "INSERT INTO t VALUES " + ",".join(values) + ";\n"
            f.write(line)
            written += len(line)
        f.write("COMMIT;\n")


def insert_sizes(dump: Path) -> list[int]:
    """The size of each INSERT of a dump (MariaDB 11's mariadb-dump writes
    one row a line, so a statement runs to the line ending in `;`)."""
    sizes: list[int] = []
    current = None
    with open(dump, "rb") as f:
        for line in f:
            if current is None and line.startswith(b"INSERT"):
                current = 0
            if current is not None:
                current += len(line)
                if line.rstrip(b"\n").endswith(b";"):
                    sizes.append(current)
                    current = None
    return sizes


def mariadb_cli(port: int, user: str, password: str, db: str, stdin: Path) -> float:
    """Runs a SQL file through the mariadb CLI; returns the wall time."""
    t = time.monotonic()
    with open(stdin, "rb") as f:
        subprocess.run(["mariadb", "-h127.0.0.1", f"-P{port}", f"-u{user}", f"-p{password}", db],
                       stdin=f, check=True)
    return time.monotonic() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", required=True, help="label=path of a Funnel release binary")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="large_statements")
    args = ap.parse_args()
    out = args.out or default_results_dir()
    wd = workdir("funnel-large-")
    with Cleanup() as cleanup:
        db = MariaDB.start(wd / "mariadb", "large", buffer_pool="512M", extra=["--max-allowed-packet=64M"])
        cleanup.push(db.stop)
        db.create_sbtest()
        gen = wd / "gen.sql"
        log(f"writing about {args.mb} MB of rows")
        generate(gen, args.mb)
        db.sql("CREATE DATABASE src")
        log("loading the source table")
        mariadb_cli(db.port, SB_USER, SB_PASSWORD, "src", gen)
        gen.unlink()
        dump = wd / "dump.sql"
        log("dumping it with mariadb-dump")
        with open(dump, "wb") as f:
            subprocess.run(["mariadb-dump", "-h127.0.0.1", f"-P{db.port}", "-uroot", "src", "t"],
                           stdout=f, check=True)
        size = dump.stat().st_size
        lines = insert_sizes(dump)
        runs = []
        targets = [("direct", None)] + [tuple(b.split("=", 1)) for b in args.binary]
        # Twice each, interleaved: the box is shared, so one slow restore says little.
        for rep in range(2):
            for label, binary in targets:
                schema = f"r_{label}_{rep}"
                db.sql(f"CREATE DATABASE {schema}")
                if binary is None:
                    wall = mariadb_cli(db.port, SB_USER, SB_PASSWORD, schema, dump)
                    cpu = None
                else:
                    f = Funnel.start(wd, Path(binary), db.port, cores=1, pool_per_core=2, name=f"funnel-{label}")
                    cleanup.push(f.stop)
                    before = proc_cpu_seconds(f.pid)
                    wall = mariadb_cli(f.port, SB_USER, SB_PASSWORD, schema, dump)
                    cpu = proc_cpu_seconds(f.pid) - before
                    f.stop()
                rows = db.sql(f"SELECT COUNT(*) FROM {schema}.t")[0][0]
                log(f"{label} #{rep}: {wall:.1f} s wall, Funnel CPU {cpu}, {rows} rows")
                runs.append({"target": label, "rep": rep, "wall_s": round(wall, 2),
                             "funnel_cpu_s": None if cpu is None else round(cpu, 2), "rows": int(rows)})
                db.sql(f"DROP DATABASE {schema}")
        res = {"dump_bytes": size, "insert_statements": len(lines),
               "largest_insert_bytes": max(lines), "binaries": dict(b.split("=", 1) for b in args.binary),
               "runs": runs}
        md = [f"# mysqldump restore through Funnel ({size / 1e6:.0f} MB dump, {len(lines)} INSERTs "
              f"of up to {max(lines) / 1024:.0f} KiB)\n",
              "| target | run | wall s | Funnel CPU s | Funnel CPU ns/byte |", "|---|---|---|---|---|"]
        for r in runs:
            cpu = r["funnel_cpu_s"]
            per = "" if cpu is None else f"{cpu * 1e9 / size:.1f}"
            md.append(f"| {r['target']} | {r['rep']} | {r['wall_s']} | {'' if cpu is None else cpu} | {per} |")
        write_report(out, args.name, res, "\n".join(md) + "\n")
        return 0


if __name__ == "__main__":
    run_script(main)

#!/usr/bin/env python3
"""Funnel's user-space instructions per forwarded point_select, counted by callgrind.

The noise-free half of Funnel's CPU cost. On this kind of VM `perf stat` has no hardware
counters and CPU time moves with the neighbours, so two builds can only be told apart by
interleaved medians. An instruction count at a fixed query count does not move: it is the
same on a busy box and a quiet one, so it shows small cuts (a clock read, a timer, a copy)
that CPU time hides. It counts only user space (Funnel, glommio, std, libc): the kernel's
share (sends, wake-ups, io_uring; about 70% of Funnel's CPU time here, see profile.md) is
not in it.

How: Funnel (`cores: 1`) runs under `valgrind --tool=callgrind`. For each client count,
sysbench oltp_point_select runs twice with a fixed number of events (--events, --time=0);
callgrind's counters are zeroed before and dumped after each run. Instructions per query =
(Ir of the long run - Ir of the short run) / (queries of the long run - of the short run),
so logins, the first queries' warm-up and the nudges below cancel out.

callgrind_control is only served while the program runs instructions, and an idle Funnel
sleeps in io_uring_enter; so the script nudges it with a tiny query until the command is
done.

  python3 bench/instructions_per_query.py [--clients "1 8 64"] [--baseline-binary PATH]

Writes <name>.json and <name>.md (with the top functions by inclusive instructions of the
long run) to --out. Servers are stopped by PID at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, Funnel, MariaDB, MiniConn, MySQLError, default_results_dir,
    log, machine_info, raise_nofile, run_sysbench, write_report, workdir, run_script,
)


class Callgrind:
    """One Funnel under callgrind, and the zero/dump cycle around a run."""

    def __init__(self, funnel: Funnel, out_prefix: Path):
        self.funnel = funnel
        self.out_prefix = out_prefix

    def nudge(self) -> None:
        """Makes the sleeping executor run a little, so valgrind serves a pending command."""
        try:
            c = MiniConn("127.0.0.1", self.funnel.port, SB_USER, SB_PASSWORD, SB_DB, timeout=30)
            c.query("SELECT 1")
            c.close()
        except (OSError, MySQLError):
            pass

    def control(self, *args: str) -> None:
        proc = subprocess.Popen(["callgrind_control", *args, str(self.funnel.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"callgrind_control {' '.join(args)} did not finish")
            self.nudge()
            time.sleep(0.2)

    def zero(self) -> None:
        self.control("--zero")

    def dump(self) -> tuple[int, Path]:
        """Dumps the counters since the last zero; returns total Ir and the dump file."""
        before = set(self.out_prefix.parent.glob(self.out_prefix.name + "*"))
        self.control("--dump")
        deadline = time.monotonic() + 30
        while True:
            new = set(self.out_prefix.parent.glob(self.out_prefix.name + "*")) - before
            if new:
                path = max(new, key=lambda p: p.stat().st_mtime)
                text = path.read_text(errors="replace")
                m = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.M)
                if m:
                    return int(m.group(1)), path
            if time.monotonic() > deadline:
                raise RuntimeError("callgrind wrote no dump")
            time.sleep(0.2)


def top_functions(dump: Path, n: int = 25) -> list[tuple[str, int]]:
    """The `n` functions with the most inclusive instructions in `dump`."""
    if not shutil.which("callgrind_annotate"):
        return []
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$", line)
        if m and not m.group(2).startswith("PROGRAM TOTALS"):
            rows.append((m.group(2).strip(), int(m.group(1).replace(",", ""))))
    return rows[:n]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="1 8 64")
    p.add_argument("--short-events", type=int, default=2000)
    p.add_argument("--long-events", type=int, default=8000)
    p.add_argument("--pool-per-core", type=int, default=8)
    p.add_argument("--ps-mode", default="disable", choices=["disable", "auto"],
                   help="sysbench --db-ps-mode: text queries, or binary prepared statements")
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=10000)
    p.add_argument("--baseline-binary", default=None, help="another Funnel build, counted the same way")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default="instructions_per_query")
    p.add_argument("--keep-dumps", default=None, metavar="DIR",
                   help="copy each long run's callgrind dump here (for callgrind_annotate --tree=caller)")
    a = p.parse_args(argv)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is missing (apt-get install -y valgrind)")
    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    work = workdir("funnel-ipq-")
    clients = [int(x) for x in a.clients.split()]
    rows: list[dict] = []
    tops: dict[str, list] = {}
    with Cleanup() as cleanup:
        cleanup.push(lambda: shutil.rmtree(work, ignore_errors=True))
        db = MariaDB.start(work / "db", "ipq", max_connections=500, buffer_pool="256M")
        cleanup.push(db.stop)
        db.prepare_sysbench(a.tables, a.table_size)
        builds = [("current", Funnel.private_binary(work))]
        if a.baseline_binary:
            base = work / "funnel-baseline-bin"
            shutil.copy2(a.baseline_binary, base)
            builds.append(("baseline", base))
        for label, binary in builds:
            prefix = work / f"cg-{label}.out"
            wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}", "--dump-instr=no"]
            funnel = Funnel.start(work, binary, db.port, 1, a.pool_per_core, name=f"funnel-{label}",
                                  wrapper=wrapper, start_timeout=180, wait_timeout="120s")
            cleanup.push(funnel.stop)
            cg = Callgrind(funnel, prefix)
            run_sysbench(funnel.port, "oltp_point_select", 8, 0, a.tables, a.table_size,
                         ps_mode=a.ps_mode, extra=["--events=500"], hard_limit=300)
            for n in clients:
                got = {}
                for events in (a.short_events, a.long_events):
                    cg.zero()
                    r = run_sysbench(funnel.port, "oltp_point_select", n, 0, a.tables, a.table_size,
                                     ps_mode=a.ps_mode, extra=[f"--events={events}"], hard_limit=900)
                    ir, dump = cg.dump()
                    if not r.ok or not r.queries:
                        raise RuntimeError(f"sysbench failed at {n} clients: {r.reason}")
                    got[events] = (ir, r.queries, dump)
                (ir_s, q_s, _), (ir_l, q_l, dump_l) = got[a.short_events], got[a.long_events]
                per_query = (ir_l - ir_s) / (q_l - q_s)
                rows.append({"build": label, "clients": n, "short": {"ir": ir_s, "queries": q_s},
                             "long": {"ir": ir_l, "queries": q_l}, "instructions_per_query": round(per_query)})
                log(f"{label}, {n} clients: {per_query:,.0f} instructions per query")
                if a.keep_dumps:
                    Path(a.keep_dumps).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(dump_l, Path(a.keep_dumps) / f"callgrind-{label}-{n}.out")
                if n == clients[-1] or n == 8:
                    tops[f"{label}-{n}"] = [(f, round(ir / q_l)) for f, ir in top_functions(dump_l)]
            funnel.stop()
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
           "rows": rows, "top_functions_per_query": tops}
    write_report(out, a.name, res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    a = res["args"]
    lines = [f"# Funnel user-space instructions per forwarded point_select ({res['started'][:10]}, "
             f"{res['machine'].get('hostname')})", "",
             f"`bench/instructions_per_query.py`: Funnel (`cores: 1`, pool {a['pool_per_core']}) under "
             f"callgrind; sysbench oltp_point_select --db-ps-mode={a.get('ps_mode', 'disable')} with {a['short_events']} and "
             f"{a['long_events']} events; instructions per query = difference of the two runs' Ir / "
             "difference of their queries. User space only (Funnel, glommio, std, libc); the kernel's "
             "share is not counted.", "",
             "| clients | build | instructions / query |", "|---:|---|---:|"]
    for r in res["rows"]:
        lines.append(f"| {r['clients']} | {r['build']} | **{r['instructions_per_query']:,}** |")
    for key, funcs in res["top_functions_per_query"].items():
        if not funcs:
            continue
        lines += ["", f"Top functions, inclusive instructions per query of the long run ({key} clients):", "",
                  "| instructions / query | function |", "|---:|---|"]
        lines += [f"| {ir:,} | `{f[:120]}` |" for f, ir in funcs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

#!/usr/bin/env python3
"""Funnel's CPU per forwarded point_select at fixed client counts.

For each client count (default 8 64 1024 4096) runs sysbench
oltp_point_select through Funnel for --time seconds and divides Funnel's
CPU time (on-CPU nanoseconds of all its threads, /proc/PID/task/*/schedstat;
utime+stime ticks as a cross-check) by the queries sysbench completed.

Under `perf stat -p PID` for the same window it also counts, per query:
  * instructions and cycles, when the CPU's counters work here (many VMs
    say "<not supported>": then they are skipped and the report says so);
  * software counters that work everywhere: task-clock, context switches,
    and syscalls (raw_syscalls:sys_enter, and io_uring_enter alone), when
    tracepoints are readable.

Standalone it starts its own throwaway MariaDB and prepares tables;
sweep.py passes --server-port to reuse its prepared server. Writes
cpu_per_query.json/.md to --out.
"""

from __future__ import annotations

import argparse
import statistics
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    Cleanup, CpuMark, Funnel, MariaDB, default_results_dir, log, machine_info, perf_counters_work,
    raise_nofile, run_sysbench, write_report, workdir, run_script,
)

SOFT_EVENTS = ["task-clock", "context-switches", "raw_syscalls:sys_enter", "syscalls:sys_enter_io_uring_enter"]


def usable_events(hw: bool) -> tuple[list[str], str]:
    """The perf events that count here; a note on what was dropped."""
    if not shutil.which("perf"):
        return [], "perf not installed (apt-get install linux-perf): CPU time only"
    events, dropped = [], []
    for e in SOFT_EVENTS:
        p = subprocess.run(["perf", "stat", "-x,", "-e", e, "true"], capture_output=True, text=True)
        (dropped if p.returncode != 0 or "not supported" in p.stderr else events).append(e)
    if hw:
        events = ["instructions", "cycles"] + events
    note = "" if not dropped else f"not countable here: {', '.join(dropped)}"
    return events, note


def perf_start(pid: int, events: list[str], path: Path):
    if not events:
        return None
    return subprocess.Popen(["perf", "stat", "-x,", "-o", str(path), "-e", ",".join(events), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(proc, path: Path) -> dict:
    if proc is None:
        return {}
    proc.send_signal(2)  # SIGINT: perf stat prints its counts and exits
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return {}
    counts = {}
    for line in path.read_text().splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[2]:
            try:
                counts[parts[2]] = float(parts[0])
            except ValueError:
                counts[parts[2]] = None  # "<not supported>" / "<not counted>"
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="8 64 1024 4096")
    p.add_argument("--time", type=int, default=20)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--pool-per-core", type=int, default=16)
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=100000)
    p.add_argument("--ps-mode", choices=["disable", "auto"], default="disable")
    p.add_argument("--server-port", type=int, default=None,
                   help="reuse a running throwaway MariaDB with the sysbench tables prepared")
    p.add_argument("--no-perf", action="store_true", help="CPU time only")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default="cpu_per_query")
    p.add_argument("--baseline-binary", default=None,
                   help="another Funnel build (e.g. an older commit's) measured at every point too, "
                        "interleaved with this one against the same MariaDB, for a side-by-side comparison")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole sweep this many times; the report adds medians per point and build")
    a = p.parse_args(argv)
    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    work = workdir("funnel-cpq-")
    hw_ok, hw_note = (False, "--no-perf") if a.no_perf else perf_counters_work()
    events, ev_note = ([], "") if a.no_perf else usable_events(hw_ok)
    rows = []
    with Cleanup() as cleanup:
        cleanup.push(lambda: shutil.rmtree(work, ignore_errors=True))
        port = a.server_port
        if port is None:
            db = MariaDB.start(work / "db", "cpu-per-query", max_connections=500, buffer_pool="1G")
            cleanup.push(db.stop)
            db.prepare_sysbench(a.tables, a.table_size)
            port = db.port
        funnels = [("current", Funnel.start(work, Funnel.private_binary(work), port, a.cores, a.pool_per_core))]
        cleanup.push(funnels[0][1].stop)
        if a.baseline_binary:
            base_bin = work / "funnel-baseline-bin"
            shutil.copy2(a.baseline_binary, base_bin)
            funnels.append(("baseline", Funnel.start(work, base_bin, port, a.cores, a.pool_per_core,
                                                     name="funnel-baseline")))
            cleanup.push(funnels[1][1].stop)
        for _, funnel in funnels:
            run_sysbench(funnel.port, "oltp_point_select", 8, 5, a.tables, a.table_size, ps_mode=a.ps_mode)
        points = []
        i = 0
        for _ in range(a.rounds):
            for n in (int(x) for x in a.clients.split()):
                # Alternate which build goes first, so drift in the machine's load hits both alike.
                order = funnels if i % 2 == 0 else funnels[::-1]
                points += [(n, label, f) for label, f in order]
                i += 1
        for n, label, funnel in points:
            time.sleep(2)
            perf_out = work / f"perf-{n}.txt"
            c0 = CpuMark.take(funnel.pid)
            perf = perf_start(funnel.pid, events, perf_out)
            r = run_sysbench(funnel.port, "oltp_point_select", n, a.time, a.tables, a.table_size,
                             ps_mode=a.ps_mode)
            counts = perf_stop(perf, perf_out)
            c1 = CpuMark.take(funnel.pid)
            d = c1.since(c0)
            q = r.queries or 0
            row = {"clients": n, "binary": label, "ok": r.ok, "reason": r.reason, "qps": r.qps, "queries": q,
                   "errors": r.errors, "lat_avg_ms": r.lat_avg_ms, "lat_p95_ms": r.lat_p95_ms,
                   "funnel_cpu_s": round(d["cpu_ns"] / 1e9, 3), "funnel_cpu_ticks_s": d["cpu_s"],
                   "wall_s": d["wall_s"],
                   "funnel_cpu_util": round(d["cpu_ns"] / 1e9 / d["wall_s"], 3) if d["wall_s"] else None,
                   "us_per_query": round(d["cpu_ns"] / 1e3 / q, 2) if q else None,
                   "us_per_query_ticks": round(d["cpu_s"] * 1e6 / q, 2) if q else None}
            if q and counts:
                # perf's window starts a little before and ends a little after sysbench's.
                row["perf_raw"] = counts
                for key, field in (("instructions", "instructions_per_query"), ("cycles", "cycles_per_query"),
                                   ("context-switches", "ctx_switches_per_query"),
                                   ("raw_syscalls:sys_enter", "syscalls_per_query"),
                                   ("syscalls:sys_enter_io_uring_enter", "io_uring_enter_per_query")):
                    if counts.get(key) is not None:
                        row[field] = round(counts[key] / q, 3)
            rows.append(row)
            log(f"{n} clients ({label}): {row['qps']} qps, Funnel {row['us_per_query']} us CPU/query "
                f"({row['funnel_cpu_util']} CPUs)")
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
           "hardware_counters": hw_ok, "hardware_note": hw_note, "perf_events": events,
           "perf_note": ev_note, "rows": rows}
    write_report(out, a.name, res, markdown(res))
    return 0 if all(r["ok"] for r in rows) else 1


def markdown(res: dict) -> str:
    a = res["args"]
    lines = [f"# Funnel CPU per forwarded point_select ({res['started'][:10]}, {res['machine'].get('hostname')})",
             "",
             f"`bench/cpu_per_query.py --clients \"{a['clients']}\" --time {a['time']}`: sysbench "
             f"oltp_point_select --db-ps-mode={a['ps_mode']} through Funnel (cores {a['cores']}, pool "
             f"{a['pool_per_core']}/core), {res['machine'].get('cpus')} CPUs shared with sysbench and MariaDB. "
             "CPU = on-CPU time of all Funnel threads (schedstat) / queries completed.",
             ""]
    if not res["hardware_counters"]:
        lines += [f"Instructions/cycles: skipped ({res['hardware_note']}).", ""]
    if res["perf_note"]:
        lines += [f"perf: {res['perf_note']}.", ""]
    hw = res["hardware_counters"]
    head = "| clients | build | qps | avg ms | p95 ms | errors | Funnel CPUs busy | **us CPU/query** | us/query (ticks) |"
    sep = "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    if hw:
        head += " instr/query | cycles/query |"
        sep += "---:|---:|"
    head += " syscalls/query | io_uring_enter/query | ctx switches/query |"
    sep += "---:|---:|---:|"
    lines += [head, sep]
    f = lambda v, s=".2f": "—" if v is None else format(v, s)  # noqa: E731
    for r in res["rows"]:
        if not r["ok"] and r["qps"] is None:
            lines.append(f"| {r['clients']} | FAILED: {r['reason']} |")
            continue
        line = (f"| {r['clients']} | {r.get('binary', 'current')} | {f(r['qps'], '.0f')} | {f(r['lat_avg_ms'], '.3f')} | {f(r['lat_p95_ms'])} | "
                f"{r['errors']} | {f(r['funnel_cpu_util'])} | **{f(r['us_per_query'], '.1f')}** | "
                f"{f(r['us_per_query_ticks'], '.1f')} |")
        if hw:
            line += f" {f(r.get('instructions_per_query'), '.0f')} | {f(r.get('cycles_per_query'), '.0f')} |"
        line += (f" {f(r.get('syscalls_per_query'))} | {f(r.get('io_uring_enter_per_query'))} | "
                 f"{f(r.get('ctx_switches_per_query'))} |")
        lines.append(line)
    if a.get("baseline_binary"):
        lines += ["", f"`baseline` is `{a['baseline_binary']}`, measured in the same run, interleaved."]
    if a.get("rounds", 1) > 1:
        lines += ["", f"Medians over {a['rounds']} rounds:", "",
                  "| clients | build | qps | us CPU/query | io_uring_enter/query |", "|---:|---|---:|---:|---:|"]
        keys = sorted({(r["clients"], r.get("binary", "current")) for r in res["rows"]})
        for n, b in keys:
            rs = [r for r in res["rows"] if r["clients"] == n and r.get("binary", "current") == b]
            med = lambda k: statistics.median([r[k] for r in rs if r.get(k) is not None] or [float("nan")])  # noqa: E731
            lines.append(f"| {n} | {b} | {med('qps'):.0f} | **{med('us_per_query'):.1f}** | "
                         f"{med('io_uring_enter_per_query'):.2f} |")
    ok = [r for r in res["rows"] if r.get("us_per_query") is not None and r.get("binary", "current") == "current"]
    if a.get("rounds", 1) > 1:
        # Judge the targets on the medians, one line per client count.
        ok = [{"clients": n, "us_per_query": statistics.median(
                  [r["us_per_query"] for r in ok if r["clients"] == n])}
              for n in sorted({r["clients"] for r in ok})]
    base = [r["us_per_query"] for r in ok if 8 <= r["clients"] <= 64]
    lines += ["", "Targets: <= 8 us/query at 8-64 clients; at 4096 clients <= 1.5x that.", ""]
    if base:
        b = min(base)
        for r in ok:
            if 8 <= r["clients"] <= 64:
                lines.append(f"- {r['clients']} clients: {r['us_per_query']:.1f} us -> "
                             f"{'met' if r['us_per_query'] <= 8 else 'NOT met'}")
            if r["clients"] >= 4096:
                lines.append(f"- {r['clients']} clients: {r['us_per_query']:.1f} us = "
                             f"{r['us_per_query'] / b:.2f}x the 8-64 figure -> "
                             f"{'met' if r['us_per_query'] <= 1.5 * b else 'NOT met'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

#!/usr/bin/env python3
"""Where the queue forms when the box runs out of CPU: time spent runnable but
not running, per process, directly and through Funnel.

On a host where sysbench, MariaDB and Funnel share the CPUs, a run at
thousands of threads saturates them, and every runnable thread waits its turn
on a run queue. That wait is part of what sysbench reports as latency, but
Funnel's own histograms see only the part of it that falls between reading a
command and writing its last byte. This probe shows which process holds the
waiting: it reads every thread's /proc/PID/task/TID/schedstat (time on the
CPU, time runnable on a run queue, timeslices) of sysbench, mariadbd and
Funnel at two moments inside each run (after the ramp-up, and before the
end) and reports, over that window:

  waiting threads   run-queue time / window: how many of the process's
                    threads were runnable but not running, on average
  CPUs used         on-CPU time / window
  per-thread wait   the median and the largest run-queue time of one thread

Direct MariaDB (one-thread-per-connection) and Funnel (`cores`, `pool` as
given) run oltp_point_select back to back, in alternating order per round.

    python3 bench/cpu_queue.py [--threads "1024 4096"] [--time 20] [--rounds 2]

Writes <name>.json and <name>.md to --out (default bench/results/<date>-<host>/).
Servers are stopped by PID at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (Cleanup, Funnel, MariaDB, default_results_dir, log, machine_info,  # noqa: E402
                      raise_nofile, run_script, run_sysbench, thread_schedstats, workdir, write_report)

WORKLOAD = "oltp_point_select"


def schedstats_if_alive(pid: int) -> dict[str, tuple[int, int, int]]:
    """`thread_schedstats`, or nothing once the process has gone."""
    try:
        return thread_schedstats(pid)
    except FileNotFoundError:
        return {}


def window(before: dict, after: dict, seconds: float) -> dict:
    """What the threads present at both moments did in between."""
    waits = sorted(after[t][1] - before[t][1] for t in after if t in before)
    on_cpu = sum(after[t][0] - before[t][0] for t in after if t in before)
    return {"threads": len(waits),
            "waiting_threads": round(sum(waits) / 1e9 / seconds, 2),
            "cpus_used": round(on_cpu / 1e9 / seconds, 3),
            "thread_wait_p50_s": round(waits[len(waits) // 2] / 1e9, 3) if waits else 0.0,
            "thread_wait_max_s": round(waits[-1] / 1e9, 3) if waits else 0.0}


def newest_sysbench(deadline: float) -> int | None:
    """The pid of the sysbench run just started (the newest process named sysbench)."""
    while time.monotonic() < deadline:
        newest = None
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/comm") as f:
                        if f.read().strip() == "sysbench" and (newest is None or int(d) > newest):
                            newest = int(d)
                except OSError:
                    pass
        if newest:
            return newest
        time.sleep(0.05)
    return None


def sample_during(pids: dict[str, int], start: float, stop: float, into: dict) -> None:
    """Reads the schedstats at `start` and `stop` seconds into a run."""
    t0 = time.monotonic()
    sb = newest_sysbench(t0 + start)
    time.sleep(max(0.0, start - (time.monotonic() - t0)))
    procs = dict(pids, **({"sysbench": sb} if sb else {}))
    before = {k: schedstats_if_alive(p) for k, p in procs.items()}
    w0 = time.monotonic()
    time.sleep(max(0.0, stop - (time.monotonic() - t0)))
    after = {k: schedstats_if_alive(p) for k, p in procs.items()}
    seconds = time.monotonic() - w0
    into["window_s"] = round(seconds, 2)
    for k in procs:
        into[k] = window(before[k], after[k], seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1024 4096")
    p.add_argument("--time", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--pool-per-core", type=int, default=32)
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=100000)
    p.add_argument("--out", default=None)
    p.add_argument("--name", default="cpu_queue")
    a = p.parse_args(argv)
    if a.time < 10:
        p.error("--time must be at least 10 s (the window skips the first 5 s and the last 2 s)")
    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    work = workdir("funnel-cpu-queue-")
    rows: list[dict] = []
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
           "rows": rows}
    with Cleanup() as cleanup:
        cleanup.push(lambda: shutil.rmtree(work, ignore_errors=True))
        db = MariaDB.start(work / "db", "cpu-queue", max_connections=5000)
        cleanup.push(db.stop)
        db.prepare_sysbench(a.tables, a.table_size)
        fdir = work / "funnel"
        fdir.mkdir()
        funnel = Funnel.start(work, Funnel.private_binary(fdir), db.port, a.cores, a.pool_per_core)
        cleanup.push(funnel.stop)
        for port in (db.port, funnel.port):  # warm caches and the pool alike
            run_sysbench(port, WORKLOAD, 8, 3, a.tables, a.table_size)
        for rnd in range(a.rounds):
            for n in [int(x) for x in a.threads.split()]:
                for target in (["direct", "funnel"] if rnd % 2 == 0 else ["funnel", "direct"]):
                    time.sleep(2)
                    pids = {"mariadbd": db.pid} | ({"funnel": funnel.pid} if target == "funnel" else {})
                    sampled: dict = {}
                    sampler = threading.Thread(target=sample_during, args=(pids, 5.0, a.time - 2.0, sampled))
                    sampler.start()
                    r = run_sysbench(db.port if target == "direct" else funnel.port, WORKLOAD, n, a.time,
                                     a.tables, a.table_size)
                    sampler.join()
                    row = {"round": rnd, "threads": n, "target": target, "ok": r.ok, "tps": r.tps,
                           "errors": r.errors, "lat_avg_ms": r.lat_avg_ms, "lat_p95_ms": r.lat_p95_ms,
                           "lat_p99_ms": r.lat_p99_ms, "lat_max_ms": r.lat_max_ms, **sampled}
                    rows.append(row)
                    log(f"round {rnd} {n} threads {target}: {r.tps} tps, " + ", ".join(
                        f"{k} {sampled[k]['waiting_threads']} waiting" for k in ("sysbench", "mariadbd", "funnel")
                        if k in sampled))
    write_report(out, a.name, res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    a, m = res["args"], res["machine"]
    lines = [f"# Where the CPU queue forms: runnable-but-waiting time per process ({res['started'][:10]}, "
             f"{m.get('hostname')})", "",
             f"`bench/cpu_queue.py`: sysbench {WORKLOAD} --db-ps-mode=disable, {a['time']} s per run, "
             f"{a['rounds']} rounds, direct MariaDB and Funnel (cores {a['cores']}, pool {a['pool_per_core']}/core) "
             f"back to back; {m.get('cpus')} CPUs shared by all three. Window: from 5 s into each run to 2 s "
             "before its end. *waiting* = run-queue time of all the process's threads / window (the average "
             "number of its threads runnable but not running); *CPUs* = on-CPU time / window; *p50/max* = "
             "run-queue time of the median and of the most delayed thread in the window.", "",
             "| threads | target | tps | avg / p95 / p99 / max ms | sysbench waiting, CPUs, p50/max s | "
             "mariadbd waiting, CPUs, p50/max s | Funnel waiting, CPUs |", "|---:|---|---:|---|---|---|---|"]

    def cell(row: dict, k: str, full: bool = True) -> str:
        x = row.get(k)
        if not x:
            return "—"
        s = f"{x['waiting_threads']}, {x['cpus_used']:.2f}"
        return s + (f", {x['thread_wait_p50_s']:.2f}/{x['thread_wait_max_s']:.2f}" if full else "")

    for row in sorted(res["rows"], key=lambda r: (r["threads"], r["target"], r["round"])):
        lat = "/".join(f"{row[k]:.0f}" if row.get(k) is not None else "—"
                       for k in ("lat_avg_ms", "lat_p95_ms", "lat_p99_ms", "lat_max_ms"))
        lines.append(f"| {row['threads']} | {row['target']} | {row['tps']:.0f} | {lat} | {cell(row, 'sysbench')} "
                     f"| {cell(row, 'mariadbd')} | {cell(row, 'funnel', full=False)} |")
    lines += ["", "Medians over the rounds:", "",
              "| threads | target | tps | sysbench waiting | mariadbd waiting | Funnel waiting |",
              "|---:|---|---:|---:|---:|---:|"]
    keys = sorted({(r["threads"], r["target"]) for r in res["rows"]})
    for n, t in keys:
        rs = [r for r in res["rows"] if (r["threads"], r["target"]) == (n, t)]

        def med(k: str) -> str:
            v = [r[k]["waiting_threads"] for r in rs if r.get(k)]
            return f"{statistics.median(v):.1f}" if v else "—"
        lines.append(f"| {n} | {t} | {statistics.median(r['tps'] for r in rs):.0f} | {med('sysbench')} | "
                     f"{med('mariadbd')} | {med('funnel')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

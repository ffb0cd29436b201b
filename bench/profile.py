#!/usr/bin/env python3
"""A CPU profile of Funnel's hot path under sysbench oltp_point_select.

Starts a throwaway MariaDB and Funnel (default cores 1, pool 8), and for
each client count (default 8 and 256) runs sysbench oltp_point_select
(--db-ps-mode=disable) for --time seconds while `perf record` samples the
funnel process (cpu-clock, a software event, so it works in VMs without
hardware counters; DWARF call graphs because release builds have no frame
pointers). Writes for each count:

  profile-<n>-self.txt      perf report --no-children: functions by self time
  profile-<n>-children.txt  perf report --children: inclusive time (call tree roots)
  profile-<n>-dso.txt       time by binary/library/kernel
  profile-<n>-kernel.txt    kernel symbols only (syscalls, TCP, io_uring)

and, from a second run of the same length, the syscalls per query by name
(perf stat on syscalls:sys_enter_* tracepoints) in profile-summary.json.

Then (--idle-clients, default 10000) the same for an idle Funnel: CPU per
second, syscalls per second and a profile, without clients and with that
many logged-in clients that send nothing (profile-idle-*.txt).

Also a direct-vs-Funnel single-client latency comparison (sysbench
--threads=1, avg latency = latency sum / events) in profile-latency.md.
Without perf: run `valgrind --tool=callgrind` on the binary instead, with
sysbench --events=20000 --time=0 (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    Cleanup, CpuMark, Funnel, MariaDB, default_results_dir, log, machine_info, raise_nofile, run_sysbench,
    workdir, run_script,
)


def perf_record(pid: int, seconds: float, data: Path, callgraph: str, freq: int) -> None:
    cmd = ["perf", "record", "-e", "cpu-clock", "-F", str(freq), "-o", str(data), "-p", str(pid)]
    if callgraph == "dwarf":
        cmd += ["--call-graph", "dwarf,16384"]
    elif callgraph == "fp":
        cmd += ["-g"]
    cmd += ["--", "sleep", str(seconds)]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


SYSCALLS = ("sendto recvfrom io_uring_enter membarrier epoll_wait epoll_pwait futex read write readv writev "
            "sendmsg recvmsg nanosleep clock_nanosleep timerfd_settime mmap munmap brk madvise mprotect close "
            "accept4 setsockopt getsockopt connect socket sched_yield getrandom eventfd2 poll ppoll").split()


def syscall_counts(pid: int, seconds: float) -> dict[str, int]:
    """Syscalls of the process over `seconds`, by name (perf stat on the
    syscalls:sys_enter_* tracepoints of the usual suspects, plus the total
    as "ALL"); only the non-zero ones. Listing them all would take perf
    ~10 s just to set up."""
    events = ",".join(f"syscalls:sys_enter_{c}" for c in SYSCALLS) + ",raw_syscalls:sys_enter"
    p = subprocess.run(["perf", "stat", "-x,", "-e", events, "-p", str(pid), "--", "sleep", str(seconds)],
                       capture_output=True, text=True)
    out = {}
    for line in p.stderr.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and "sys_enter" in parts[2]:
            try:
                n = int(float(parts[0]))
            except ValueError:
                continue
            if n:
                name = "ALL" if parts[2] == "raw_syscalls:sys_enter" else parts[2].split("sys_enter_")[1]
                out[name] = n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def sysbench_bg(port: int, threads: int, seconds: int, a) -> subprocess.Popen:
    return subprocess.Popen(
        ["sysbench", "oltp_point_select", "--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
         "--mysql-user=sbtest", "--mysql-password=sbtest", "--mysql-db=sbtest", f"--tables={a.tables}",
         f"--table-size={a.table_size}", f"--threads={threads}", f"--time={seconds}", "--db-ps-mode=disable",
         "--report-interval=0", "run"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sysbench_qps(proc: subprocess.Popen) -> float | None:
    text, _ = proc.communicate()
    for line in text.splitlines():
        if line.strip().startswith("queries:") and "per sec" in line:
            return float(line.split("(")[1].split()[0])
    return None


def perf_report(data: Path, extra: list[str], path: Path) -> str:
    cmd = ["perf", "report", "-i", str(data), "--stdio", "--percent-limit", "0.5", *extra]
    text = subprocess.run(cmd, capture_output=True, text=True).stdout
    text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"  # perf pads every column
    path.write_text(text)
    return text


def idle_phase(a, funnel: Funnel, work: Path, out: Path) -> dict:
    """What an idle Funnel does: syscalls per second and a profile, with no
    clients and with `--idle-clients` logged-in clients that send nothing."""
    import multiprocessing as mp

    from idle_rss import worker

    res = {}
    time.sleep(3)
    for label, n in (("no-clients", 0), (f"{a.idle_clients}-idle-clients", a.idle_clients)):
        pipes, procs = [], []
        if n:
            ctx = mp.get_context("fork")
            for i in range(4):
                mine, theirs = ctx.Pipe()
                pr = ctx.Process(target=worker, args=(funnel.port, n // 4, theirs), daemon=True)
                pr.start()
                pipes.append(mine)
                procs.append(pr)
            for pp in pipes:
                pp.recv()
            time.sleep(3)
        c0 = CpuMark.take(funnel.pid)
        calls = syscall_counts(funnel.pid, 10)
        c1 = CpuMark.take(funnel.pid)
        data = work / f"perf-idle-{n}.data"
        perf_record(funnel.pid, 10, data, a.callgraph, a.freq)
        g = ["-g", "none"] if a.callgraph != "none" else []
        perf_report(data, ["--no-children", "--sort", "symbol", *g], out / f"profile-idle-{label}-self.txt")
        if a.callgraph != "none":
            perf_report(data, ["--children", "--sort", "symbol", "-g", "none"],
                        out / f"profile-idle-{label}-children.txt")
        d = c1.since(c0)
        res[label] = {"cpu_ms_per_s": round(d["cpu_ns"] / 1e6 / d["wall_s"], 3),
                      "syscalls_per_s": {k: round(v / d["wall_s"], 1) for k, v in calls.items()}}
        log(f"idle, {label}: {res[label]['cpu_ms_per_s']} ms CPU/s; syscalls/s {res[label]['syscalls_per_s']}")
        for pp in pipes:
            pp.send("close")
            pp.recv()
        for pr in procs:
            pr.join(timeout=30)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="8 256")
    p.add_argument("--time", type=int, default=20)
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--pool-per-core", type=int, default=8)
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=100000)
    p.add_argument("--callgraph", choices=["dwarf", "fp", "none"], default="dwarf")
    p.add_argument("--freq", type=int, default=999, help="perf samples per second")
    p.add_argument("--latency-time", type=int, default=20, help="seconds of each single-client latency run")
    p.add_argument("--out", default=None, help="directory for the reports (default bench/results/<date>-<host>)")
    p.add_argument("--keep-data", action="store_true", help="keep perf.data files next to the reports")
    p.add_argument("--idle-clients", type=int, default=10000,
                   help="also profile Funnel idle, without and with this many idle clients (0: skip)")
    a = p.parse_args(argv)
    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not shutil.which("perf"):
        sys.exit("perf is missing (apt-get install linux-perf); see bench/README.md for the callgrind way")
    work = workdir("funnel-profile-")
    summary: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
                     "runs": []}
    with Cleanup() as cleanup:
        cleanup.push(lambda: shutil.rmtree(work, ignore_errors=True))
        db = MariaDB.start(work / "db", "profile", max_connections=1000, buffer_pool="1G")
        cleanup.push(db.stop)
        db.prepare_sysbench(a.tables, a.table_size)
        funnel = Funnel.start(work, Funnel.private_binary(work), db.port, a.cores, a.pool_per_core)
        cleanup.push(funnel.stop)
        sb = dict(tables=a.tables, table_size=a.table_size, ps_mode="disable")
        run_sysbench(funnel.port, "oltp_point_select", 8, 5, **sb)

        # Single-client latency, direct and through Funnel, twice each, interleaved.
        lat = []
        for rnd in range(2):
            for target, port in (("direct", db.port), ("funnel", funnel.port)):
                r = run_sysbench(port, "oltp_point_select", 1, a.latency_time, **sb)
                lat.append({"round": rnd, "target": target, "tps": r.tps, "avg_ms": r.lat_avg_ms,
                            "p95_ms": r.lat_p95_ms, "p99_ms": r.lat_p99_ms, "min_ms": r.lat_min_ms})
                log(f"1 client {target}: avg {r.lat_avg_ms} ms, p95 {r.lat_p95_ms} ms")
        summary["latency"] = lat

        for n in [int(x) for x in a.clients.split()]:
            data = work / f"perf-{n}.data"
            # Run 1: perf record over the steady middle of a sysbench run.
            proc = sysbench_bg(funnel.port, n, a.time, a)
            time.sleep(3)  # connections established, steady state
            c0 = CpuMark.take(funnel.pid)
            log(f"perf record, {n} clients, {a.time - 6} s")
            perf_record(funnel.pid, a.time - 6, data, a.callgraph, a.freq)
            c1 = CpuMark.take(funnel.pid)
            qps = sysbench_qps(proc)
            # Run 2: syscalls by name over the same kind of window (counting
            # tracepoints costs a little, so not during the profile).
            proc = sysbench_bg(funnel.port, n, a.time, a)
            time.sleep(3)
            calls = syscall_counts(funnel.pid, a.time - 6)
            qps2 = sysbench_qps(proc)
            d = c1.since(c0)
            run = {"clients": n, "qps": qps, "funnel_cpu_util": round(d["cpu_ns"] / 1e9 / d["wall_s"], 3),
                   "us_per_query": round(d["cpu_ns"] / 1e3 / (qps * d["wall_s"]), 2) if qps else None,
                   "qps_syscall_run": qps2,
                   "syscalls_per_query": ({k: round(v / (qps2 * (a.time - 6)), 3) for k, v in calls.items()}
                                          if qps2 else calls)}
            summary["runs"].append(run)
            log(f"{n} clients: {qps} qps, Funnel {run['funnel_cpu_util']} CPUs, ~{run['us_per_query']} us/query")
            g = ["-g", "none"] if a.callgraph != "none" else []
            perf_report(data, ["--no-children", "--sort", "symbol", *g], out / f"profile-{n}-self.txt")
            if a.callgraph != "none":
                perf_report(data, ["--children", "--sort", "symbol", "-g", "none"], out / f"profile-{n}-children.txt")
            perf_report(data, ["--no-children", "--sort", "dso", *g], out / f"profile-{n}-dso.txt")
            perf_report(data, ["--no-children", "--sort", "symbol", "--dsos", "[kernel.kallsyms]", *g],
                        out / f"profile-{n}-kernel.txt")
            if a.keep_data:
                shutil.copy2(data, out / data.name)
        if a.idle_clients:
            summary["idle"] = idle_phase(a, funnel, work, out)
    (out / "profile-summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = ["| round | target | tps | avg ms | p95 ms | p99 ms | min ms |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in summary["latency"]:
        rows.append(f"| {r['round']} | {r['target']} | {r['tps']} | {r['avg_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
                    f"{r['min_ms']} |")
    direct = [r["avg_ms"] for r in summary["latency"] if r["target"] == "direct" and r["avg_ms"]]
    fun = [r["avg_ms"] for r in summary["latency"] if r["target"] == "funnel" and r["avg_ms"]]
    extra = ""
    if direct and fun:
        dm, fm = sum(direct) / len(direct), sum(fun) / len(fun)
        extra = (f"\nMean avg latency: direct {dm * 1000:.1f} us, through Funnel {fm * 1000:.1f} us: "
                 f"Funnel adds {(fm - dm) * 1000:.1f} us per query ({fm / dm:.2f}x).\n")
    (out / "profile-latency.md").write_text(
        f"# Single-client latency, oltp_point_select --threads=1 --db-ps-mode=disable ({summary['started'][:10]})\n\n"
        f"Funnel cores {a.cores}, pool {a.pool_per_core}; {a.latency_time} s per run, direct and Funnel "
        "interleaved, two rounds. avg = sysbench latency sum / events.\n\n" + "\n".join(rows) + "\n" + extra)
    print((out / "profile-latency.md").read_text())
    print(json.dumps(summary["runs"], indent=1))
    return 0


if __name__ == "__main__":
    run_script(main)

#!/usr/bin/env python3
"""End-to-end sysbench sweep: MariaDB direct vs pool-of-threads vs Funnel in front of each.

One run on one machine:
  * starts two throwaway MariaDB servers (bench/mariadb.sh -> bench/lib.sh):
      direct  one-thread-per-connection (MariaDB's default),
      pool    --thread-handling=pool-of-threads;
    both with max_connections raised (default 5000) so 4096 direct clients
    can connect; everything else at MariaDB's defaults;
  * prepares the same sysbench tables on both;
  * starts Funnel (a private copy of target/release/funnel) in front of the
    direct server (target `funnel`) and another in front of the
    pool-of-threads server (target `fpool`), each with its own backend
    account `funnel` so its backend connections are counted apart from
    direct sysbench clients;
  * for each workload and thread count, runs sysbench against the
    targets back to back, rotating the order from point to point so noise
    (the other tenants of the box) hits all targets alike;
  * records per point: tps, qps, latency avg/p95/p99, errors, reconnects,
    the target server's peak client connections during the run, CPU time of
    Funnel and of the serving mariadbd, Funnel's peak RSS;
  * writes <name>.json, <name>.csv, <name>.md (ratios) and <name>.png into
    bench/results/<date>-<host>/ after every point (a stopped run keeps what
    it measured);
  * optionally (--extras, on by default for full runs) runs bench/idle_rss.py
    and bench/cpu_per_query.py against the direct server.

Servers and Funnel are stopped by PID at the end, on errors and on Ctrl-C.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    BENCH_DIR, Cleanup, CpuMark, Funnel, MariaDB, PeakSampler, RssSampler, default_results_dir, log,
    machine_info, pid_alive, proc_status_kib, raise_nofile, run_sysbench, unique_stem, workdir,
)

TARGETS = ("direct", "pool", "funnel", "fpool")
LABELS = {
    "direct": "MariaDB direct (one-thread-per-connection)",
    "pool": "MariaDB pool-of-threads",
    "funnel": "Funnel -> MariaDB (one-thread-per-connection)",
    "fpool": "Funnel -> MariaDB (pool-of-threads)",
}
# Each Funnel target and the server it fronts.
FUNNEL_SERVER = {"funnel": "direct", "fpool": "pool"}
FUNNEL_BACKEND_USER = "funnel"

CSV_FIELDS = [
    "workload", "threads", "target", "order", "ok", "reason", "tps", "qps", "transactions", "queries",
    "errors", "reconnects", "lat_avg_ms", "lat_p95_ms", "lat_p99_ms", "lat_p95_reported_ms", "lat_max_ms",
    "server_conns_peak", "server_conns_after", "funnel_backend_conns_peak", "funnel_cpu_s",
    "funnel_cpu_us_per_query", "funnel_rss_peak_kib", "funnel_vmhwm_kib", "mariadbd_cpu_s",
    "sysbench_cpu_s", "total_time_s", "wall_s", "started_at",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1 8 64 256 1024 2048 4096", help="sysbench thread counts")
    p.add_argument("--workloads", default="oltp_point_select oltp_read_only oltp_read_write")
    p.add_argument("--time", type=int, default=30, help="seconds per point")
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=100000)
    p.add_argument("--cores", type=int, default=2, help="Funnel cores (shards)")
    p.add_argument("--pool-per-core", type=int, default=16,
                   help="Funnel pool.max_per_core (2 cores x 16 = 32 backend connections)")
    p.add_argument("--min-idle-per-core", type=int, default=None,
                   help="Funnel pool.min_idle_per_core (default: = pool-per-core, a warm pool)")
    p.add_argument("--ps-mode", choices=["disable", "auto"], default="disable",
                   help="sysbench --db-ps-mode (default disable: plain COM_QUERY)")
    p.add_argument("--targets", default="direct pool funnel fpool",
                   help="subset of: direct pool funnel fpool (fpool = Funnel in front of the pool server)")
    p.add_argument("--max-connections", type=int, default=5000, help="MariaDB max_connections")
    p.add_argument("--buffer-pool", default=None, help="innodb_buffer_pool_size (default: RAM/16, 256M..2G)")
    p.add_argument("--pause", type=float, default=2.0, help="seconds of rest between points")
    p.add_argument("--quick", action="store_true", help="smoke test: threads 1 64 1024, time 10, point_select")
    p.add_argument("--out", default=None, help="results directory (default bench/results/<date>-<host>)")
    p.add_argument("--name", default=None, help="file name stem (default sweep, or sweep-quick)")
    extras = p.add_mutually_exclusive_group()
    extras.add_argument("--extras", dest="extras", action="store_true", default=None,
                        help="also run idle_rss.py and cpu_per_query.py (default for full runs)")
    extras.add_argument("--no-extras", dest="extras", action="store_false")
    p.add_argument("--funnel-bin", default=None,
                   help="Funnel binary to test (default $FUNNEL_BIN or target/release/funnel)")
    p.add_argument("--label", default="", help="free text for the report header (e.g. which build)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--replot", metavar="JSON", default=None,
                   help="only rewrite the .md, .csv and .png of an earlier run from its .json, and exit")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the scratch directory (server data, logs, per-point sysbench output)")
    a = p.parse_args(argv)
    if a.quick:
        a.threads, a.time, a.workloads = "1 64 1024", 10, "oltp_point_select"
        if a.extras is None:
            a.extras = False
    if a.extras is None:
        a.extras = True
    a.threads = [int(t) for t in a.threads.split()]
    a.workloads = a.workloads.split()
    a.targets = [t for t in TARGETS if t in a.targets.split()]
    if not a.targets:
        p.error("--targets names none of: direct pool funnel fpool")
    if a.buffer_pool is None:
        mem_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
        a.buffer_pool = f"{max(256, min(2048, mem_mib // 16))}M"
    return a


def results_dir(a) -> Path:
    if not a.out:
        return default_results_dir()
    d = Path(a.out)
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------- one point


def wait_settled(server: MariaDB, user: str, limit: float = 60.0) -> None:
    """Waits until the server has no connections of `user` (the last run's
    clients are gone), so teardown does not overlap the next point."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            c = server.root(timeout=5)
            n = int(c.scalar(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER='{user}'"))
            c.close()
            if n == 0:
                return
        except Exception:
            pass
        time.sleep(0.5)


def conn_count(server: MariaDB, user: str):
    def fn():
        c = server.root(timeout=5)
        try:
            return c.scalar(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER='{user}'")
        finally:
            c.close()
    return fn


def run_point(a, work: Path, workload: str, threads: int, target: str, order: int, servers: dict,
              funnels: dict[str, Funnel]) -> dict:
    server = servers[FUNNEL_SERVER.get(target, target)]
    funnel = funnels.get(target)
    port = funnel.port if funnel else server.port
    user = FUNNEL_BACKEND_USER if funnel else "sbtest"
    if not funnel:
        wait_settled(server, "sbtest")
    time.sleep(a.pause)
    row: dict = {"workload": workload, "threads": threads, "target": target, "order": order,
                 "started_at": dt.datetime.now().isoformat(timespec="seconds")}
    db0 = CpuMark.take(server.pid)
    f0 = CpuMark.take(funnel.pid) if funnel else None
    rss = RssSampler(funnel.pid) if funnel else None
    sampler = PeakSampler(conn_count(server, user), every=2.0, first_after=min(5.0, a.time / 3))
    logp = work / "sysbench" / f"{workload}-{threads}-{target}.log"
    logp.parent.mkdir(exist_ok=True)
    if rss:
        rss.__enter__()
    try:
        with sampler:
            r = run_sysbench(port, workload, threads, a.time, a.tables, a.table_size, ps_mode=a.ps_mode,
                             log_path=logp)
    finally:
        if rss:
            rss.__exit__(None, None, None)
    server_died = not pid_alive(server.pid)
    db1 = None if server_died else CpuMark.take(server.pid)
    row.update({
        "ok": r.ok, "reason": r.reason, "tps": r.tps, "qps": r.qps, "transactions": r.transactions,
        "queries": r.queries, "errors": r.errors, "reconnects": r.reconnects, "lat_avg_ms": r.lat_avg_ms,
        "lat_p95_ms": r.lat_p95_ms, "lat_p99_ms": r.lat_p99_ms, "lat_p95_reported_ms": r.lat_p95_reported_ms,
        "lat_max_ms": r.lat_max_ms, "total_time_s": r.total_time_s, "wall_s": r.wall_s,
        "sysbench_cpu_s": r.sysbench_cpu_s, "server_conns_peak": sampler.peak,
        "mariadbd_cpu_s": None if server_died else db1.since(db0)["cpu_s"],
    })
    if server_died:
        row["ok"] = False
        row["reason"] = f"MariaDB '{server.label}' (pid {server.pid}) died during the run; " + (r.reason or "")
        row["server_died"] = server.label
    try:
        row["server_conns_after"] = None if server_died else int(conn_count(server, user)())
    except Exception:
        row["server_conns_after"] = None
    if funnel:
        f1 = CpuMark.take(funnel.pid)
        d = f1.since(f0)
        row["funnel_cpu_s"] = round(d["cpu_ns"] / 1e9, 3)
        row["funnel_cpu_us_per_query"] = (round(d["cpu_ns"] / 1e3 / r.queries, 2) if r.queries else None)
        row["funnel_rss_peak_kib"] = rss.max_bytes // 1024
        row["funnel_vmhwm_kib"] = proc_status_kib(funnel.pid, "VmHWM")
        row["funnel_backend_conns_peak"] = sampler.peak
        if funnel.proc.poll() is not None:
            row["ok"] = False
            row["reason"] = f"Funnel exited (rc {funnel.proc.returncode}) during the run"
            row["funnel_log_tail"] = (funnel.dir / "funnel.log").read_text()[-4000:]
    if not r.ok:
        row["output_tail"] = r.output_tail
    return row


# ---------------------------------------------------------------- outputs


def fmt(v, spec=".0f"):
    return "—" if v is None else format(v, spec)


def ratio(x, y):
    return x / y if (x is not None and y) else None


def index(points: list[dict]) -> dict:
    return {(p["workload"], p["threads"], p["target"]): p for p in points}


def write_outputs(out: Path, name: str, meta: dict, points: list[dict], plot: bool) -> None:
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "points": points}, indent=1) + "\n")
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for p in points:
            w.writerow(p)
    (out / f"{name}.md").write_text(markdown(meta, points))
    if plot:
        try:
            plot_png(out / f"{name}.png", meta, points)
        except Exception as e:  # a missing matplotlib must not lose the data
            print(f"plot skipped: {e}", file=sys.stderr)


def tps_cell(p):
    if p is None:
        return "—"
    if not p.get("ok"):
        return "FAILED" if p.get("tps") is None else f"{p['tps']:.0f}*"
    return f"{p['tps']:.0f}"


def markdown(meta: dict, points: list[dict]) -> str:
    a = meta["args"]
    ix = index(points)
    lines = [
        f"# Funnel sweep {meta['started'][:10]} on {meta['machine'].get('hostname')}",
        "",
        f"{meta['machine'].get('cpus')} CPUs ({meta['machine'].get('cpu_model', '?')}), "
        f"{meta['machine'].get('mem_kib', 0) // (1 << 20)} GiB; {meta['machine'].get('mariadb', '')}; "
        f"{meta['machine'].get('sysbench', '')}; Funnel {meta['machine'].get('funnel_commit', '?')}"
        f"{' (crates/ modified)' if meta['machine'].get('funnel_crates_dirty') else ''} working tree; binary "
        f"`{meta.get('funnel_binary', {}).get('source', '?')}` built {meta.get('funnel_binary', {}).get('built', '?')}"
        f"{'; ' + a['label'] if a.get('label') else ''}.",
        f"sysbench, MariaDB and Funnel share the machine. {a['time']} s per point, "
        f"{a['tables']} tables x {a['table_size']} rows, --db-ps-mode={a['ps_mode']}; "
        f"Funnel cores {a['cores']}, pool {a['pool_per_core']}/core "
        f"({a['cores'] * a['pool_per_core']} backend connections); targets run back to back per point "
        "in rotating order.",
        "",
        *([f"**Notes:** {meta['notes']}", ""] if meta.get("notes") else []),
        "Targets: **direct** = MariaDB one-thread-per-connection; **pool** = MariaDB "
        "`--thread-handling=pool-of-threads`; **funnel** (F) = Funnel in front of the direct server"
        + ("; **fpool** (FP) = Funnel in front of the pool-of-threads server." if "fpool" in a["targets"] else "."),
        "Latency: avg = sysbench latency sum / events; p95 and p99 from sysbench's latency histogram "
        "(--histogram=on, the same bucket rule as its `95th percentile` line). `*` = run reported an error, "
        "FAILED = no result (reason below). conns = peak client connections the server saw during the run "
        "(for Funnel: its backend connections). F CPU = Funnel CPU time per query (us).",
        "",
    ]
    failures = []
    # Funnel targets of this run (older runs' JSON has `funnel` only).
    fts = [t for t in FUNNEL_SERVER if t in a["targets"]]
    short = {"funnel": "F", "fpool": "FP"}
    for wl in a["workloads"]:
        head = (["threads", "direct tps", "pool tps"] + [f"{t} tps" for t in fts]
                + [f"**{short[t]}/{b}**" for t in fts for b in ("direct", "pool")]
                + ["direct p95 ms", "pool p95 ms"] + [f"{t} p95 ms" for t in fts]
                + [f"**p95 {short[t]}/{b}**" for t in fts for b in ("direct", "pool")]
                + [f"{t} p99 ms" for t in fts]
                + ["errors " + "/".join(["d", "p"] + [short[t].lower() for t in fts]),
                   "conns " + "/".join(["d", "p"] + [short[t].lower() for t in fts])]
                + [f"{short[t]} CPU us/q" for t in fts] + [f"{short[t]} RSS MiB" for t in fts])
        lines += [f"## {wl}", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join("---" if h.startswith(("errors", "conns")) else "---:" for h in head) + "|"]
        for t in a["threads"]:
            d, pl = ix.get((wl, t, "direct")), ix.get((wl, t, "pool"))
            fs = [ix.get((wl, t, k)) for k in fts]
            g = lambda p, k: (p or {}).get(k) if (p or {}).get("ok") else None  # noqa: E731
            every = [d, pl, *fs]
            errs = "/".join("—" if p is None else str(p.get("errors") if p.get("errors") is not None else "?")
                            for p in every)
            conns = "/".join("—" if p is None or p.get("server_conns_peak") is None
                             else str(p["server_conns_peak"]) for p in every)
            cells = [str(t), tps_cell(d), tps_cell(pl)] + [tps_cell(f) for f in fs]
            cells += [fmt(ratio(g(f, "tps"), g(b, "tps")), ".2f") + "x" for f in fs for b in (d, pl)]
            cells += [fmt(g(p, "lat_p95_ms"), ".2f") for p in every]
            cells += [fmt(ratio(g(f, "lat_p95_ms"), g(b, "lat_p95_ms")), ".2f") + "x" for f in fs for b in (d, pl)]
            cells += [fmt(g(f, "lat_p99_ms"), ".2f") for f in fs] + [errs, conns]
            cells += [fmt((f or {}).get("funnel_cpu_us_per_query"), ".1f") for f in fs]
            for f in fs:
                rss = (f or {}).get("funnel_rss_peak_kib")
                cells.append(fmt(rss / 1024 if rss else None, ".1f"))
            lines.append("| " + " | ".join(cells) + " |")
            for p in every:
                if p is not None and not p.get("ok"):
                    failures.append(f"- {wl} {t} threads, {p['target']}: {p.get('reason')}")
        lines.append("")
    lines += targets_check(a, ix)
    if failures:
        lines += ["## Failed points", ""] + failures + [""]
    return "\n".join(lines) + "\n"


def targets_check(a: dict, ix: dict) -> list[str]:
    wl = "oltp_point_select"
    if wl not in a["workloads"]:
        return []
    out = ["## Issue targets (oltp_point_select)", "",
           "| threads | Funnel | target | measured | met |", "|---:|---|---|---|---|"]

    def ok(p):
        return p is not None and p.get("ok")

    for ft in [t for t in FUNNEL_SERVER if t in a["targets"]]:
        for t in a["threads"]:
            d, pl, f = (ix.get((wl, t, k)) for k in ("direct", "pool", ft))
            row = f"| {t} | {ft} |"
            if not ok(f):
                out.append(f"{row} run | {(f or {}).get('reason', 'not run')} | no |")
                continue
            if t <= 64 and ok(d):
                r = f["tps"] / d["tps"]
                out.append(f"{row} tps >= 0.8x direct | {r:.2f}x | {'yes' if r >= 0.8 else 'NO'} |")
            if t >= 1024:
                if ok(d):
                    r = f["tps"] / d["tps"]
                    out.append(f"{row} tps >= 1.3x direct | {r:.2f}x | {'yes' if r >= 1.3 else 'NO'} |")
                    q = f["lat_p95_ms"] / d["lat_p95_ms"]
                    out.append(f"{row} p95 <= direct | {f['lat_p95_ms']:.2f} vs {d['lat_p95_ms']:.2f} ms "
                               f"({q:.2f}x) | {'yes' if q <= 1.0 else 'NO'} |")
                if ok(pl):
                    r = f["tps"] / pl["tps"]
                    out.append(f"{row} tps >= pool-of-threads | {r:.2f}x | {'yes' if r >= 1.0 else 'NO'} |")
            if t >= 4096:
                e = (f.get("errors") or 0) + (f.get("reconnects") or 0)
                out.append(f"{row} zero errors through {a['cores'] * a['pool_per_core']} backend conns | "
                           f"{f.get('errors')} errors, {f.get('reconnects')} reconnects, backend conns peak "
                           f"{f.get('funnel_backend_conns_peak')} | {'yes' if e == 0 else 'NO'} |")
            c = f.get("funnel_cpu_us_per_query")
            if c is not None and (8 <= t <= 64):
                out.append(f"{row} Funnel CPU <= 8 us/query | {c:.1f} us | {'yes' if c <= 8 else 'NO'} |")
            if c is not None and t >= 4096:
                base = [ix[(wl, x, ft)].get('funnel_cpu_us_per_query') for x in a["threads"]
                        if 8 <= x <= 64 and ok(ix.get((wl, x, ft)))]
                if base:
                    lim = 1.5 * min(base)
                    out.append(f"{row} Funnel CPU <= 1.5x the 8-64 figure ({lim:.1f} us) | {c:.1f} us | "
                               f"{'yes' if c <= lim else 'NO'} |")
    out.append("")
    out.append("CPU per query here is Funnel's on-CPU time (all threads, /proc schedstat) over the whole run / "
               "queries, measured while sysbench and MariaDB compete for the same CPUs; cpu_per_query.md has the "
               "dedicated measurement.")
    out.append("")
    return out


def plot_png(path: Path, meta: dict, points: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = meta["args"]
    wls = a["workloads"]
    fig, axes = plt.subplots(2, len(wls), figsize=(5.2 * len(wls), 8), squeeze=False)
    ix = index(points)
    styles = {"direct": ("tab:blue", "o"), "pool": ("tab:green", "s"), "funnel": ("tab:red", "^"),
              "fpool": ("tab:purple", "D")}
    for c, wl in enumerate(wls):
        for target in a["targets"]:
            xs, tps, p95 = [], [], []
            for t in a["threads"]:
                p = ix.get((wl, t, target))
                if p and p.get("ok"):
                    xs.append(t)
                    tps.append(p["tps"])
                    p95.append(p["lat_p95_ms"])
            color, marker = styles[target]
            axes[0][c].plot(xs, tps, marker=marker, color=color, label=LABELS[target])
            axes[1][c].plot(xs, p95, marker=marker, color=color, label=LABELS[target])
            for t in a["threads"]:  # failed points: a cross on the x axis
                p = ix.get((wl, t, target))
                if p and not p.get("ok"):
                    axes[0][c].plot([t], [0], marker="x", color=color, markersize=10)
        axes[0][c].set_title(wl)
        axes[0][c].set_ylabel("transactions/s")
        axes[1][c].set_ylabel("p95 latency (ms, log)")
        axes[1][c].set_yscale("log")
        for r in (0, 1):
            axes[r][c].set_xscale("log", base=2)
            axes[r][c].set_xticks(a["threads"])
            axes[r][c].set_xticklabels([str(t) for t in a["threads"]], rotation=45)
            axes[r][c].set_xlabel("sysbench threads (log)")
            axes[r][c].grid(True, which="both", alpha=0.3)
        axes[0][c].set_ylim(bottom=0)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(f"Funnel sweep {meta['started'][:10]} {meta['machine'].get('hostname')}: "
                 f"{meta['machine'].get('cpus')} CPUs shared by sysbench, MariaDB and Funnel; "
                 f"{a['time']} s/point, ps-mode={a['ps_mode']}, Funnel {a['cores']} cores x "
                 f"{a['pool_per_core']} conns (x = failed)", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def run_extras(a, out: Path, direct: MariaDB) -> dict:
    res = {}
    common = ["--server-port", str(direct.port), "--out", str(out), "--cores", str(a.cores),
              "--pool-per-core", str(a.pool_per_core)]
    for script, extra in (("idle_rss.py", []),
                          ("cpu_per_query.py", ["--tables", str(a.tables), "--table-size", str(a.table_size),
                                                "--ps-mode", a.ps_mode])):
        log(f"extra: {script}")
        rc = subprocess.run([sys.executable, str(BENCH_DIR / script), *common, *extra]).returncode
        res[script] = rc
        if rc != 0:
            print(f"{script} failed (rc {rc})", file=sys.stderr)
    return res


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.replot:
        src = Path(a.replot)
        doc = json.loads(src.read_text())
        write_outputs(src.parent, src.stem, doc["meta"], doc["points"], plot=True)
        log(f"rewrote {src.with_suffix('.md')}, .csv and .png")
        return 0
    raise_nofile()
    if a.funnel_bin:
        os.environ["FUNNEL_BIN"] = str(Path(a.funnel_bin).resolve())  # the extras inherit it
    out = results_dir(a)
    name = unique_stem(out, a.name or ("sweep-quick" if a.quick else "sweep"))
    work = workdir("funnel-sweep-")
    meta = {"started": dt.datetime.now().isoformat(timespec="seconds"), "args": vars(a) | {"out": str(out)},
            "machine": machine_info(), "workdir": str(work), "targets": LABELS}
    points: list[dict] = []
    npoints = len(a.workloads) * len(a.threads) * len(a.targets)
    log(f"{npoints} points of {a.time} s; results -> {out}/{name}.*; scratch {work}")
    t_start = time.monotonic()
    with Cleanup() as cleanup:
        completed = []  # the scratch dir goes only after a complete run
        cleanup.push(lambda: completed and not a.keep_workdir and shutil.rmtree(work, ignore_errors=True))
        binary = Funnel.private_binary(work)
        meta["funnel_binary"] = Funnel.binary_info(binary)
        servers = {}
        servers["direct"] = MariaDB.start(work / "direct", "direct", a.max_connections, a.buffer_pool)
        cleanup.push(servers["direct"].stop)
        if "pool" in a.targets or "fpool" in a.targets:
            servers["pool"] = MariaDB.start(work / "pool", "pool-of-threads", a.max_connections, a.buffer_pool,
                                            ["--thread-handling=pool-of-threads"])
            cleanup.push(servers["pool"].stop)
        for s in servers.values():
            s.prepare_sysbench(a.tables, a.table_size)
        meta["servers"] = {k: {"port": s.port, "thread_handling": s.sql("SELECT @@thread_handling")[0][0],
                               "max_connections": a.max_connections, "buffer_pool": a.buffer_pool,
                               "thread_pool_size": s.sql("SELECT @@thread_pool_size")[0][0]}
                           for k, s in servers.items()}
        funnels: dict[str, Funnel] = {}

        def start_funnel(ft: str, name: str) -> None:
            funnels[ft] = Funnel.start(work, binary, servers[FUNNEL_SERVER[ft]].port, a.cores, a.pool_per_core,
                                       a.min_idle_per_core, backend_user=FUNNEL_BACKEND_USER, name=name)
            cleanup.push(funnels[ft].stop)

        for ft in [t for t in FUNNEL_SERVER if t in a.targets]:
            srv = servers[FUNNEL_SERVER[ft]]
            srv.sql(f"CREATE USER IF NOT EXISTS {FUNNEL_BACKEND_USER}@'%' IDENTIFIED BY 'sbtest'",
                    f"GRANT ALL ON *.* TO {FUNNEL_BACKEND_USER}@'%'")
            start_funnel(ft, ft)
            meta["funnel_config"] = (funnels[ft].dir / "funnel.yaml").read_text()
        # Warm-up: a few seconds through each target (connection caches, JIT of sysbench's Lua).
        for tgt in a.targets:
            port = funnels[tgt].port if tgt in funnels else servers[tgt].port
            run_sysbench(port, a.workloads[0], 8, 5, a.tables, a.table_size, ps_mode=a.ps_mode)
        k = crashes = 0
        for wl in a.workloads:
            for t in a.threads:
                order = a.targets[k % len(a.targets):] + a.targets[:k % len(a.targets)]
                k += 1
                for i, tgt in enumerate(order):
                    row = run_point(a, work, wl, t, tgt, i, servers, funnels)
                    restart = set()
                    for key, srv in list(servers.items()):
                        if pid_alive(srv.pid):
                            continue
                        crashes += 1
                        saved = out / f"{name}-mariadb-{key}-died-{crashes}.log"
                        shutil.copy2(srv.dir / "error.log", saved)
                        row.setdefault("server_died", srv.label)
                        row["server_error_log"] = str(saved.relative_to(out))
                        log(f"MariaDB '{srv.label}' died (its log: {saved}); restarting it")
                        extra = ["--thread-handling=pool-of-threads"] if key == "pool" else []
                        servers[key] = MariaDB.start(srv.dir, srv.label, a.max_connections, a.buffer_pool, extra)
                        cleanup.push(servers[key].stop)
                        restart |= {ft for ft in funnels if FUNNEL_SERVER[ft] == key}
                    for ft in restart:
                        funnels[ft].stop()
                    for ft, funnel in list(funnels.items()):
                        if funnel.proc.poll() is None:
                            continue
                        log(f"Funnel '{ft}' exited (rc {funnel.proc.returncode}); starting a new one")
                        if ft not in restart:
                            row["funnel_log_tail"] = (funnel.dir / "funnel.log").read_text()[-4000:]
                        start_funnel(ft, f"{ft}-{len(points)}")
                    points.append(row)
                    done = len(points)
                    eta = (time.monotonic() - t_start) / done * (npoints - done)
                    log(f"[{done}/{npoints}] {wl} {t:>5} {tgt:<6} "
                        + (f"tps {row['tps']:.0f} p95 {row['lat_p95_ms']} ms errors {row['errors']}"
                           if row["ok"] else f"FAILED: {row['reason']}")
                        + (f" Fcpu {row.get('funnel_cpu_us_per_query')} us/q" if tgt in funnels else "")
                        + f"  (eta {eta / 60:.0f} min)")
                    write_outputs(out, name, meta, points, plot=False)
        meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        meta["duration_min"] = round((time.monotonic() - t_start) / 60, 1)
        for ft, funnel in funnels.items():
            meta["funnel_vmhwm_kib" if ft == "funnel" else f"{ft}_vmhwm_kib"] = proc_status_kib(funnel.pid, "VmHWM")
            funnel.stop()
        write_outputs(out, name, meta, points, plot=not a.no_plot)
        if a.extras:
            meta["extras"] = run_extras(a, out, servers["direct"])
            write_outputs(out, name, meta, points, plot=False)
        completed.append(True)
    if not completed or a.keep_workdir:
        log(f"scratch directory kept: {work}")
    log(f"done in {(time.monotonic() - t_start) / 60:.1f} min: {out}/{name}.md")
    print((out / f"{name}.md").read_text())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)

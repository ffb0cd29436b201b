#!/usr/bin/env python3
"""Memory and CPU cost of idle client connections held by Funnel.

Opens --clients (default 10,000) authenticated client connections through
Funnel (a tiny mysql_native_password client from benchlib, no driver
needed), spread over --procs worker processes so no process comes near the
20,000 open-files limit, and lets them sit idle. Reports:

  * Funnel's RSS before and after (VmRSS and RssAnon) and the bytes per idle
    client: (RSS with the clients - RSS before) / clients;
  * Funnel's CPU time over --idle seconds with no clients (baseline) and
    with all clients connected and idle (target: the same; idle clients
    must cost no CPU), per thread;
  * that the idle clients still work afterwards (SELECT 1 on a sample);
  * backend connections Funnel holds meanwhile, and RSS after they close.

Standalone it starts its own throwaway MariaDB; sweep.py passes
--server-port to reuse its server. Writes idle_rss.json/.md to --out.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, CpuMark, Funnel, MariaDB, MiniConn, default_results_dir, log,
    machine_info, proc_rss_bytes, proc_status_kib, raise_nofile, write_report, workdir, run_script,
)


def worker(port: int, n: int, pipe) -> None:
    """Opens n logged-in connections, then obeys 'check' and 'close'."""
    raise_nofile()
    conns, errors, first_err = [], 0, ""
    t0 = time.monotonic()
    for _ in range(n):
        for attempt in range(3):
            try:
                conns.append(MiniConn("127.0.0.1", port, SB_USER, SB_PASSWORD, SB_DB, timeout=30))
                break
            except Exception as e:  # counted, reported
                if attempt == 2:
                    errors += 1
                    first_err = first_err or repr(e)
                time.sleep(0.05)
    pipe.send(("ready", len(conns), errors, first_err, time.monotonic() - t0))
    while True:
        cmd = pipe.recv()
        if cmd == "check":
            ok = bad = 0
            sample = conns[:: max(1, len(conns) // 25)]
            for c in sample:
                try:
                    ok += c.scalar("SELECT 1") == "1"
                except Exception:
                    bad += 1
            pipe.send(("checked", ok, bad))
        elif cmd == "close":
            for c in conns:
                c.close()
            pipe.send(("closed", len(conns)))
            return


def cpu_by_thread(pid: int) -> dict[str, int]:
    import os

    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            ns = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            out[f"{name}/{tid}"] = ns
        except OSError:
            pass
    return out


def idle_window(pid: int, seconds: float) -> dict:
    t0, c0 = CpuMark.take(pid), cpu_by_thread(pid)
    time.sleep(seconds)
    t1, c1 = CpuMark.take(pid), cpu_by_thread(pid)
    d = t1.since(t0)
    return {"seconds": d["wall_s"], "cpu_ms": round(d["cpu_ns"] / 1e6, 3),
            "cpu_ticks_s": d["cpu_s"],
            "per_thread_ms": {k: round((c1.get(k, 0) - v) / 1e6, 3) for k, v in c0.items()}}


def backend_conns(server_port: int, user: str) -> int | None:
    try:
        c = MiniConn("127.0.0.1", server_port, "root", "", timeout=5)
        n = int(c.scalar(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER='{user}'"))
        c.close()
        return n
    except Exception:
        return None


def measure(a, funnel: Funnel, server_port: int) -> dict:
    pid = funnel.pid
    res: dict = {"clients_wanted": a.clients, "procs": a.procs, "cores": a.cores,
                 "pool_per_core": a.pool_per_core}
    # One query so the pool and the allocator are in their steady state.
    c = MiniConn("127.0.0.1", funnel.port, SB_USER, SB_PASSWORD, SB_DB)
    c.query("SELECT 1")
    c.close()
    time.sleep(2)
    res["rss_before"] = proc_rss_bytes(pid)
    res["rss_anon_before_kib"] = proc_status_kib(pid, "RssAnon")
    log(f"Funnel idle with no clients: {a.idle} s of CPU accounting")
    res["baseline_idle"] = idle_window(pid, a.idle)
    res["backend_conns_before"] = backend_conns(server_port, SB_USER)

    log(f"opening {a.clients} idle clients from {a.procs} processes")
    ctx = mp.get_context("fork")
    per = [a.clients // a.procs + (1 if i < a.clients % a.procs else 0) for i in range(a.procs)]
    pipes, procs = [], []
    t0 = time.monotonic()
    for n in per:
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=worker, args=(funnel.port, n, theirs), daemon=True)
        p.start()
        pipes.append(mine)
        procs.append(p)
    try:
        opened = errors = 0
        first_err = ""
        for pp in pipes:
            if not pp.poll(600):
                raise RuntimeError("a worker did not finish connecting within 600 s")
            _, n, e, fe, _ = pp.recv()
            opened += n
            errors += e
            first_err = first_err or fe
        res.update(clients_open=opened, connect_errors=errors, first_connect_error=first_err,
                   connect_seconds=round(time.monotonic() - t0, 2))
        log(f"{opened} clients open ({errors} failed) in {res['connect_seconds']} s")
        time.sleep(3)
        res["rss_with_clients"] = proc_rss_bytes(pid)
        res["rss_anon_with_clients_kib"] = proc_status_kib(pid, "RssAnon")
        log(f"{opened} clients idle: {a.idle} s of CPU accounting")
        res["clients_idle"] = idle_window(pid, a.idle)
        res["rss_after_idle"] = proc_rss_bytes(pid)
        res["backend_conns_with_clients"] = backend_conns(server_port, SB_USER)
        for pp in pipes:
            pp.send("check")
        ok = bad = 0
        for pp in pipes:
            _, o, b = pp.recv()
            ok += o
            bad += b
        res.update(check_ok=ok, check_failed=bad)
        for pp in pipes:
            pp.send("close")
        for pp in pipes:
            pp.recv()
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    time.sleep(3)
    res["rss_after_close"] = proc_rss_bytes(pid)
    res["vmhwm_kib"] = proc_status_kib(pid, "VmHWM")
    n = max(1, res["clients_open"])
    res["bytes_per_client"] = round((res["rss_with_clients"] - res["rss_before"]) / n)
    res["anon_bytes_per_client"] = round((res["rss_anon_with_clients_kib"] - res["rss_anon_before_kib"]) * 1024 / n)
    res["idle_cpu_ms_delta"] = round(res["clients_idle"]["cpu_ms"] - res["baseline_idle"]["cpu_ms"], 3)
    return res


def markdown(r: dict) -> str:
    kib = r["bytes_per_client"] / 1024
    return f"""# Idle clients through Funnel ({r['started'][:10]}, {r['machine'].get('hostname')})

`bench/idle_rss.py --clients {r['clients_wanted']} --procs {r['procs']} --idle {r['args']['idle']}`; Funnel cores {r['cores']},
pool {r['pool_per_core']}/core. Clients are logged in (mysql_native_password) and then send nothing.

| measure | value |
|---|---|
| clients open / failed | {r['clients_open']} / {r['connect_errors']} (in {r['connect_seconds']} s) |
| Funnel RSS before | {r['rss_before'] / 2**20:.1f} MiB |
| Funnel RSS with the clients | {r['rss_with_clients'] / 2**20:.1f} MiB |
| **RSS per idle client** | **{r['bytes_per_client']} bytes ({kib:.1f} KiB)** (target <= 16 KiB: {'met' if kib <= 16 else 'NOT met'}) |
| anonymous RSS per idle client | {r['anon_bytes_per_client']} bytes |
| Funnel RSS after the clients closed | {r['rss_after_close'] / 2**20:.1f} MiB (peak VmHWM {r['vmhwm_kib'] / 1024:.1f} MiB) |
| Funnel CPU over {r['baseline_idle']['seconds']:.0f} s, no clients | {r['baseline_idle']['cpu_ms']:.1f} ms |
| **Funnel CPU over {r['clients_idle']['seconds']:.0f} s, {r['clients_open']} idle clients** | **{r['clients_idle']['cpu_ms']:.1f} ms** (difference {r['idle_cpu_ms_delta']:+.1f} ms) |
| backend connections (no clients / with clients) | {r['backend_conns_before']} / {r['backend_conns_with_clients']} |
| sample of idle clients answering SELECT 1 afterwards | {r['check_ok']} ok, {r['check_failed']} failed |

Per-thread CPU with the clients idle (ms): {', '.join(f'{k} {v}' for k, v in r['clients_idle']['per_thread_ms'].items())}.
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=10000)
    p.add_argument("--procs", type=int, default=4, help="client worker processes")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU accounting")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--pool-per-core", type=int, default=16)
    p.add_argument("--server-port", type=int, default=None,
                   help="reuse a running throwaway MariaDB with user sbtest (else start one)")
    p.add_argument("--out", default=None, help="results directory (default bench/results/<date>-<host>)")
    p.add_argument("--name", default="idle_rss")
    a = p.parse_args(argv)
    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    work = workdir("funnel-idle-")
    with Cleanup() as cleanup:
        cleanup.push(lambda: __import__("shutil").rmtree(work, ignore_errors=True))
        server_port = a.server_port
        if server_port is None:
            db = MariaDB.start(work / "db", "idle-rss", max_connections=500, buffer_pool="256M")
            cleanup.push(db.stop)
            db.create_sbtest()
            server_port = db.port
        funnel = Funnel.start(work, Funnel.private_binary(work), server_port, a.cores, a.pool_per_core,
                              min_idle_per_core=2, level="warn")
        cleanup.push(funnel.stop)
        r = measure(a, funnel, server_port)
        r.update(started=time.strftime("%Y-%m-%dT%H:%M:%S"), machine=machine_info(), args=vars(a))
    write_report(out, a.name, r, markdown(r))
    return 0 if r["clients_open"] == a.clients and r["check_failed"] == 0 else 1


if __name__ == "__main__":
    run_script(main)

#!/usr/bin/env python3
"""Which Funnel shape suits this host: Funnel configurations side by side with direct MariaDB.

Answers "how many cores, how big a pool" for the machine it runs on. One throwaway MariaDB
(one-thread-per-connection) with sysbench tables; one Funnel per configuration, all started up
front in front of it; then for each round and thread count, sysbench oltp_point_select runs
against direct MariaDB and every Funnel back to back, in an order that rotates from point to
point so the box's noise hits every target alike. Reports per target: tps, p95, CPU per query of
Funnel, of mariadbd and of sysbench (and their sum, the whole box's cost of a query), and medians
over the rounds with the ratio to direct. mariadbd's and sysbench's figures show what a hop
through Funnel costs the other two processes, not only Funnel itself.

A configuration is `label:key=value,...` with keys
  cores=N    Funnel cores (shards)
  pool=N     pool.max_per_core (min_idle_per_core is the same: a warm pool)
  idle_poll=D  the idle_poll key (e.g. 0 to turn polling off; builds before 19af14e lack it)
  bin=PATH   another Funnel binary (default: target/release/funnel, or $FUNNEL_BIN)
  env=K=V    an environment variable for that Funnel process (repeatable: env=A=1,env=B=2)
  nice=N     run that Funnel under `nice -n N` (negative needs root)
  backend=unix  reach MariaDB through its Unix socket (default: tcp, 127.0.0.1)
  relay=socat   not Funnel: a forking socat relay (one process per client, no
                pooling), the least any extra hop can cost; its CPU includes its
                finished children
  cache=TTL     a query rule with cache_ttl TTL (e.g. 60s) for sysbench's point
                select text (`SELECT c FROM sbtest`): reads answered from
                Funnel's query cache after the first of each id
  qlog=PATH     the query log on, every statement (query_log.all) written to PATH
  server=pool   in front of a second MariaDB run with thread_handling=pool-of-threads
                (started for it, with the same tables), instead of the
                one-thread-per-connection one

--pool-server also starts that second MariaDB and drives it directly as the target
`direct-pool`, so a run can compare a pooler in front of either server with both servers
driven directly.

Example:
  python3 bench/configs.py --threads "8 64 1024 4096" --rounds 2 \\
      --config c1p8:cores=1,pool=8 --config c2p16:cores=2,pool=16

Writes <name>.json and <name>.md to --out (default bench/results/<date>-<host>/).
Servers and Funnels are stopped by PID at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    Cleanup, CpuMark, Funnel, MariaDB, default_results_dir, free_port, log, machine_info, proc_cpu_ns, proc_cpu_seconds, raise_nofile,
    run_sysbench, write_report, workdir, run_script,
)

WORKLOAD = "oltp_point_select"


@dataclass
class Shape:
    """One Funnel configuration under test."""

    label: str
    cores: int = 2
    pool: int = 16
    binary: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    nice: int | None = None
    unix_backend: bool = False
    relay: str | None = None
    idle_poll: str | None = None
    pool_server: bool = False
    cache_ttl: str | None = None
    query_log: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "Shape":
        label, _, rest = spec.partition(":")
        if not label or label == "direct":
            raise ValueError(f"{spec!r}: a configuration needs a label other than 'direct'")
        s = cls(label)
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key == "cores":
                s.cores = int(value)
            elif key == "pool":
                s.pool = int(value)
            elif key == "bin":
                s.binary = value
            elif key == "nice":
                s.nice = int(value)
            elif key == "relay" and value == "socat":
                s.relay = value
            elif key == "server" and value in ("pool", "direct"):
                s.pool_server = value == "pool"
            elif key == "backend" and value in ("unix", "tcp"):
                s.unix_backend = value == "unix"
            elif key == "idle_poll":
                s.idle_poll = value
            elif key == "cache":
                s.cache_ttl = value
            elif key == "qlog":
                s.query_log = value
            elif key == "env":
                k, _, v = value.partition("=")
                s.env[k] = v
            else:
                raise ValueError(f"{spec!r}: unknown key {key!r} (cores, pool, idle_poll, cache, qlog, bin, env, nice, backend=unix|tcp, relay=socat, server=pool)")
        return s

    def describe(self) -> str:
        if self.relay:
            return "socat relay, forking: one process per client, each with its own MariaDB connection"
        extra = "".join(f", {k}={v}" for k, v in self.env.items())
        if self.nice is not None:
            extra += f", nice {self.nice}"
        build = f", binary {self.binary}" if self.binary else ""
        if self.unix_backend:
            extra += ", backend over its Unix socket"
        if self.idle_poll is not None:
            extra += f", idle_poll {self.idle_poll}"
        if self.pool_server:
            extra += ", in front of the pool-of-threads MariaDB"
        if self.cache_ttl is not None:
            extra += f", point selects cached for {self.cache_ttl}"
        if self.query_log is not None:
            extra += f", every statement logged to {self.query_log}"
        return f"cores {self.cores}, pool {self.pool}/core ({self.cores * self.pool} backend connections){extra}{build}"


def shape_yaml(shape: Shape) -> str:
    """The YAML a shape adds at the top level of its Funnel's configuration."""
    yaml = f"idle_poll: {shape.idle_poll}\n" if shape.idle_poll is not None else ""
    if shape.cache_ttl is not None:
        yaml += ("query_rules:\n  - match_prefix: \"SELECT c FROM sbtest\"\n"
                 f"    cache_ttl: {shape.cache_ttl}\n")
    if shape.query_log is not None:
        yaml += f"query_log:\n  path: {shape.query_log}\n  all: true\n"
    return yaml


class SocatRelay:
    """`socat TCP-LISTEN:...,fork`: a plain relay with one process per client."""

    def __init__(self, work: Path, label: str, db: MariaDB) -> None:
        self.port = free_port()
        log_path = work / f"{label}.log"
        with open(log_path, "w") as logf:
            self.proc = subprocess.Popen(
                ["socat", f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr,backlog=4096,nodelay",
                 f"TCP:127.0.0.1:{db.port},nodelay"],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"socat did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.05)
        log(f"socat relay pid {self.pid} on port {self.port}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float:
        """CPU of the relay and of its children that have ended (each client's process)."""
        return proc_cpu_seconds(self.pid, ended_children=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            log(f"stopping socat (process group {self.pid})")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)


def proxy_cpu_s(proxy) -> float:
    """A proxy's CPU seconds so far: Funnel's threads (schedstat), or socat's processes."""
    return proxy.cpu_s() if isinstance(proxy, SocatRelay) else proc_cpu_ns(proxy.pid) / 1e9


def start_funnel(work: Path, shape: Shape, db: MariaDB) -> Funnel:
    """Starts one Funnel for `shape`; its environment is set only for its own spawn."""
    d = work / shape.label
    d.mkdir(parents=True, exist_ok=True)
    src = Path(shape.binary) if shape.binary else None
    if src is not None:
        binary = d / "funnel-bin"
        shutil.copy2(src, binary)
    else:
        binary = Funnel.private_binary(d)
    saved = {k: os.environ.get(k) for k in shape.env}
    os.environ.update(shape.env)
    try:
        wrapper = ["nice", "-n", str(shape.nice)] if shape.nice is not None else None
        return Funnel.start(work, binary, db.port, shape.cores, shape.pool, name=f"funnel-{shape.label}",
                            wrapper=wrapper, backend_socket=db.socket if shape.unix_backend else None,
                            extra_yaml=shape_yaml(shape))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", default=[], help="label:key=value,... (repeatable)")
    p.add_argument("--threads", default="8 64 1024 4096")
    p.add_argument("--time", type=int, default=15)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=100000)
    p.add_argument("--ps-mode", choices=["disable", "auto"], default="disable")
    p.add_argument("--no-direct", action="store_true", help="compare the Funnel shapes only")
    p.add_argument("--pool-server", action="store_true",
                   help="also run a pool-of-threads MariaDB, driven directly as target direct-pool")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default="configs")
    a = p.parse_args(argv)
    shapes = [Shape.parse(s) for s in a.config] or [Shape("c2p16")]
    if len({s.label for s in shapes}) != len(shapes):
        p.error("configuration labels must differ")
    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    work = workdir("funnel-configs-")
    threads = [int(x) for x in a.threads.split()]
    rows: list[dict] = []
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
           "shapes": [{"label": s.label, "describe": s.describe()} for s in shapes], "rows": rows}
    with Cleanup() as cleanup:
        cleanup.push(lambda: shutil.rmtree(work, ignore_errors=True))
        db = MariaDB.start(work / "db", "configs", max_connections=5000)
        cleanup.push(db.stop)
        db.prepare_sysbench(a.tables, a.table_size)
        pool_db = None
        if a.pool_server or any(s.pool_server for s in shapes):
            pool_db = MariaDB.start(work / "pool-db", "configs-pool", max_connections=5000,
                                    extra=["--thread-handling=pool-of-threads"])
            cleanup.push(pool_db.stop)
            pool_db.prepare_sysbench(a.tables, a.table_size)
        # Which server each target reaches, and so whose CPU counts as mariadbd's.
        server_of: dict[str, MariaDB] = {"direct": db}
        if a.pool_server:
            server_of["direct-pool"] = pool_db
        funnels: dict[str, Funnel | SocatRelay] = {}
        for s in shapes:
            server_of[s.label] = pool_db if s.pool_server else db
            srv = server_of[s.label]
            funnels[s.label] = SocatRelay(work, s.label, srv) if s.relay else start_funnel(work, s, srv)
            cleanup.push(funnels[s.label].stop)
        targets = ([] if a.no_direct else ["direct"] + (["direct-pool"] if a.pool_server else [])) \
            + [s.label for s in shapes]
        for label in targets:  # warm caches and pools alike
            port = server_of[label].port if label not in funnels else funnels[label].port
            run_sysbench(port, WORKLOAD, 8, 3, a.tables, a.table_size, ps_mode=a.ps_mode)
        i = 0
        for rnd in range(a.rounds):
            for n in threads:
                order = targets[i % len(targets):] + targets[:i % len(targets)]
                i += 1
                for label in order:
                    time.sleep(2)
                    f = funnels.get(label)
                    srv = server_of[label]
                    port = srv.port if f is None else f.port
                    c0 = proxy_cpu_s(f) if f else None
                    m0 = CpuMark.take(srv.pid)
                    r = run_sysbench(port, WORKLOAD, n, a.time, a.tables, a.table_size, ps_mode=a.ps_mode)
                    row = {"round": rnd, "threads": n, "target": label, "ok": r.ok, "reason": r.reason,
                           "tps": r.tps, "errors": r.errors, "lat_avg_ms": r.lat_avg_ms,
                           "lat_p95_ms": r.lat_p95_ms, "lat_p99_ms": r.lat_p99_ms, "lat_max_ms": r.lat_max_ms,
                           "us_per_query": None, "mariadbd_us_per_query": None,
                           "sysbench_us_per_query": None}
                    if r.queries:
                        # The whole run's CPU over its queries: logins and the
                        # ramp-up are in it too, alike for every target.
                        # Ticks, not schedstat: mariadbd's connection threads
                        # exit with their clients and take their schedstat along.
                        m = CpuMark.take(srv.pid).since(m0)
                        row["mariadbd_us_per_query"] = round(m["cpu_s"] * 1e6 / r.queries, 2)
                        if r.sysbench_cpu_s is not None:
                            row["sysbench_us_per_query"] = round(r.sysbench_cpu_s * 1e6 / r.queries, 2)
                        if f:
                            if isinstance(f, SocatRelay):
                                time.sleep(0.5)  # its children end and are reaped
                            row["us_per_query"] = round((proxy_cpu_s(f) - c0) * 1e6 / r.queries, 2)
                    rows.append(row)
                    log(f"round {rnd} {n} threads {label}: {row['tps']} tps, p95 {row['lat_p95_ms']} ms, "
                        f"us/query proxy {row['us_per_query']}, mariadbd {row['mariadbd_us_per_query']}, "
                        f"sysbench {row['sysbench_us_per_query']}")
                    (out / f"{a.name}.partial.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"{a.name}.partial.json").unlink(missing_ok=True)
    write_report(out, a.name, res, markdown(res))
    return 0 if all(r["ok"] for r in rows) else 1


def median(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def markdown(res: dict) -> str:
    a = res["args"]
    m = res["machine"]
    lines = [f"# Funnel configurations side by side ({res['started'][:10]}, {m.get('hostname')})", "",
             f"`bench/configs.py`: sysbench {WORKLOAD} --db-ps-mode={a['ps_mode']}, {a['time']} s per point, "
             f"{a['rounds']} rounds, {a['tables']} tables x {a['table_size']} rows; {m.get('cpus')} CPUs shared "
             "by sysbench, MariaDB and Funnel. Targets run back to back per point in rotating order. "
             "Figures are medians over the rounds; CPU per query = a process's on-CPU time over the run "
             "(Funnel from schedstat, socat and mariadbd from /proc/PID/stat ticks, socat's with its ended children, sysbench from its rusage) / queries completed; box = "
             "the sum of the three.", "",
             "Configurations:", ""]
    lines += [f"- **{s['label']}**: {s['describe']}" for s in res["shapes"]]
    if a.get("pool_server"):
        lines += ["- **direct-pool**: a second MariaDB with thread_handling=pool-of-threads, driven directly "
                  "(\"vs direct\" is against the one-thread-per-connection server)"]
    lines += ["", "p99 is the median over the rounds; max is the largest single event in any round.", "",
              "| threads | target | tps | **vs direct** | p95 ms | p95 vs direct | p99 ms | max ms | proxy us/q "
              "| mariadbd us/q | sysbench us/q | box us/q | errors |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    f = lambda v, s=".0f": "—" if v is None else format(v, s)  # noqa: E731
    rows = res["rows"]
    for n in sorted({r["threads"] for r in rows}):
        at = [r for r in rows if r["threads"] == n]
        direct = [r for r in at if r["target"] == "direct"]
        d_tps, d_p95 = median(direct, "tps"), median(direct, "lat_p95_ms")
        for label in ["direct", "direct-pool"] + [s["label"] for s in res["shapes"]]:
            rs = [r for r in at if r["target"] == label]
            if not rs:
                continue
            tps, p95 = median(rs, "tps"), median(rs, "lat_p95_ms")
            ratio = f"**{tps / d_tps:.2f}x**" if tps and d_tps and label != "direct" else ""
            p_ratio = f"{p95 / d_p95:.2f}x" if p95 and d_p95 and label != "direct" else ""
            errors = sum(r["errors"] or 0 for r in rs)
            p99 = median(rs, "lat_p99_ms")
            worst = max((r["lat_max_ms"] for r in rs if r.get("lat_max_ms") is not None), default=None)
            cpu = [median(rs, k) for k in ("us_per_query", "mariadbd_us_per_query", "sysbench_us_per_query")]
            box = sum(c for c in cpu if c is not None) if cpu[1] is not None and cpu[2] is not None else None
            lines.append(f"| {n} | {label} | {f(tps)} | {ratio} | {f(p95, '.2f')} | {p_ratio} | "
                         f"{f(p99, '.2f')} | {f(worst, '.1f')} | "
                         + " | ".join(f(c, '.1f') for c in cpu) + f" | {f(box, '.1f')} | {errors} |")
    failed = [r for r in rows if not r["ok"]]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- round {r['round']}, {r['threads']} threads, {r['target']}: "
                                             f"{r['reason']}" for r in failed]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

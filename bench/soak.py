#!/usr/bin/env python3
"""Soak test: sysbench oltp_read_write through Funnel while the backend is
SIGKILLed and restarted every few minutes; then checks for lost and
duplicated writes, and whether Funnel's RSS and open fds stay flat.

Not part of CI. What it does:

  * starts a throwaway MariaDB (bench/mariadb.sh, --no-defaults, free
    127.0.0.1 port) and Funnel (the release binary, copied first) in front
    of it; prepares --tables x --table-size sysbench tables and an audit
    table sbtest.soak_audit (auto-increment PK, NON-unique token column);
  * runs sysbench oltp_read_write through Funnel for --duration at
    --threads with --mysql-ignore-errors=all, so errors caused by the kills
    are counted instead of ending the run;
  * alongside, --audit-writers threads (benchlib's MiniConn logging in with
    sysbench's capability flags, see AuditConn; through Funnel)
    INSERT one row per fresh token, autocommit, and append the token to an
    "acked" log only after the OK packet arrived. A failed insert is never
    retried with the same token: an ERR packet goes to an "err" log, a lost
    connection / timeout (the insert may or may not have run) to an
    "ambiguous" log, and the next attempt uses a new token;
  * after --warmup, and then every --kill-every, SIGKILLs mariadbd, waits
    --down-time, restarts it with the same command line (same port and
    datadir) and waits until it answers; no kill in the last --quiet-end;
  * samples Funnel's VmRSS, open fds (/proc/PID/fd) and threads every
    --sample-every seconds;
  * at the end, directly on MariaDB: every acked token present (else: lost
    write), no token present twice (else: a statement ran twice), no token
    present that was never sent, each sysbench table has exactly
    --table-size rows with ids 1..table-size (oltp_read_write deletes and
    re-inserts the same id inside one transaction; a half-applied or
    replayed transaction shows up here);
  * writes soak.json, soak.md and soak.csv (samples) into --out.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, Funnel, MariaDB, MiniConn, MySQLError, default_results_dir,
    free_port, log, machine_info, parse_sysbench, pid_alive, proc_cpu_seconds, proc_status_kib,
    raise_nofile, sysbench_conn_args, workdir, run_script,
)

AUDIT_TABLE = f"{SB_DB}.soak_audit"


def seconds(text: str) -> float:
    """'30m', '180s', '1h', '90' -> seconds."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}")
    v = float(m.group(1))
    return v * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


# ---------------------------------------------------------------- backend killer


class Backend:
    """The MariaDB under test; kill -9 and restart with the same command line."""

    def __init__(self, db: MariaDB):
        self.db = db
        self.pid = db.pid
        with open(f"/proc/{db.pid}/cmdline", "rb") as f:
            self.cmdline = [a.decode() for a in f.read().split(b"\0") if a]
        self.proc: subprocess.Popen | None = None
        self.up = True

    def ready(self, timeout: float = 2.0) -> bool:
        try:
            c = MiniConn("127.0.0.1", self.db.port, "root", "", timeout=timeout)
            try:
                return c.scalar("SELECT 1") == "1"
            finally:
                c.close()
        except (OSError, MySQLError):
            return False

    def kill(self) -> float:
        """SIGKILL; returns when the process is gone (monotonic time of the kill)."""
        self.up = False
        t = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        while pid_alive(self.pid):
            time.sleep(0.02)
        return t

    def restart(self, limit: float = 300.0) -> float | None:
        """Starts mariadbd again; monotonic time at which it answered SELECT 1."""
        errlog = open(self.db.dir / "error.log", "a")
        self.proc = subprocess.Popen(self.cmdline, stdout=errlog, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        errlog.close()
        self.pid = self.proc.pid
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.ready():
                self.up = True
                return time.monotonic()
            if not pid_alive(self.pid):
                return None
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        log(f"stopping MariaDB (pid {self.pid})")
        from benchlib import stop_pid

        stop_pid(self.pid)


# ---------------------------------------------------------------- audit writers

# Result-shaping capability flags a libmariadb client such as sysbench asks
# for (Funnel's PoolKey::DEFAULT). Funnel keeps backend connections per
# (these flags, charset); a client with other flags only gets connections
# of its own kind, see AuditConn.
LIBMARIADB_KEY_FLAGS = 0x80 | 0x10000 | 0x20000 | 0x40000 | 0x800000  # LOCAL_FILES MULTI_STATEMENTS
#                      MULTI_RESULTS PS_MULTI_RESULTS SESSION_TRACK


class AuditConn(MiniConn):
    """benchlib's MiniConn, logging in with the same pool key as sysbench.

    Funnel pools backend connections by (result-shaping capability flags,
    charset) and a released connection goes to the first waiter *with the
    same key*. MiniConn's flags differ from libmariadb's, so under a
    sysbench load that always has waiters, MiniConn clients starved (waited
    the full backlog.wait_timeout every time). --audit-key sysbench (the
    default) avoids that; --audit-key benchlib shows it.
    """

    extra_flags = LIBMARIADB_KEY_FLAGS


class AuditWriter(threading.Thread):
    def __init__(self, n: int, port: int, dir: Path, run_id: str, stop: threading.Event, t0: float,
                 max_rate: float, conn_cls: type = MiniConn, table: str = AUDIT_TABLE):
        super().__init__(daemon=True, name=f"audit{n}")
        self.conn_cls, self.table = conn_cls, table
        self.n, self.port, self.stop_ev, self.t0 = n, port, stop, t0
        self.prefix = f"{run_id}-w{n}-"
        self.min_gap = 1.0 / max_rate if max_rate > 0 else 0.0
        self.seq = 0
        self.acked_f = open(dir / f"audit-w{n}.acked", "w")
        self.err_f = open(dir / f"audit-w{n}.err", "w")
        self.amb_f = open(dir / f"audit-w{n}.ambiguous", "w")
        self.acks: list[tuple[float, float]] = []  # (sent, acked), seconds since t0
        self.errs: list[tuple[float, str]] = []
        self.ambiguous: list[tuple[float, str]] = []
        self.connect_failures = 0
        self.connects = 0

    def run(self) -> None:
        conn: MiniConn | None = None
        while not self.stop_ev.is_set():
            if conn is None:
                try:
                    conn = self.conn_cls("127.0.0.1", self.port, SB_USER, SB_PASSWORD, SB_DB, timeout=180)
                    self.connects += 1
                except (OSError, MySQLError):
                    self.connect_failures += 1
                    self.stop_ev.wait(0.2)
                    continue
            self.seq += 1
            token = f"{self.prefix}{self.seq}"
            sent = time.monotonic() - self.t0
            try:
                conn.query(f"INSERT INTO {self.table} (token, writer) VALUES ('{token}', {self.n})")
            except MySQLError as e:
                msg = str(e)
                if msg.startswith("ERROR "):  # an ERR packet: the statement failed
                    self.errs.append((sent, msg))
                    self.err_f.write(f"{token}\t{sent:.3f}\t{msg}\n")
                    self.err_f.flush()
                    self.stop_ev.wait(0.1)
                    continue
                self._ambiguous(token, sent, msg)
                conn = self._drop(conn)
                continue
            except OSError as e:  # timeout, reset: may or may not have run
                self._ambiguous(token, sent, repr(e))
                conn = self._drop(conn)
                continue
            done = time.monotonic() - self.t0
            self.acked_f.write(token + "\n")
            self.acked_f.flush()
            self.acks.append((sent, done))
            if self.min_gap:
                self.stop_ev.wait(max(0.0, self.min_gap - (done - sent)))
        if conn is not None:
            conn.close()
        for f in (self.acked_f, self.err_f, self.amb_f):
            f.close()

    def _ambiguous(self, token: str, sent: float, msg: str) -> None:
        self.ambiguous.append((sent, msg))
        self.amb_f.write(f"{token}\t{sent:.3f}\t{msg}\n")
        self.amb_f.flush()
        self.stop_ev.wait(0.1)

    @staticmethod
    def _drop(conn: MiniConn) -> None:
        with contextlib.suppress(OSError):
            conn.sock.close()
        return None


# ---------------------------------------------------------------- sampler


def count_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
    def __init__(self, funnel_pid: int, every: float, t0: float, backend: Backend, writers: list,
                 csv_path: Path):
        super().__init__(daemon=True, name="sampler")
        self.pid, self.every, self.t0, self.backend, self.writers = funnel_pid, every, t0, backend, writers
        self.rows: list[dict] = []
        self.stop_ev = threading.Event()
        self.csv = open(csv_path, "w")
        self.csv.write("t_s,rss_kib,fds,threads,funnel_cpu_s,backend_up,audit_acked\n")

    def sample(self) -> dict | None:
        try:
            row = {
                "t_s": round(time.monotonic() - self.t0, 1),
                "rss_kib": proc_status_kib(self.pid, "VmRSS"),
                "fds": count_fds(self.pid),
                "threads": proc_status_kib(self.pid, "Threads"),
                "funnel_cpu_s": round(proc_cpu_seconds(self.pid), 2),
                "backend_up": int(self.backend.up),
                "audit_acked": sum(len(w.acks) for w in self.writers),
            }
        except OSError:
            return None
        self.rows.append(row)
        self.csv.write(",".join(str(row[k]) for k in row) + "\n")
        self.csv.flush()
        return row

    def run(self) -> None:
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(self.every)

    def finish(self) -> None:
        self.stop_ev.set()
        self.join()
        self.csv.close()


# ---------------------------------------------------------------- sysbench


INTERVAL_RE = re.compile(
    r"^\[\s*(\d+)s\s*\]\s+thds:\s+(\d+)\s+tps:\s+([0-9.]+)\s+qps:\s+([0-9.]+).*?"
    r"lat \(ms,95%\):\s+([0-9.]+)\s+err/s:?\s+([0-9.]+)\s+reconn/s:\s+([0-9.]+)")


def parse_intervals(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        m = INTERVAL_RE.search(line)
        if m:
            out.append({"t_s": int(m.group(1)), "threads": int(m.group(2)), "tps": float(m.group(3)),
                        "qps": float(m.group(4)), "p95_ms": float(m.group(5)),
                        "err_s": float(m.group(6)), "reconn_s": float(m.group(7))})
    return out


# ---------------------------------------------------------------- analysis


def flat_verdict(rows: list[dict], key: str, warmup: float, end_t: float, tol: float) -> dict:
    """Post-warm-up median vs end (median of the last 6 samples under load)."""
    post = [r for r in rows if warmup <= r["t_s"] <= end_t]
    if len(post) < 3:
        return {"verdict": "too few samples", "samples": len(post)}
    vals = [r[key] for r in post]
    med = statistics.median(vals)
    end = statistics.median(vals[-6:])
    xs = [r["t_s"] for r in post]
    mx = statistics.fmean(xs)
    my = statistics.fmean(vals)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, vals)) / sxx if sxx else 0.0
    warm = [r[key] for r in rows if r["t_s"] <= warmup]
    dev = (end - med) / med if med else 0.0
    return {
        "at_warmup_end": post[0][key],
        "warmup_max": max(warm) if warm else None,
        "post_warmup_median": med,
        "post_warmup_min": min(vals),
        "post_warmup_max": max(vals),
        "end": end,
        "end_vs_median_pct": round(100 * dev, 2),
        "slope_per_min": round(slope * 60, 3),
        "slope_over_run_pct_of_median": round(100 * slope * (xs[-1] - xs[0]) / med, 2) if med else None,
        "verdict": "flat" if abs(dev) <= tol else "NOT flat",
        "samples": len(post),
    }


def verify(db_port: int, tables: int, table_size: int, writers: list[AuditWriter], wd: Path,
           table: str = AUDIT_TABLE) -> dict:
    c = MiniConn("127.0.0.1", db_port, "root", "", timeout=120)
    try:
        # No transaction may be in flight when the counts are taken.
        deadline = time.monotonic() + 60
        while int(c.scalar("SELECT COUNT(*) FROM information_schema.INNODB_TRX")) and time.monotonic() < deadline:
            time.sleep(0.5)
        in_flight = int(c.scalar("SELECT COUNT(*) FROM information_schema.INNODB_TRX"))
        rows = c.query(f"SELECT token, COUNT(*) FROM {table} GROUP BY token")
        sb = []
        for t in range(1, tables + 1):
            n, lo, hi = c.query(f"SELECT COUNT(*), MIN(id), MAX(id) FROM {SB_DB}.sbtest{t}")[0]
            sb.append({"table": f"sbtest{t}", "rows": int(n), "min_id": int(lo or 0), "max_id": int(hi or 0),
                       "ok": int(n) == table_size and int(lo or 0) == 1 and int(hi or 0) == table_size})
    finally:
        c.close()
    present = {tok: int(n) for tok, n in rows}
    acked: set[str] = set()
    err: dict[str, str] = {}
    amb: dict[str, str] = {}
    attempted: set[str] = set()
    for w in writers:
        acked |= set((wd / f"audit-w{w.n}.acked").read_text().split())
        for kind, d in (("err", err), ("ambiguous", amb)):
            for line in (wd / f"audit-w{w.n}.{kind}").read_text().splitlines():
                tok, _, msg = line.split("\t", 2)
                d[tok] = msg
        attempted |= {f"{w.prefix}{i}" for i in range(1, w.seq + 1)}
    missing = sorted(acked - present.keys())
    dups = {t: n for t, n in present.items() if n > 1}
    phantom = sorted(present.keys() - attempted)
    err_present = {t: err[t] for t in err if t in present}
    amb_present = {t: amb[t] for t in amb if t in present}
    unlogged = present.keys() & attempted - acked - err.keys() - amb.keys()
    return {
        "audit": {
            "attempted": len(attempted), "acked": len(acked), "rows_in_table": sum(present.values()),
            "distinct_tokens_in_table": len(present), "missing_acked": len(missing),
            "missing_examples": missing[:20], "duplicates": len(dups),
            "duplicate_examples": dict(list(dups.items())[:20]), "phantom": len(phantom),
            "errors_err_packet": len(err), "errors_err_packet_but_present": len(err_present),
            "err_present_examples": dict(list(err_present.items())[:10]),
            "ambiguous": len(amb), "ambiguous_present": len(amb_present),
            "ambiguous_absent": len(amb) - len(amb_present),
            "present_but_not_in_any_log": len(unlogged),
            "err_messages": top_messages(err.values()), "ambiguous_messages": top_messages(amb.values()),
        },
        "sysbench_tables": sb,
        "innodb_trx_in_flight_at_check": in_flight,
    }


def latency_stats(v: list[float]) -> dict:
    if not v:
        return {}
    v = sorted(v)
    pick = lambda q: round(v[min(len(v) - 1, int(q * len(v)))], 3)  # noqa: E731
    return {"n": len(v), "p50": pick(0.5), "p99": pick(0.99), "max": round(v[-1], 3)}


def longest_gap(acks: list[tuple[float, float]], end: float) -> dict:
    """Longest time with no audit insert acknowledged by any writer."""
    times = sorted(x[1] for x in acks)
    best = (0.0, 0.0, 0.0)
    prev = 0.0
    for t in times + [end]:
        if t - prev > best[0]:
            best = (t - prev, prev, t)
        prev = t
    return {"seconds": round(best[0], 2), "from_t_s": round(best[1], 2), "to_t_s": round(best[2], 2)}


def top_messages(msgs, n: int = 8) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for m in msgs:
        m = re.sub(r"\d{4,}", "N", m)[:160]
        counts[m] = counts.get(m, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:n]


def other_load(ours: set[int]) -> dict:
    """Load average, and database/benchmark processes on the machine that this run did not start."""
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if int(pid) not in ours and comm in ("mariadbd", "mysqld", "sysbench", "funnel", "funnel-bin"):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                procs.append(f"{pid} {args[:150]}")
    return {"loadavg": os.getloadavg(), "foreign_processes": procs}


def funnel_log_summary(path: Path) -> dict:
    text = path.read_text(errors="replace") if path.exists() else ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes
    lines = text.splitlines()
    bad = [ln for ln in lines if re.search(r"panic|ERROR|FATAL|overflow|abort", ln)]
    norm: dict[str, int] = {}
    for ln in lines:
        k = re.sub(r"^\S+\s+", "", ln)  # drop the timestamp
        k = re.sub(r"\d+", "N", k)[:200]
        norm[k] = norm.get(k, 0) + 1
    return {"lines": len(lines), "bad_lines": len(bad), "bad_first": bad[:15],
            "top": sorted(norm.items(), key=lambda kv: -kv[1])[:15], "first": lines[:5], "last": lines[-10:]}


# ---------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=seconds, default=seconds("30m"), help="sysbench run time (30m)")
    p.add_argument("--threads", type=int, default=2048)
    p.add_argument("--kill-every", type=seconds, default=seconds("180s"))
    p.add_argument("--warmup", type=seconds, default=None,
                   help="no kill and no RSS/fd verdict before this (default: min(120s, duration/6))")
    p.add_argument("--down-time", type=seconds, default=seconds("5s"), help="backend dead this long per kill")
    p.add_argument("--quiet-end", type=seconds, default=None,
                   help="no kill in the last part of the run (default: min(90s, kill-every/2))")
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=10000)
    p.add_argument("--ps-mode", default="disable", help="sysbench --db-ps-mode (disable|auto)")
    p.add_argument("--ignore-errors", default="all", help="sysbench --mysql-ignore-errors")
    p.add_argument("--report-interval", type=int, default=5)
    p.add_argument("--audit-writers", type=int, default=16)
    p.add_argument("--audit-key", choices=("sysbench", "benchlib"), default="sysbench",
                   help="audit writers log in with sysbench's (libmariadb's) capability flags, or with benchlib "
                        "MiniConn's own; Funnel pools by these flags, see AuditConn")
    p.add_argument("--audit-rate", type=float, default=50.0, help="max inserts/s per audit writer (0 = no cap)")
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--flat-tolerance", type=float, default=0.10)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--pool-per-core", type=int, default=16)
    p.add_argument("--wait-timeout", default="60s",
                   help="Funnel backlog.wait_timeout (2048 clients share 32 backend connections: waits of ~10 s are normal)")
    p.add_argument("--max-connections", type=int, default=200, help="MariaDB max_connections")
    p.add_argument("--buffer-pool", default="512M")
    p.add_argument("--out", default=None, help="results directory (default bench/results/<date>-<host>)")
    p.add_argument("--name", default="soak")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument("--label", default="", help="free text for the report header")
    a = p.parse_args()
    warmup = a.warmup if a.warmup is not None else min(120.0, a.duration / 6)
    quiet_end = a.quiet_end if a.quiet_end is not None else min(90.0, a.kill_every / 2)

    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    wd = workdir("funnel-soak-")
    command = " ".join([sys.executable, *sys.argv])
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    log(f"workdir {wd}")
    with Cleanup() as cleanup:
        if not a.keep_workdir:
            cleanup.push(lambda: shutil.rmtree(wd, ignore_errors=True))
        db = MariaDB.start(wd / "db", "soak", max_connections=a.max_connections, buffer_pool=a.buffer_pool)
        backend = Backend(db)
        cleanup.push(backend.stop)
        db.prepare_sysbench(a.tables, a.table_size)
        db.sql(f"CREATE TABLE {AUDIT_TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY, token VARCHAR(64) NOT NULL, "
               "writer INT NOT NULL, ts TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (token)) "
               "ENGINE=InnoDB")
        binary = Funnel.private_binary(wd)
        metrics_port = free_port()
        funnel = Funnel.start(wd, binary, db.port, a.cores, a.pool_per_core, wait_timeout=a.wait_timeout,
                              metrics_port=metrics_port)
        cleanup.push(funnel.stop)
        info = machine_info()
        info["funnel_binary"] = Funnel.binary_info(binary)
        load_before = other_load({backend.pid, funnel.pid})

        sb_cmd = ["sysbench", "oltp_read_write", *sysbench_conn_args(funnel.port), f"--tables={a.tables}",
                  f"--table-size={a.table_size}", f"--threads={a.threads}", f"--time={int(a.duration)}",
                  f"--report-interval={a.report_interval}", "--percentile=95", f"--db-ps-mode={a.ps_mode}",
                  f"--mysql-ignore-errors={a.ignore_errors}", "run"]
        log(f"sysbench: {' '.join(sb_cmd)}")
        run_id = f"s{int(time.time())}"
        stop_writers = threading.Event()
        t0 = time.monotonic()
        sb_out = open(wd / "sysbench.out", "w+")
        sb = subprocess.Popen(sb_cmd, stdout=sb_out, stderr=subprocess.STDOUT, start_new_session=True)
        cleanup.push(lambda: sb.poll() is None and sb.kill())
        conn_cls = AuditConn if a.audit_key == "sysbench" else MiniConn
        writers = [AuditWriter(i, funnel.port, wd, run_id, stop_writers, t0, a.audit_rate, conn_cls=conn_cls)
                   for i in range(1, a.audit_writers + 1)]
        for w in writers:
            w.start()
        sampler = Sampler(funnel.pid, a.sample_every, t0, backend, writers, out / f"{a.name}.csv")
        sampler.start()

        kills: list[dict] = []
        next_kill = warmup
        hard_end = a.duration + 180
        hung = False
        while sb.poll() is None:
            now = time.monotonic() - t0
            if now > hard_end:
                log("sysbench did not finish in time: killing it (counted as a hang)")
                hung = True
                sb.kill()
                break
            if funnel.proc.poll() is not None:
                log(f"Funnel exited with {funnel.proc.returncode} during the run")
                break
            if now >= next_kill and now < a.duration - quiet_end:
                k = {"n": len(kills) + 1}
                log(f"kill #{k['n']} at {now:.0f}s: SIGKILL mariadbd pid {backend.pid}")
                k["t_kill"] = round(backend.kill() - t0, 2)
                time.sleep(a.down_time)
                k["t_restart"] = round(time.monotonic() - t0, 2)
                ready = backend.restart()
                k["t_backend_ready"] = round(ready - t0, 2) if ready else None
                log(f"  backend back after {fmt_s(ready - t0 - k['t_kill'] if ready else None)} s (pid {backend.pid})")
                kills.append(k)
                if ready is None:
                    log("MariaDB did not come back; stopping the run")
                    sb.kill()
                    break
                next_kill += a.kill_every
            time.sleep(0.2)
        with contextlib.suppress(Exception):
            sb.wait(timeout=30)
        t_sb_end = time.monotonic() - t0
        log(f"sysbench ended after {t_sb_end:.0f}s (rc {sb.returncode}); stopping audit writers")
        stop_writers.set()
        for w in writers:
            w.join(timeout=60)
        # Funnel with no clients left: fds and RSS should fall back.
        time.sleep(10)
        idle_after = sampler.sample()
        sampler.finish()
        funnel_alive = funnel.proc.poll() is None
        load_after = other_load({backend.pid, funnel.pid})
        metrics_text = ""
        with contextlib.suppress(Exception):
            metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            (wd / "metrics.txt").write_text(metrics_text)

        sb_out.seek(0)
        sb_text = sb_out.read()
        sb_out.close()
        final = parse_sysbench(sb_text, sb.returncode if sb.returncode is not None else -1)
        intervals = parse_intervals(sb_text)

        log("verifying writes directly on MariaDB")
        v = verify(db.port, a.tables, a.table_size, writers, wd)

        # Recovery after each kill: first audit insert sent after the kill and acked.
        acks = sorted(x for w in writers for x in w.acks)
        for k in kills:
            after = [x for x in acks if x[0] >= k["t_kill"]]
            first = min((x[1] for x in after), default=None)
            k["t_first_ack_after"] = round(first, 2) if first is not None else None
            k["kill_to_first_ack_s"] = round(first - k["t_kill"], 2) if first is not None else None
            k["ready_to_first_ack_s"] = (round(first - k["t_backend_ready"], 2)
                                         if first is not None and k["t_backend_ready"] else None)
            k["audit_errors_in_window"] = sum(1 for w in writers for t, _ in w.errs
                                              if k["t_kill"] <= t <= (first or k["t_kill"]))
            k["audit_ambiguous_in_window"] = sum(1 for w in writers for t, _ in w.ambiguous
                                                 if k["t_kill"] - 1 <= t <= (first or k["t_kill"]))
            near = [iv for iv in intervals if k["t_kill"] <= iv["t_s"] <= k["t_kill"] + 60]
            k["sysbench_tps_60s_after"] = [iv["tps"] for iv in near]
            rec = next((iv["t_s"] for iv in near if iv["t_s"] > (k["t_backend_ready"] or 0) and iv["tps"] > 0), None)
            k["sysbench_first_interval_with_tps_after_ready_s"] = rec

        # Max stall: longest run of intervals with tps == 0.
        stall, longest = 0, 0
        for iv in intervals:
            stall = stall + a.report_interval if iv["tps"] == 0 else 0
            longest = max(longest, stall)
        steady = [iv["tps"] for iv in intervals
                  if iv["t_s"] > warmup and not any(k["t_kill"] - a.report_interval <= iv["t_s"] <= (k["t_first_ack_after"] or k["t_kill"]) + a.report_interval for k in kills)]
        rows = sampler.rows
        load_end = t_sb_end - a.sample_every
        rss = flat_verdict(rows, "rss_kib", warmup, load_end, a.flat_tolerance)
        fds = flat_verdict(rows, "fds", warmup, load_end, a.flat_tolerance)
        first_loaded = next((r for r in rows if r["t_s"] >= 10), rows[0] if rows else None)
        flog = funnel_log_summary(funnel.dir / "funnel.log")
        # Keep the evidence next to the report when there was a problem.
        problems = []
        if v["audit"]["missing_acked"]:
            problems.append(f"{v['audit']['missing_acked']} acknowledged audit inserts are missing")
        if v["audit"]["duplicates"]:
            problems.append(f"{v['audit']['duplicates']} audit tokens are present more than once")
        if v["audit"]["phantom"]:
            problems.append(f"{v['audit']['phantom']} audit tokens present that were never sent")
        bad_tables = [t for t in v["sysbench_tables"] if not t["ok"]]
        if bad_tables:
            problems.append(f"sysbench tables with wrong row count/ids: {bad_tables}")
        if not funnel_alive:
            problems.append(f"Funnel exited (rc {funnel.proc.returncode})")
        if hung:
            problems.append("sysbench did not finish within duration + 180 s")
        if any(k["t_first_ack_after"] is None for k in kills):
            problems.append("no audit insert succeeded after some kill")
        if rss.get("verdict") != "flat":
            problems.append(f"RSS not flat: {rss}")
        if fds.get("verdict") != "flat":
            problems.append(f"open fds not flat: {fds}")
        if flog["bad_lines"]:
            problems.append(f"{flog['bad_lines']} panic/ERROR lines in funnel.log")

        result = {
            "started": started, "command": command, "sysbench_command": " ".join(sb_cmd),
            "args": {**vars(a), "warmup_effective": warmup, "quiet_end_effective": quiet_end},
            "machine": info, "workdir": str(wd), "label": a.label,
            "other_load": {"before": load_before, "after": load_after},
            "audit_acks_per_minute": [sum(1 for x in acks if m * 60 < x[1] <= (m + 1) * 60)
                                      for m in range(int(a.duration // 60) + 1)],
            "audit_ack_latency_max_per_minute": [round(max((x[1] - x[0] for x in acks if m * 60 < x[1] <= (m + 1) * 60),
                                                           default=0), 2) for m in range(int(a.duration // 60) + 1)],
            "audit_ack_latency_s": latency_stats([x[1] - x[0] for x in acks]),
            "audit_longest_gap_without_ack": longest_gap(acks, t_sb_end),
            "sysbench": {k: getattr(final, k) for k in ("ok", "reason", "rc", "tps", "qps", "transactions", "queries",
                                                          "errors", "reconnects", "total_time_s", "lat_avg_ms",
                                                          "lat_p95_reported_ms", "lat_max_ms")},
            "sysbench_tps_steady_median": statistics.median(steady) if steady else None,
            "sysbench_longest_zero_tps_s": longest,
            # sysbench counts its interval times from after all its threads connected.
            "sysbench_start_offset_s": round(t_sb_end - final.total_time_s, 1) if final.total_time_s else None,
            "sysbench_intervals": intervals,
            "kills": kills,
            "verification": v,
            "audit_writers": [{"n": w.n, "sent": w.seq, "acked": len(w.acks), "err": len(w.errs),
                               "ambiguous": len(w.ambiguous), "connects": w.connects,
                               "connect_failures": w.connect_failures} for w in writers],
            "funnel": {"alive_at_end": funnel_alive, "rss_kib": rss, "fds": fds,
                       "first_sample_under_load": first_loaded, "idle_after_run": idle_after,
                       "max_rss_kib": max((r["rss_kib"] for r in rows), default=None),
                       "max_fds": max((r["fds"] for r in rows), default=None),
                       "log": flog,
                       "metrics_excerpt": [ln for ln in metrics_text.splitlines()
                                           if not ln.startswith("#") and re.search(r"error|fail|down|reconnect|broken|backend_conn", ln)][:40]},
            "problems": problems,
        }
        (out / f"{a.name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        (out / f"{a.name}.md").write_text(render_md(result, a, warmup, quiet_end))
        log(f"wrote {out}/{a.name}.json, .md, .csv")
        if problems:
            log("PROBLEMS: " + "; ".join(problems))
            if not a.keep_workdir:
                keep = out / f"{a.name}.evidence"
                keep.mkdir(exist_ok=True)
                for f in ["funnel/funnel.log", "sysbench.out", "db/error.log"]:
                    with contextlib.suppress(Exception):
                        shutil.copy2(wd / f, keep / Path(f).name)
        return 1 if problems else 0


def render_md(r: dict, a, warmup: float, quiet_end: float) -> str:
    m, s, v, f = r["machine"], r["sysbench"], r["verification"], r["funnel"]
    au = v["audit"]
    L = []
    L.append(f"# Soak: sysbench oltp_read_write through Funnel, backend SIGKILLed every {a.kill_every:.0f} s\n")
    L.append(f"Run started {r['started']} on {m.get('hostname')} ({m.get('cpus')} CPUs, {m.get('cpu_model', '?')}, "
             f"{(m.get('mem_kib') or 0) // 1024} MiB RAM, kernel {m.get('kernel')}). Everything (MariaDB, Funnel, "
             "sysbench, the audit writers) shares these CPUs.\n")
    if r.get("label"):
        L.append(f"{r['label']}\n")
    ol = r.get("other_load", {})
    for when in ("before", "after"):
        x = ol.get(when)
        if x:
            L.append(f"* Load average {when} the run: {' '.join(f'{v:.2f}' for v in x['loadavg'])}; database/benchmark "
                     f"processes not started by this run: {len(x['foreign_processes'])}"
                     + (" (" + "; ".join(f"`{fp[:90]}`" for fp in x['foreign_processes']) + ")" if x['foreign_processes'] else ""))
    L.append(f"* {m.get('mariadb')}; {m.get('sysbench')}; Funnel commit {m.get('funnel_commit')} "
             f"(crates dirty: {m.get('funnel_crates_dirty')}), binary {f and r['machine']['funnel_binary']}")
    L.append(f"* Command: `{r['command']}`")
    L.append(f"* sysbench: `{r['sysbench_command']}`")
    L.append(f"* Funnel: cores {a.cores}, pool.max_per_core {a.pool_per_core} (= {a.cores * a.pool_per_core} backend "
             f"connections max), backlog.wait_timeout {a.wait_timeout}; MariaDB max_connections {a.max_connections}, "
             f"buffer pool {a.buffer_pool}, innodb_flush_log_at_trx_commit=2 (a mariadbd SIGKILL loses nothing "
             "committed: the log is in the OS page cache), skip-log-bin.")
    L.append(f"* Duration {a.duration:.0f} s, {a.threads} sysbench threads, warm-up {warmup:.0f} s, first kill at "
             f"{warmup:.0f} s then every {a.kill_every:.0f} s, backend down {a.down_time:.0f} s per kill before the "
             f"restart, no kill in the last {quiet_end:.0f} s. {a.audit_writers} audit writers, <= {a.audit_rate:g} "
             f"inserts/s each, logging in with {getattr(a, 'audit_key', 'benchlib')}'s capability flags.\n")
    L.append("## Verdict\n")
    if r["problems"]:
        L.append("**Problems found:**\n")
        L += [f"* {p}" for p in r["problems"]]
    else:
        L.append("No problem found: no acknowledged write lost, no statement ran twice, sysbench tables consistent, "
                 "Funnel alive and recovered after every kill, RSS and fds flat.")
    L.append("")
    L.append("## Writes\n")
    L.append("| audit inserts | count |\n|---|---|")
    for k, label in [("attempted", "sent (one fresh token each)"), ("acked", "acknowledged (OK received, logged)"),
                     ("missing_acked", "**acknowledged but missing (lost)**"),
                     ("duplicates", "**tokens present more than once (ran twice)**"),
                     ("phantom", "present but never sent"),
                     ("errors_err_packet", "ERR packet (statement reported failed)"),
                     ("errors_err_packet_but_present", "ERR packet but the row is there"),
                     ("ambiguous", "ambiguous (connection lost / timeout after sending)"),
                     ("ambiguous_present", "ambiguous, row present"), ("ambiguous_absent", "ambiguous, row absent"),
                     ("rows_in_table", "rows in sbtest.soak_audit")]:
        L.append(f"| {label} | {au[k]} |")
    L.append("")
    if au["err_messages"]:
        L.append("ERR messages seen by the audit writers: " + "; ".join(f"`{msg}` x{n}" for msg, n in au["err_messages"]))
    if au["ambiguous_messages"]:
        L.append("\nAmbiguous failures: " + "; ".join(f"`{msg}` x{n}" for msg, n in au["ambiguous_messages"]))
    L.append(f"\nAudit insert latency (sent to OK, s): {r.get('audit_ack_latency_s')}. Longest time with no audit "
             f"insert acknowledged by any writer: {r.get('audit_longest_gap_without_ack')}.")
    L.append("\nRule: every acknowledged token must be in the table exactly once; a token that failed may be there "
             "0 or 1 times (a failed insert is never retried with the same token, so any count > 1 means one "
             "statement ran twice).\n")
    L.append("sysbench tables after the run (no InnoDB transaction in flight: "
             f"{v['innodb_trx_in_flight_at_check'] == 0}); each must hold exactly {a.table_size} rows, ids 1..{a.table_size}:\n")
    L.append("| table | rows | min id | max id | ok |\n|---|---|---|---|---|")
    for t in v["sysbench_tables"]:
        L.append(f"| {t['table']} | {t['rows']} | {t['min_id']} | {t['max_id']} | {'yes' if t['ok'] else '**NO**'} |")
    L.append("")
    L.append("## Throughput through the kills\n")
    L.append(f"sysbench total: {s['tps']} tps, {s['qps']} qps, {s['transactions']} transactions, "
             f"{s['errors']} ignored errors, {s['reconnects']} reconnects, avg latency {s['lat_avg_ms']} ms, "
             f"p95 {s['lat_p95_reported_ms']} ms, max {s['lat_max_ms']} ms; rc {s['rc']} ({s['reason'] or 'ok'}). "
             f"Median tps of intervals after warm-up away from kills: {r['sysbench_tps_steady_median']}. "
             f"Longest stretch with 0 tps: {r['sysbench_longest_zero_tps_s']} s. Times below are seconds since sysbench "
             f"was started; sysbench's own interval clock starts about {r.get('sysbench_start_offset_s')} s later "
             "(after its threads connected).\n")
    L.append("| kill | at s | backend answering after s | first audit ack after kill s | ack after backend ready s "
             "| audit ERR / ambiguous meanwhile | sysbench tps, 60 s after the kill (5 s intervals) |")
    L.append("|---|---|---|---|---|---|---|")
    for k in r["kills"]:
        ready = (k["t_backend_ready"] - k["t_kill"]) if k["t_backend_ready"] else None
        L.append(f"| {k['n']} | {k['t_kill']:.0f} | {fmt_s(ready)} | {fmt_s(k['kill_to_first_ack_s'])} | "
                 f"{fmt_s(k['ready_to_first_ack_s'])} | {k['audit_errors_in_window']} / {k['audit_ambiguous_in_window']} | "
                 f"{' '.join(f'{x:.0f}' for x in k['sysbench_tps_60s_after'])} |")
    L.append("")
    # Per-minute summary of the intervals.
    L.append("sysbench per minute (from the 5 s interval reports):\n")
    L.append("| minute | tps avg | tps min | qps avg | err/s avg | reconn/s avg | p95 ms max | audit acks "
             "| audit ack max latency s | kill in it |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    apm = r.get("audit_acks_per_minute") or []
    alm = r.get("audit_ack_latency_max_per_minute") or []
    ivs = r["sysbench_intervals"]
    for minute in range(0, int(a.duration // 60) + 1):
        g = [iv for iv in ivs if minute * 60 < iv["t_s"] <= (minute + 1) * 60]
        if not g:
            continue
        kill = any(minute * 60 <= k["t_kill"] < (minute + 1) * 60 for k in r["kills"])
        L.append(f"| {minute + 1} | {statistics.fmean(x['tps'] for x in g):.0f} | {min(x['tps'] for x in g):.0f} | "
                 f"{statistics.fmean(x['qps'] for x in g):.0f} | {statistics.fmean(x['err_s'] for x in g):.1f} | "
                 f"{statistics.fmean(x['reconn_s'] for x in g):.2f} | {max(x['p95_ms'] for x in g):.0f} | "
                 f"{apm[minute] if minute < len(apm) else '-'} | {alm[minute] if minute < len(alm) else '-'} | "
                 f"{'yes' if kill else ''} |")
    L.append("")
    L.append("## Funnel RSS and open fds\n")
    L.append(f"Sampled every {a.sample_every:.0f} s (`VmRSS`, `ls /proc/PID/fd`), CSV in `{a.name}.csv`. Rule: *flat* "
             f"if the end value (median of the last 6 samples under load) is within {a.flat_tolerance * 100:.0f}% of "
             f"the median of all samples after the {warmup:.0f} s warm-up; the least-squares slope over the "
             "post-warm-up samples is given as well.\n")
    L.append("| | first sample under load | at warm-up end | post-warm-up median | max | end | end vs median | slope /min "
             "| change over run by slope | verdict | idle, 10 s after sysbench |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    fl, ia = f["first_sample_under_load"] or {}, f["idle_after_run"] or {}
    for key, label, vd in (("rss_kib", "RSS KiB", f["rss_kib"]), ("fds", "open fds", f["fds"])):
        if "post_warmup_median" not in vd:
            L.append(f"| {label} | {vd} |")
            continue
        L.append(f"| {label} | {fl.get(key)} | {vd['at_warmup_end']} | {vd['post_warmup_median']} | "
                 f"{vd['post_warmup_max']} | {vd['end']} | {vd['end_vs_median_pct']}% | {vd['slope_per_min']} | "
                 f"{vd['slope_over_run_pct_of_median']}% | {vd['verdict']} | {ia.get(key)} |")
    L.append(f"\nFunnel alive at the end: {f['alive_at_end']}. funnel.log (level warn): {f['log']['lines']} lines, "
             f"{f['log']['bad_lines']} with panic/ERROR.")
    if f["log"]["top"]:
        L.append("\nMost frequent funnel.log lines (digits replaced by N):\n\n```")
        L += [f"{n:7d}  {line}" for line, n in f["log"]["top"][:10]]
        L.append("```")
    if f["log"]["bad_first"]:
        L.append("\nFirst panic/ERROR lines:\n\n```")
        L += f["log"]["bad_first"]
        L.append("```")
    if f["metrics_excerpt"]:
        L.append("\nFunnel /metrics at the end (error/failure/backend lines):\n\n```")
        L += f["metrics_excerpt"]
        L.append("```")
    L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    run_script(main)

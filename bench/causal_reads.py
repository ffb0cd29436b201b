#!/usr/bin/env python3
"""What `causal_reads` costs: sysbench read/write through the read/write split, with and without it.

A throwaway writer MariaDB (`--log-bin --server-id=1`) and a read-only replica (`--server-id=2
--read-only`) that replicates from it with GTIDs (`MASTER_USE_GTID=slave_pos`). The sysbench tables
are prepared on the writer and reach the replica through replication. One Funnel in front, with
hostgroups `writer` and `readers` and two users of the same password: `sbtest` (plain read/write
split) and `causal` (`causal_reads: true`). For each round, workload and thread count, sysbench runs
back to back, in an order that rotates from point to point, against:

  direct   the writer itself (no split, every read sees every write): the reference
  plain    Funnel as user sbtest: reads go to the replica, which may lag
  causal   Funnel as user causal: after each write Funnel reads @@last_gtid on the writer
           connection; a later read on the replica first waits there (MASTER_GTID_WAIT) unless a
           wait already saw the replica reach that position, and goes to the writer when the
           replica is later than causal_reads_timeout
  universal  (only with --targets naming it) Funnel as user universal (`causal_reads:
           universal`): before each read for the replica Funnel reads the writer's
           @@global.gtid_binlog_pos (shared by the reads of a core that arrive together) and the
           replica waits for it, so every read sees every write committed before it

Workloads: `oltp_read_write --skip_trx=on` (autocommit statements: every write is followed by a
read-back of its GTID, and the next event's reads go to the replica after it) and `oltp_read_write`
(transactions: reads inside stay on the writer; only the COMMIT's GTID is read back).

Per run it records sysbench's tps, qps, p95 and errors; Funnel's SHOW STATS counters (admin port)
causal_waits, causal_waits_skipped, causal_reads_on_writer; the SELECTs each server ran (Com_select:
the read-backs on the writer, the reads and waits on the replica); Funnel's CPU per query; how long
the replica took to catch up after the run (each run starts with it caught up); and a read-your-writes
probe: one extra client of the run's user that updates its own row, reads it back at once, and counts
stale answers and which server gave them (every 10 ms, so it adds little load). At the end it checks
that replication is still healthy: both replication threads running, no error, the replica at the
writer's GTID position, and the same CHECKSUM TABLE on both servers.

Writes <name>.json and <name>.md to --out (default bench/results/<date>-<host>/). The servers and
Funnel are stopped by PID at the end, on errors and on Ctrl-C.

  python3 bench/causal_reads.py                     # threads 8 64, 10 s, 3 rounds (~9 min)
  python3 bench/causal_reads.py --targets "direct plain causal universal" --workloads autocommit
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    SB_DB, SB_PASSWORD, SB_USER, Cleanup, Funnel, MariaDB, MiniConn, MySQLError, default_results_dir,
    free_port, log, machine_info, proc_cpu_ns, raise_nofile, run_script, run_sysbench, workdir,
    write_report,
)

CAUSAL_USER = "causal"
UNIVERSAL_USER = "universal"
TARGETS = ["direct", "plain", "causal", "universal"]
DEFAULT_TARGETS = "direct plain causal"
WORKLOADS = {"autocommit": ["--skip_trx=on"], "transactions": []}
COUNTERS = ["causal_waits", "causal_waits_skipped", "causal_reads_on_writer", "causal_position_reads",
            "causal_positions_shared", "queries", "funnel_errors"]
# sysbench's own default list, plus a duplicate key: with --skip_trx two threads that draw the
# same id can both delete it and then both insert it.
IGNORE_ERRORS = "1213,1020,1205,1062"


def start_pair(work: Path, buffer_pool: str, cleanup: Cleanup) -> tuple[MariaDB, MariaDB]:
    """The writer with a binary log and a read-only replica replicating from it by GTID."""
    writer = MariaDB.start(work / "writer", "writer", buffer_pool=buffer_pool,
                           extra=["--log-bin=binlog", "--server-id=1"])
    cleanup.push(writer.stop)
    replica = MariaDB.start(work / "replica", "replica", buffer_pool=buffer_pool,
                            extra=["--server-id=2", "--read-only"])
    cleanup.push(replica.stop)
    if writer.sql("SELECT @@log_bin")[0][0] != "1":
        raise RuntimeError("the writer has no binary log")
    writer.sql("CREATE USER repl@'%' IDENTIFIED BY 'rpw'", "GRANT REPLICATION SLAVE ON *.* TO repl@'%'",
               "RESET MASTER")
    replica.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={writer.port}, MASTER_USER='repl', "
                "MASTER_PASSWORD='rpw', MASTER_USE_GTID=slave_pos", "START SLAVE")
    return writer, replica


def catch_up(writer: MariaDB, replica: MariaDB, limit: float = 300) -> float:
    """Waits until the replica has applied everything the writer logged so far; returns the seconds."""
    pos = writer.sql("SELECT @@global.gtid_binlog_pos")[0][0]
    started = time.monotonic()
    c = replica.root(timeout=limit + 10)
    try:
        got = c.scalar(f"SELECT MASTER_GTID_WAIT('{pos}', {limit})")
    finally:
        c.close()
    if got != "0":
        raise RuntimeError(f"the replica did not reach {pos} within {limit} s: {replication_status(replica)}")
    return round(time.monotonic() - started, 3)


def replication_status(replica: MariaDB) -> dict:
    c = replica.root()
    try:
        rows = c.named("SHOW SLAVE STATUS")
    finally:
        c.close()
    if not rows:
        return {"configured": False}
    keys = ["Slave_IO_Running", "Slave_SQL_Running", "Last_IO_Errno", "Last_IO_Error", "Last_SQL_Errno",
            "Last_SQL_Error", "Seconds_Behind_Master", "Gtid_IO_Pos"]
    return {k: rows[0].get(k) for k in keys}


def status(db: MariaDB, names: list[str]) -> dict[str, int]:
    rows = db.sql("SHOW GLOBAL STATUS WHERE Variable_name IN (" + ",".join(f"'{n}'" for n in names) + ")")
    return {k: int(v) for k, v in rows}


def admin_stats(port: int) -> dict[str, int]:
    """SHOW STATS totals (all cores) from Funnel's admin port."""
    c = MiniConn("127.0.0.1", port, "admin", "admin")
    try:
        return {n: int(v) for scope, n, v in c.query("SHOW STATS") if scope == "all" and v.isdigit()}
    finally:
        c.close()


class Probe:
    """One client of the run's user: UPDATE its own row to a new value, read it back at once,
    every `every` seconds; counts the reads that missed the write, and who answered."""

    def __init__(self, port: int, user: str, row: int, ports: dict[str, str], every: float = 0.01):
        self.port, self.user, self.row, self.ports, self.every = port, user, row, ports, every
        self.checks = self.stale = self.errors = 0
        self.served: dict[str, int] = {}
        self.first_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            c = MiniConn("127.0.0.1", self.port, self.user, SB_PASSWORD, SB_DB)
        except (OSError, MySQLError) as e:
            self.errors, self.first_error = 1, str(e)
            return
        try:
            c.query(f"INSERT INTO causal_probe VALUES ({self.row}, 0)")
            v = 0
            while not self._stop.wait(self.every):
                v += 1
                try:
                    c.query(f"UPDATE causal_probe SET v = {v} WHERE id = {self.row}")
                    got, port = c.query(f"SELECT v, @@port FROM causal_probe WHERE id = {self.row}")[0]
                except (OSError, MySQLError, IndexError) as e:
                    self.errors += 1
                    self.first_error = self.first_error or str(e)
                    continue
                self.checks += 1
                self.stale += got != str(v)
                who = self.ports.get(port, port)
                self.served[who] = self.served.get(who, 0) + 1
        except (OSError, MySQLError) as e:
            self.errors += 1
            self.first_error = self.first_error or str(e)
        finally:
            c.close()

    def __enter__(self) -> "Probe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def users_yaml(timeout: str) -> str:
    def user(name: str, causal: bool | str) -> str:
        return (f"  - name: {name}\n    password: {SB_PASSWORD}\n    default_schema: {SB_DB}\n"
                f"    default_hostgroup: writer\n    read_hostgroup: readers\n"
                f"    causal_reads: {str(causal).lower()}\n    causal_reads_timeout: {timeout}\n")
    return user(SB_USER, False) + user(CAUSAL_USER, True) + user(UNIVERSAL_USER, "universal")


def backends_yaml(writer: MariaDB, replica: MariaDB) -> str:
    return "".join(f"  - name: {name}\n    address: 127.0.0.1:{db.port}\n    user: {SB_USER}\n"
                   f"    password: {SB_PASSWORD}\n    hostgroup: {hg}\n"
                   for name, db, hg in (("w", writer, "writer"), ("r", replica, "readers")))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="8 64")
    p.add_argument("--workloads", default="autocommit transactions",
                   help="autocommit (oltp_read_write --skip_trx=on), transactions (oltp_read_write)")
    p.add_argument("--targets", default=DEFAULT_TARGETS, help=f"any of {' '.join(TARGETS)}")
    p.add_argument("--time", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--table-size", type=int, default=100000)
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--pool", type=int, default=16, help="pool.max_per_core (per backend)")
    p.add_argument("--causal-timeout", default="1s", help="users[].causal_reads_timeout")
    p.add_argument("--buffer-pool", default="512M", help="innodb_buffer_pool_size of each server")
    p.add_argument("--out", default=None)
    p.add_argument("--name", default="causal_reads")
    p.add_argument("--label", default="")
    p.add_argument("--report", metavar="JSON", help="only rewrite the .md next to this results JSON")
    a = p.parse_args(argv)
    if a.report:
        src = Path(a.report)
        src.with_suffix(".md").write_text(markdown(json.loads(src.read_text())))
        return 0
    workloads = a.workloads.split()
    if not workloads or any(w not in WORKLOADS for w in workloads):
        p.error(f"--workloads: any of {' '.join(WORKLOADS)}")
    threads = [int(x) for x in a.threads.split()]
    targets = a.targets.split()
    if not targets or any(t not in TARGETS for t in targets):
        p.error(f"--targets: any of {' '.join(TARGETS)}")
    raise_nofile()
    out = Path(a.out) if a.out else default_results_dir()
    out.mkdir(parents=True, exist_ok=True)
    work = workdir("funnel-causal-")
    runs: list[dict] = []
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(a), "machine": machine_info(),
           "runs": runs}
    ok = False
    with Cleanup() as cleanup:
        cleanup.push(lambda: ok and shutil.rmtree(work, ignore_errors=True))
        writer, replica = start_pair(work, a.buffer_pool, cleanup)
        writer.prepare_sysbench(a.tables, a.table_size)
        writer.sql(f"CREATE TABLE {SB_DB}.causal_probe (id INT PRIMARY KEY, v BIGINT NOT NULL)")
        log(f"replica catching up after the prepare: {catch_up(writer, replica)} s")
        for t in range(1, a.tables + 1):  # a warm buffer pool on the replica too
            replica.sql(f"SELECT COUNT(*), SUM(LENGTH(c)) FROM {SB_DB}.sbtest{t}")
        binary = Funnel.private_binary(work)
        res["funnel_binary"] = Funnel.binary_info(binary)
        admin = free_port()
        funnel = Funnel.start(work, binary, writer.port, a.cores, a.pool, users_yaml=users_yaml(a.causal_timeout),
                              backends_yaml=backends_yaml(writer, replica),
                              extra_yaml=(f"monitor:\n  interval: 500ms\nadmin:\n  listen: 127.0.0.1:{admin}\n"
                                          "  user: admin\n  password: admin\n"))
        cleanup.push(funnel.stop)
        res["funnel_config"] = (funnel.dir / "funnel.yaml").read_text()
        time.sleep(2)  # the monitor has seen both backends
        ports = {str(writer.port): "writer", str(replica.port): "replica"}
        target_of = {"direct": (writer.port, SB_USER), "plain": (funnel.port, SB_USER),
                     "causal": (funnel.port, CAUSAL_USER), "universal": (funnel.port, UNIVERSAL_USER)}
        for label in targets:  # warm-up: pools, caches, plan of every statement
            port, user = target_of[label]
            run_sysbench(port, "oltp_read_write", 8, 3, a.tables, a.table_size, user=user,
                         extra=["--skip_trx=on", f"--mysql-ignore-errors={IGNORE_ERRORS}"])
        catch_up(writer, replica)
        i = 0
        probe_row = 0
        for rnd in range(a.rounds):
            for wl in workloads:
                for n in threads:
                    order = targets[i % len(targets):] + targets[:i % len(targets)]
                    i += 1
                    for label in order:
                        time.sleep(2)
                        port, user = target_of[label]
                        probe_row += 1
                        s0 = admin_stats(admin)
                        w0 = status(writer, ["Com_select", "Questions"])
                        r0 = status(replica, ["Com_select"])
                        c0 = proc_cpu_ns(funnel.pid)
                        with Probe(port, user, probe_row, ports) as probe:
                            r = run_sysbench(port, "oltp_read_write", n, a.time, a.tables, a.table_size,
                                             user=user, extra=[*WORKLOADS[wl],
                                                               f"--mysql-ignore-errors={IGNORE_ERRORS}"],
                                             log_path=work / f"sysbench-{rnd}-{wl}-{n}-{label}.log")
                        cpu = proc_cpu_ns(funnel.pid) - c0
                        s1 = admin_stats(admin)
                        w1 = status(writer, ["Com_select", "Questions"])
                        r1 = status(replica, ["Com_select"])
                        lag = catch_up(writer, replica)
                        row = {"round": rnd, "workload": wl, "threads": n, "target": label, "ok": r.ok,
                               "reason": r.reason, "tps": r.tps, "qps": r.qps, "transactions": r.transactions,
                               "queries": r.queries, "errors": r.errors, "reconnects": r.reconnects,
                               "lat_avg_ms": r.lat_avg_ms, "lat_p95_ms": r.lat_p95_ms, "lat_p99_ms": r.lat_p99_ms,
                               "writer_selects": w1["Com_select"] - w0["Com_select"],
                               "writer_questions": w1["Questions"] - w0["Questions"],
                               "replica_selects": r1["Com_select"] - r0["Com_select"],
                               "catch_up_s": lag,
                               "probe": {"checks": probe.checks, "stale": probe.stale, "served": probe.served,
                                         "errors": probe.errors, "first_error": probe.first_error}}
                        if label != "direct":
                            row.update({k: s1.get(k, 0) - s0.get(k, 0) for k in COUNTERS})
                            row["funnel_us_per_query"] = round(cpu / 1000 / r.queries, 2) if r.queries else None
                        runs.append(row)
                        log(f"round {rnd} {wl} {n} threads {label}: {r.tps} tps, p95 {r.lat_p95_ms} ms, "
                            f"errors {r.errors}, waits {row.get('causal_waits')}, skipped "
                            f"{row.get('causal_waits_skipped')}, on writer {row.get('causal_reads_on_writer')}, "
                            f"positions {row.get('causal_position_reads')} "
                            f"(+{row.get('causal_positions_shared')} shared), "
                            f"probe {probe.stale}/{probe.checks} stale {probe.served}, catch-up {lag} s"
                            + ("" if r.ok else f" FAILED: {r.reason}"))
                        (out / f"{a.name}.partial.json").write_text(json.dumps(res, indent=1) + "\n")
        lag = catch_up(writer, replica)
        health = replication_status(replica)
        tables = ",".join(f"{SB_DB}.sbtest{t}" for t in range(1, a.tables + 1)) + f",{SB_DB}.causal_probe"
        sums_w = writer.sql(f"CHECKSUM TABLE {tables}")
        sums_r = replica.sql(f"CHECKSUM TABLE {tables}")
        res["replication"] = {
            "final_catch_up_s": lag, "status": health,
            "writer_gtid_binlog_pos": writer.sql("SELECT @@global.gtid_binlog_pos")[0][0],
            "replica_gtid_slave_pos": replica.sql("SELECT @@global.gtid_slave_pos")[0][0],
            "checksums_writer": sums_w, "checksums_replica": sums_r,
            "healthy": (health.get("Slave_IO_Running") == "Yes" and health.get("Slave_SQL_Running") == "Yes"
                        and health.get("Last_SQL_Errno") == "0" and health.get("Last_IO_Errno") == "0"
                        and sums_w == sums_r),
        }
        log(f"replication: {res['replication']['healthy'] and 'healthy' or 'NOT healthy'} {health}")
        ok = True
    (out / f"{a.name}.partial.json").unlink(missing_ok=True)
    write_report(out, a.name, res, markdown(res))
    return 0 if all(r["ok"] for r in runs) and res["replication"]["healthy"] else 1


def median(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def paired(at: list[dict], target: str, base: str) -> tuple[float, float, float] | None:
    """tps of `target` over that of `base` in each round (the two ran back to back): the
    median and the extremes."""
    ratios = []
    for rnd in sorted({r["round"] for r in at}):
        t = [r["tps"] for r in at if r["round"] == rnd and r["target"] == target and r["ok"] and r["tps"]]
        b = [r["tps"] for r in at if r["round"] == rnd and r["target"] == base and r["ok"] and r["tps"]]
        if t and b:
            ratios.append(t[0] / b[0])
    return (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None


def per_txn(rows: list[dict], key: str) -> float | None:
    """The median over the rounds of a run's `key` per sysbench transaction."""
    vals = [r[key] / r["transactions"] for r in rows if r.get(key) is not None and r.get("transactions")]
    return statistics.median(vals) if vals else None


def markdown(res: dict) -> str:
    a, m, runs = res["args"], res["machine"], res["runs"]
    f = lambda v, s=".0f": "—" if v is None else format(v, s)  # noqa: E731
    lines = [f"# causal_reads: read/write split with and without read-your-writes ({res['started'][:10]}, "
             f"{m.get('hostname')})", ""]
    if a.get("label"):
        lines += [a["label"], ""]
    lines += [
        f"`bench/causal_reads.py`: sysbench oltp_read_write --db-ps-mode=disable, {a['time']} s per run, "
        f"{a['rounds']} rounds, {a['tables']} tables x {a['table_size']} rows, on a writer MariaDB (binary log) "
        f"and a read-only replica replicating from it by GTID; Funnel (commit {m.get('funnel_commit')}, "
        f"cores {a['cores']}, pool {a['pool']}/core per backend) with hostgroups writer and readers. "
        f"**direct** = sysbench on the writer itself; **plain** = through Funnel, read/write split; "
        f"**causal** = the same with `causal_reads: true` (timeout {a['causal_timeout']}); "
        f"**universal** (when run) = `causal_reads: universal`: each read for the replica first reads "
        f"the writer's position. "
        f"{m.get('cpus')} CPUs shared by sysbench, both servers and Funnel; the targets run back to back "
        "per point in rotating order. Figures are medians over the rounds; counts per transaction are "
        "medians of each run's count / its transactions. *autocommit* = `--skip_trx=on` (14 reads, 4 "
        "writes per transaction, each its own statement); *transactions* = the same statements in "
        "BEGIN ... COMMIT.", "",
        "Columns: **causal/plain** and vs direct compare tps: the median over the rounds of the ratio "
        "within each round (the two ran back to back), with its lowest and highest; waits, skipped = Funnel's SHOW STATS "
        "`causal_waits`, `causal_waits_skipped` per transaction, on writer = `causal_reads_on_writer` summed "
        "over the rounds; writer / "
        "replica SELECTs = Com_select per transaction on each server (the read-backs of `@@last_gtid` count "
        "on the writer, the reads and `MASTER_GTID_WAIT`s on the replica); stale = the probe's reads that "
        "missed its own write just before, of all its checks (all rounds); catch-up = seconds the replica "
        "needed after the run to apply what the writer had logged (median).", ""]
    for wl in dict.fromkeys(r["workload"] for r in runs):
        lines += [f"## {wl}", "",
                  "| threads | target | tps | qps | vs direct | **causal/plain** | p95 ms | errors | waits/txn "
                  "| skipped/txn | on writer (all rounds) | writer SELECTs/txn | replica SELECTs/txn | Funnel µs/query "
                  "| probe stale | catch-up s |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for n in sorted({r["threads"] for r in runs if r["workload"] == wl}):
            at = [r for r in runs if r["workload"] == wl and r["threads"] == n]
            tps = {t: median([r for r in at if r["target"] == t], "tps") for t in TARGETS}

            def ratio(t: str, base: str) -> str:
                got = paired(at, t, base)
                return "" if got is None else f"{got[0]:.2f}x ({got[1]:.2f}-{got[2]:.2f})"
            for t in TARGETS:
                rs = [r for r in at if r["target"] == t]
                if not rs:
                    continue
                vs = ratio(t, "direct") if t != "direct" else ""
                cp = f"**{ratio(t, 'plain')}**" if t in ("causal", "universal") else ""
                errors = sum(r["errors"] or 0 for r in rs)
                failed = sum(not r["ok"] for r in rs)
                err = f"{errors}" + (f" ({failed} failed)" if failed else "")
                stale = sum(r["probe"]["stale"] for r in rs)
                checks = sum(r["probe"]["checks"] for r in rs)
                counts = [f(per_txn(rs, k), ".2f") if t != "direct" else ""
                          for k in ("causal_waits", "causal_waits_skipped")]
                counts.append(str(sum(r.get("causal_reads_on_writer") or 0 for r in rs)) if t != "direct" else "")
                lines.append(
                    f"| {n} | {t} | {f(tps[t])} | {f(median(rs, 'qps'))} | {vs} | {cp} | "
                    f"{f(median(rs, 'lat_p95_ms'), '.2f')} | {err} | " + " | ".join(counts) + " | "
                    f"{f(per_txn(rs, 'writer_selects'), '.2f')} | {f(per_txn(rs, 'replica_selects'), '.2f')} | "
                    f"{f(median(rs, 'funnel_us_per_query'), '.1f') if t != 'direct' else ''} | "
                    f"{stale}/{checks} | {f(median(rs, 'catch_up_s'), '.2f')} |")
        lines.append("")
    lines += ["## Causal counters per run", "",
              "Funnel's SHOW STATS deltas over each causal run (the probe's reads included), and where the "
              "probe's read-backs were served.", "",
              "| round | workload | threads | target | transactions | causal_waits | causal_waits_skipped | "
              "causal_reads_on_writer | causal_position_reads | causal_positions_shared | funnel_errors | "
              "probe served by |",
              "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        if r["target"] in ("causal", "universal"):
            served = ", ".join(f"{k} {v}" for k, v in sorted(r["probe"]["served"].items())) or "—"
            lines.append(f"| {r['round']} | {r['workload']} | {r['threads']} | {r['target']} | "
                         f"{f(r['transactions'])} | {r.get('causal_waits')} | {r.get('causal_waits_skipped')} | "
                         f"{r.get('causal_reads_on_writer')} | {r.get('causal_position_reads', '—')} | "
                         f"{r.get('causal_positions_shared', '—')} | {r.get('funnel_errors')} | {served} |")
    rep = res.get("replication", {})
    st = rep.get("status", {})
    lines += ["", "## Replication at the end", "",
              f"- healthy: **{rep.get('healthy')}** (IO thread {st.get('Slave_IO_Running')}, SQL thread "
              f"{st.get('Slave_SQL_Running')}, last IO error {st.get('Last_IO_Errno')}, last SQL error "
              f"{st.get('Last_SQL_Errno')} {st.get('Last_SQL_Error') or ''})",
              f"- writer gtid_binlog_pos `{rep.get('writer_gtid_binlog_pos')}`, replica gtid_slave_pos "
              f"`{rep.get('replica_gtid_slave_pos')}`, caught up {rep.get('final_catch_up_s')} s after the last run",
              f"- CHECKSUM TABLE of the sysbench tables and the probe's table: "
              f"{'the same on both servers' if rep.get('checksums_writer') == rep.get('checksums_replica') else 'DIFFERENT'}"]
    failed = [r for r in runs if not r["ok"]]
    probe_errors = [r for r in runs if r["probe"]["errors"]]
    if failed or probe_errors:
        lines += ["", "## Failures", ""]
        lines += [f"- round {r['round']}, {r['workload']}, {r['threads']} threads, {r['target']}: {r['reason']}"
                  for r in failed]
        lines += [f"- probe, round {r['round']}, {r['workload']}, {r['threads']} threads, {r['target']}: "
                  f"{r['probe']['errors']} errors, first: {r['probe']['first_error']}" for r in probe_errors]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_script(main)

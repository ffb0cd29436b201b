#!/usr/bin/env python3
"""Crash probe: does kill -9 + restart of MariaDB damage an InnoDB table, with
io_uring versus --innodb-use-native-aio=0?  No proxy involved.

Two throwaway servers (one per mode), started first with bench/mariadb.sh and
restarted by this script on the same data dir with the same command line as
bench/lib.sh's start_mariadb.  Rounds alternate between modes.  Each round:
8 threads do autocommit INSERTs with unique (client, seq), recording acks;
SIGKILL at a random moment; reap; restart after 0-300 ms (or 1-2 s); then
check: AUTO_INCREMENT vs MAX(id), 1062 on first inserts, duplicate
(client, seq), duplicate id, acknowledged rows missing, rows never sent,
primary vs secondary index counts, CHECK TABLE EXTENDED, error log lines.

    python3 bench/crash_probe.py --minutes 50 [--dir DIR]

Servers, per-round records (rounds.jsonl) and a report of each damaged round
(damage-ROUND-MODE.txt) go to DIR (default: a new directory under /tmp).
Results of the run that showed the damage: bench/results/2026-11-22-vm/crash_probe.md.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import mysql.connector

HERE = os.path.dirname(os.path.abspath(__file__))
MARIADB_SH = os.path.join(HERE, "mariadb.sh")
# Where servers and records go; set by main().
WORK = None
BUFFER_POOL = "8M"
COMMON = [
    "--innodb-flush-log-at-trx-commit=1",
    "--innodb-max-dirty-pages-pct=0",
    "--innodb-adaptive-flushing-lwm=0",
    "--innodb-io-capacity=20000",
    "--innodb-io-capacity-max=40000",
    "--innodb-log-file-size=8M",
]
MODES = {
    "uring": [],
    "noaio": ["--innodb-use-native-aio=0"],
}
THREADS = 8
FILLER = 200
RESET_ROWS = 60000

DDL = f"""CREATE TABLE IF NOT EXISTS log (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  client INT, seq BIGINT, kind VARCHAR(8),
  filler VARCHAR({FILLER}),
  KEY cs (client, seq), KEY k (kind, filler(40)), KEY f (filler(60))
) ENGINE=InnoDB"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def connect(port, timeout=10):
    return mysql.connector.connect(host="127.0.0.1", port=port, user="root",
                                   autocommit=True, connection_timeout=timeout)


class Server:
    def __init__(self, mode):
        self.mode = mode
        self.dir = os.path.join(WORK, f"srv-{mode}")
        self.args = COMMON + MODES[mode]
        self.proc = None    # Popen when we started it
        self.pid = None
        self.port = None

    @property
    def errlog(self):
        return os.path.join(self.dir, "error.log")

    def first_start(self):
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        env = dict(os.environ, MARIADB_BUFFER_POOL=BUFFER_POOL)
        out = subprocess.run([MARIADB_SH, self.dir] + self.args, env=env,
                             capture_output=True, text=True, check=True)
        port, pid = out.stdout.strip().splitlines()[-1].split()
        self.port, self.pid = int(port), int(pid)

    def cmdline(self):
        d = self.dir
        user = ["--user=root"] if os.geteuid() == 0 else []
        # Same as bench/lib.sh start_mariadb; extra args last so they win.
        return ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={d}/data", f"--tmpdir={d}/tmp",
                f"--socket={d}/mysqld.sock", f"--pid-file={d}/mysqld.pid",
                f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                "--skip-log-bin", f"--innodb-buffer-pool-size={BUFFER_POOL}",
                "--innodb-flush-log-at-trx-commit=2", "--max-connections=151",
                f"--log-error={d}/error.log"] + user + self.args

    def start_again(self, limit=180):
        self.port = free_port()
        log = open(self.errlog, "ab")
        self.proc = subprocess.Popen(self.cmdline(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        self.pid = self.proc.pid
        deadline = time.time() + limit
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.mode}: mariadbd exited {self.proc.returncode}")
            try:
                c = connect(self.port, 2)
                c.close()
                return
            except Exception:
                if time.time() > deadline:
                    raise RuntimeError(f"{self.mode}: not ready in {limit}s")
                time.sleep(0.05)

    def kill9(self):
        """SIGKILL and reap (wait), as the testkit does; returns seconds kill->reaped."""
        t0 = time.time()
        os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        else:  # started by mariadb.sh, not our child: poll until gone
            while True:
                try:
                    with open(f"/proc/{self.pid}/stat") as f:
                        st = f.read().rsplit(")", 1)[1].split()[0]
                    if st == "Z":
                        time.sleep(0.01)
                        continue
                except FileNotFoundError:
                    break
                time.sleep(0.01)
        self.proc = None
        return time.time() - t0

    def stop(self):
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.time() + 30
        while True:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    break
            elif not os.path.exists(f"/proc/{self.pid}"):
                break
            if time.time() > deadline:
                os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.1)
        self.pid = None
        self.proc = None


def writer(port, client, acks, sent, stop, t_start):
    try:
        c = connect(port)
        cur = c.cursor()
    except Exception:
        return
    seq = 0
    filler = "x" * FILLER
    while not stop.is_set():
        sent[client] = seq
        try:
            cur.execute("INSERT INTO log (client, seq, kind, filler) VALUES (%s,%s,%s,%s)",
                        (client, seq, "w", f"{client}-{seq}-{random.random()}"[:20] + filler[:random.randint(20, FILLER - 20)]))
        except Exception:
            return
        acks[client].append((seq, time.time() - t_start))
        seq += 1


def check(srv, rnd, clients, acks, sent, kill_t):
    """Checks after restart; returns dict of findings (damage keys non-empty = damage)."""
    r = {}
    c = connect(srv.port, 30)
    cur = c.cursor()
    cur.execute("SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA='crash' AND TABLE_NAME='log'")
    r["auto_inc"] = cur.fetchone()[0]
    cur.execute("SELECT MAX(id), COUNT(*) FROM log")
    r["max_id"], r["rows"] = cur.fetchone()
    # First inserts after restart: any 1062?
    probe_err = []
    for i in range(3):
        try:
            cur.execute("INSERT INTO log (client, seq, kind, filler) VALUES (%s,%s,'probe','p')",
                        (-1, rnd * 10 + i))
        except mysql.connector.Error as e:
            probe_err.append(f"{e.errno} {e.msg}")
    r["probe_errors"] = probe_err
    cur.execute("SELECT client, seq, COUNT(*), GROUP_CONCAT(id ORDER BY id) FROM log "
                "GROUP BY client, seq HAVING COUNT(*) > 1")
    r["dup_client_seq"] = [list(map(str, x)) for x in cur.fetchall()]
    cur.execute("SELECT id, COUNT(*) FROM log FORCE INDEX (cs) GROUP BY id HAVING COUNT(*) > 1")
    r["dup_id"] = [list(map(str, x)) for x in cur.fetchall()]
    counts = {}
    for idx in ("PRIMARY", "cs", "k", "f"):
        cur.execute(f"SELECT COUNT(*) FROM log FORCE INDEX (`{idx}`)")
        counts[idx] = cur.fetchone()[0]
    r["index_counts"] = counts if len(set(counts.values())) > 1 else {}
    missing, unsent = {}, {}
    for cl in clients:
        cur.execute("SELECT seq FROM log WHERE client=%s", (cl,))
        present = {x[0] for x in cur.fetchall()}
        acked = {s for s, _ in acks[cl]}
        m = sorted(acked - present)
        if m:
            missing[cl] = [(s, round(t - kill_t, 3)) for s, t in acks[cl] if s in m]
        u = sorted(s for s in present if s > sent.get(cl, -1))
        if u:
            unsent[cl] = u
    r["missing_acked"] = missing
    r["never_sent"] = unsent
    cur.execute("CHECK TABLE log EXTENDED")
    rows = cur.fetchall()
    r["check_table"] = [list(map(str, x)) for x in rows
                        if not (x[2] == "status" and x[3] == "OK")]
    r["check_table_all"] = [list(map(str, x)) for x in rows]
    r["counter_le_max"] = (r["max_id"] is not None and r["auto_inc"] is not None
                           and r["auto_inc"] <= r["max_id"])
    c.close()
    return r


DAMAGE_KEYS = ("probe_errors", "dup_client_seq", "dup_id", "index_counts", "missing_acked",
               "never_sent", "check_table", "counter_le_max")


def io_status(port):
    try:
        c = connect(port, 5)
        cur = c.cursor()
        cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_buffer_pool_pages_flushed',"
                    "'Innodb_data_pending_writes','Innodb_buffer_pool_pages_dirty')")
        r = {k: int(v) for k, v in cur.fetchall()}
        c.close()
        return r
    except Exception:
        return {}


def snapshot(srv):
    d = os.path.join(srv.dir, "data")
    files = ["ibdata1", "ib_logfile0", "crash/log.ibd"] + \
        [f for f in os.listdir(d) if f.startswith("undo")]
    snap = {}
    for f in files:
        try:
            with open(os.path.join(d, f), "rb") as fh:
                snap[f] = fh.read()
        except FileNotFoundError:
            pass
    return snap


def diff_pages(a, b, page=16384):
    """{file: [changed 16K page numbers]} between two snapshots (size changes noted too)."""
    out = {}
    for f in a:
        x, y = a[f], b.get(f, b"")
        if x == y:
            continue
        n = max(len(x), len(y))
        pages = [i // page for i in range(0, n, page) if x[i:i + page] != y[i:i + page]]
        out[f] = {"pages": pages[:50], "n": len(pages), "size": [len(x), len(y)]}
    return out


def ensure_table(srv):
    c = connect(srv.port, 30)
    cur = c.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS crash")
    cur.execute("USE crash")
    cur.execute(DDL)
    c.close()


def reset_table(srv):
    c = connect(srv.port, 30)
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS crash.log")
    c.close()
    ensure_table(srv)


def run_round(srv, rnd, out):
    # database in connect(): use crash schema via fully-qualified? simpler: set default db
    clients = [rnd * 100 + t for t in range(THREADS)]
    acks = {cl: [] for cl in clients}
    sent = {}
    stop = threading.Event()
    t_start = time.time()
    port = srv.port
    ths = [threading.Thread(target=writer, args=(port, cl, acks, sent, stop, t_start), daemon=True)
           for cl in clients]
    for t in ths:
        t.start()
    run_for = random.uniform(0.5, 3.0)
    st0 = io_status(port)
    time.sleep(max(0.0, run_for - (time.time() - t_start)))
    st1 = io_status(port)
    kill_t = time.time() - t_start
    reap = srv.kill9()
    stop.set()
    for t in ths:
        t.join(10)
    delay = random.uniform(0, 0.3) if random.random() < 0.7 else random.uniform(1.0, 2.0)
    # Late writes: do the data files change AFTER the killed process was reaped?
    t_reaped = time.time()
    snap1 = snapshot(srv)
    time.sleep(max(0.0, delay - (time.time() - t_reaped)))
    snap2 = snapshot(srv)
    snap_window = time.time() - t_reaped
    late = diff_pages(snap1, snap2)
    del snap1, snap2
    log_off = os.path.getsize(srv.errlog)
    t0 = time.time()
    srv.start_again()
    startup = time.time() - t0
    try:
        r = check(srv, rnd, clients, acks, sent, kill_t)
    except mysql.connector.Error as e:
        r = {k: None for k in DAMAGE_KEYS + ("auto_inc", "max_id", "rows", "check_table_all")}
        r["check_failed"] = f"{e.errno} {e.msg}"
    with open(srv.errlog, "rb") as f:
        f.seek(log_off)
        new_log = f.read().decode(errors="replace")
    interesting = [l for l in new_log.splitlines()
                   if re.search(r"\[ERROR\]|\[Warning\]|corrupt|Corrupt|crash recovery|redo log from|"
                                r"Starting final batch|Apply batch|io_uring|aio", l)]
    total_acked = sum(len(v) for v in acks.values())
    damage = {k: r[k] for k in DAMAGE_KEYS + ("check_failed",) if r.get(k)}
    rec = dict(round=rnd, mode=srv.mode, run_for=round(run_for, 3), delay=round(delay, 3),
               reap_s=round(reap, 4), startup_s=round(startup, 2), acked=total_acked,
               auto_inc=r["auto_inc"], max_id=r["max_id"], rows=r["rows"],
               flushed=st1.get("Innodb_buffer_pool_pages_flushed", 0) - st0.get("Innodb_buffer_pool_pages_flushed", 0),
               pending_w=st1.get("Innodb_data_pending_writes"), dirty=st1.get("Innodb_buffer_pool_pages_dirty"),
               late_writes=late, snap_window_s=round(snap_window, 3),
               damage=damage, log=interesting)
    out.write(json.dumps(rec) + "\n")
    out.flush()
    if damage:
        with open(os.path.join(WORK, f"damage-{rnd}-{srv.mode}.txt"), "w") as f:
            f.write(json.dumps(rec, indent=1) + "\n\n--- acks (client: [(seq, t)]) ---\n")
            f.write(json.dumps({k: v[-10:] for k, v in acks.items()}) + "\n")
            f.write(f"kill at t={kill_t:.3f}\n--- check table ---\n")
            f.write(json.dumps(r["check_table_all"]) + "\n--- error log since restart ---\n")
            f.write(new_log)
    # Start over from a clean table after damage (so it is not counted again) or when big.
    if damage or (r["rows"] and r["rows"] > RESET_ROWS):
        reset_table(srv)
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=50)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default="rounds.jsonl")
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    global WORK
    WORK = a.dir or tempfile.mkdtemp(prefix="crash-probe.")
    os.makedirs(WORK, exist_ok=True)
    print(f"servers and records in {WORK}", flush=True)
    seed = a.seed if a.seed is not None else int(time.time())
    random.seed(seed)
    end = time.time() + a.minutes * 60
    servers = [Server(m) for m in MODES]
    out = open(os.path.join(WORK, a.out), "a")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        for s in servers:
            s.first_start()
            print(f"{s.mode}: port {s.port} pid {s.pid}", flush=True)
            with open(s.errlog) as f:
                print("  ", [l.strip() for l in f if "io_uring" in l or "aio" in l.lower()][:3], flush=True)
            ensure_table(s)
        # mysql.connector default db: patch connect to use crash schema
        global connect
        base_connect = connect

        def connect(port, timeout=10):  # noqa: F811
            c = base_connect(port, timeout)
            c.database = "crash"
            return c
        rnd = 0
        stats = {m: [0, 0] for m in MODES}
        while time.time() < end and not stopping:
            for s in servers:
                rnd += 1
                rec = run_round(s, rnd, out)
                stats[s.mode][0] += 1
                if rec["damage"]:
                    stats[s.mode][1] += 1
                print(f"r{rnd} {s.mode} run={rec['run_for']} delay={rec['delay']} reap={rec['reap_s']} "
                      f"start={rec['startup_s']} acked={rec['acked']} ai={rec['auto_inc']} max={rec['max_id']} "
                      f"rows={rec['rows']} fl={rec['flushed']} pw={rec['pending_w']} dirty={rec['dirty']} late={rec['late_writes'] or '-'} DAMAGE={rec['damage'] or '-'}", flush=True)
        print("seed", seed, "stats (rounds, damaged):", stats, flush=True)
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()

"""Shared pieces of the Python benchmark scripts in bench/.

Throwaway MariaDB servers (started through bench/mariadb.sh, which reuses
bench/lib.sh's start_mariadb) and Funnel processes, always stopped by PID;
a tiny MySQL client (mysql_native_password login, COM_QUERY, text result
sets) so the scripts need nothing beyond the standard library; sysbench
runs and their parsing; /proc readings of CPU time and memory.

Python 3.11 standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

SB_USER = "sbtest"
SB_PASSWORD = "sbtest"
SB_DB = "sbtest"


def log(msg: str) -> None:
    print(f"\033[1m==> {msg}\033[0m", file=sys.stderr, flush=True)


def raise_nofile() -> None:
    """Raises the soft open-files limit to the hard one (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is one.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


def stop_pid(pid: int, grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; waits until it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)


# ---------------------------------------------------------------- /proc


def proc_cpu_seconds(pid: int, ended_children: bool = False) -> float:
    """utime + stime of the whole process (all threads), in seconds; with
    `ended_children`, plus that of its children that have ended and been
    reaped (cutime + cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    return sum(int(x) for x in fields[11:15 if ended_children else 13]) / CLK_TCK


def thread_schedstats(pid: int) -> dict[str, tuple[int, int, int]]:
    """Per live thread of `pid`: (ns on the CPU, ns runnable on a run queue,
    timeslices), from schedstat. Raises FileNotFoundError when the process is gone."""
    out: dict[str, tuple[int, int, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, waiting, slices = (int(x) for x in f.read().split()[:3])
            out[tid] = (on_cpu, waiting, slices)
    return out


def proc_cpu_ns(pid: int) -> int:
    """On-CPU time of all threads in nanoseconds (schedstat; finer than ticks)."""
    return sum(on_cpu for on_cpu, _, _ in thread_schedstats(pid).values())


def proc_status_kib(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM`-style line of /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


@dataclass
class CpuMark:
    """CPU counters of a process at one moment."""

    pid: int
    ticks_s: float
    ns: int
    wall: float

    @classmethod
    def take(cls, pid: int) -> "CpuMark":
        return cls(pid, proc_cpu_seconds(pid), proc_cpu_ns(pid), time.monotonic())

    def since(self, earlier: "CpuMark") -> dict:
        return {
            "cpu_s": round(self.ticks_s - earlier.ticks_s, 3),
            "cpu_ns": self.ns - earlier.ns,
            "wall_s": round(self.wall - earlier.wall, 3),
        }


class RssSampler:
    """Samples a process's VmRSS in a thread; keeps the maximum."""

    def __init__(self, pid: int, every: float = 0.25):
        self.pid, self.every = pid, every
        self.max_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.max_bytes = max(self.max_bytes, proc_rss_bytes(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- tiny MySQL client

CLIENT_LONG_PASSWORD = 0x1
CLIENT_LONG_FLAG = 0x4
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PLUGIN_AUTH = 0x80000


class MySQLError(Exception):
    """An ERR packet from the server, or a protocol surprise."""


def native_password(password: bytes, scramble: bytes) -> bytes:
    """mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))."""
    if not password:
        return b""
    h1 = hashlib.sha1(password).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(scramble + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def _lenenc_int(b: bytes, i: int) -> tuple[int | None, int]:
    c = b[i]
    if c < 0xFB:
        return c, i + 1
    if c == 0xFB:
        return None, i + 1
    if c == 0xFC:
        return struct.unpack_from("<H", b, i + 1)[0], i + 3
    if c == 0xFD:
        return int.from_bytes(b[i + 1 : i + 4], "little"), i + 4
    return struct.unpack_from("<Q", b, i + 1)[0], i + 9


class MiniConn:
    """One blocking MySQL connection: login, COM_QUERY, text results.

    Enough for the benchmarks' own queries (PROCESSLIST counts) and for
    holding thousands of idle authenticated clients; not a general driver.
    """

    #: The column names of the last result set `query` read.
    columns: list[str] = []

    #: Capability flags asked for on top of the base set. Funnel pools backend
    #: connections by the result-shaping flags, so a subclass can log in with
    #: another client library's flags (see soak.py's AuditConn).
    extra_flags = 0

    def __init__(self, host: str, port: int, user: str, password: str, db: str | None = None,
                 timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rbuf = b""
        self.seq = 0
        try:
            self._login(user.encode(), password.encode(), db.encode() if db else None)
        except BaseException:
            self.sock.close()
            raise

    # -- framing
    def _recv_exact(self, n: int) -> bytes:
        while len(self._rbuf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MySQLError("connection closed by peer")
            self._rbuf += chunk
        out, self._rbuf = self._rbuf[:n], self._rbuf[n:]
        return out

    def read_packet(self) -> bytes:
        payload = b""
        while True:
            head = self._recv_exact(4)
            n = int.from_bytes(head[:3], "little")
            self.seq = (head[3] + 1) & 0xFF
            payload += self._recv_exact(n)
            if n < 0xFFFFFF:
                return payload

    def write_packet(self, payload: bytes) -> None:
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF

    @staticmethod
    def _raise_err(p: bytes) -> None:
        code = struct.unpack_from("<H", p, 1)[0]
        msg = p[9:] if p[3:4] == b"#" else p[3:]
        raise MySQLError(f"ERROR {code}: {msg.decode(errors='replace')}")

    # -- login
    def _login(self, user: bytes, password: bytes, db: bytes | None) -> None:
        p = self.read_packet()
        if p[0] == 0xFF:
            self._raise_err(p)
        if p[0] != 10:
            raise MySQLError(f"unexpected handshake protocol version {p[0]}")
        i = p.index(b"\0", 1) + 1  # server version
        i += 4  # connection id
        part1 = p[i : i + 8]
        i += 9
        caps = struct.unpack_from("<H", p, i)[0]
        i += 2 + 1 + 2  # caps low, charset, status
        caps |= struct.unpack_from("<H", p, i)[0] << 16
        i += 2
        auth_len = p[i]
        i += 1 + 10
        part2 = b""
        if caps & CLIENT_SECURE_CONNECTION:
            n = max(13, auth_len - 8)
            part2 = p[i : i + n].rstrip(b"\0")
            i += n
        scramble = part1 + part2[:12]
        plugin = b"mysql_native_password"
        if caps & CLIENT_PLUGIN_AUTH and i < len(p):
            plugin = p[i:].split(b"\0", 1)[0] or plugin
        flags = (CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
                 | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | self.extra_flags)
        if db:
            flags |= CLIENT_CONNECT_WITH_DB
        flags &= caps | CLIENT_CONNECT_WITH_DB
        token = native_password(password, scramble) if plugin == b"mysql_native_password" else b""
        resp = struct.pack("<IIB23x", flags, 1 << 24, 45) + user + b"\0"
        resp += bytes([len(token)]) + token
        if db:
            resp += db + b"\0"
        resp += b"mysql_native_password\0"
        self.write_packet(resp)
        while True:
            p = self.read_packet()
            if p[0] == 0x00:
                return
            if p[0] == 0xFF:
                self._raise_err(p)
            if p[0] == 0xFE:  # auth switch request
                name, _, data = p[1:].partition(b"\0")
                if name != b"mysql_native_password":
                    raise MySQLError(f"unsupported auth plugin {name!r}")
                self.write_packet(native_password(password, data.rstrip(b"\0")[:20]))
                continue
            raise MySQLError(f"unexpected packet during login: {p[:16]!r}")

    # -- commands
    def query(self, sql: str) -> list[tuple]:
        """Runs one statement; returns its rows (values as str or None)."""
        self.seq = 0
        self.write_packet(b"\x03" + sql.encode())
        p = self.read_packet()
        if p[0] == 0x00:
            return []
        if p[0] == 0xFF:
            self._raise_err(p)
        ncols, _ = _lenenc_int(p, 0)
        self.columns = []
        for _ in range(ncols or 0):
            # catalog, schema, table, org_table, name: the fifth string.
            col, i = self.read_packet(), 0
            for _ in range(4):
                n, i = _lenenc_int(col, i)
                i += n or 0
            n, i = _lenenc_int(col, i)
            self.columns.append(col[i : i + (n or 0)].decode(errors="replace"))
        p = self.read_packet()  # EOF after the column definitions
        rows = []
        while True:
            p = self.read_packet()
            if p[0] == 0xFE and len(p) < 9:
                return rows
            if p[0] == 0xFF:
                self._raise_err(p)
            row, i = [], 0
            while i < len(p):
                n, i = _lenenc_int(p, i)
                if n is None:
                    row.append(None)
                else:
                    row.append(p[i : i + n].decode(errors="replace"))
                    i += n
            rows.append(tuple(row))

    def named(self, sql: str) -> list[dict]:
        """Runs one statement; returns its rows as {column name: value}."""
        rows = self.query(sql)
        return [dict(zip(self.columns, r)) for r in rows]

    def scalar(self, sql: str):
        rows = self.query(sql)
        return rows[0][0] if rows else None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.seq = 0
            self.write_packet(b"\x01")  # COM_QUIT
        self.sock.close()


# ---------------------------------------------------------------- servers


@dataclass
class MariaDB:
    """A throwaway server started by bench/mariadb.sh (bench/lib.sh)."""

    dir: Path
    port: int
    pid: int
    label: str

    @classmethod
    def start(cls, dir: Path, label: str, max_connections: int = 5000, buffer_pool: str = "1G",
              extra: list[str] | None = None) -> "MariaDB":
        env = dict(os.environ, MARIADB_MAX_CONNECTIONS=str(max_connections),
                   MARIADB_BUFFER_POOL=buffer_pool)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin"
        log(f"starting MariaDB '{label}' in {dir} {' '.join(extra or [])}")
        # Its own session: a Ctrl-C reaches this script, which then stops
        # the server by PID, instead of hitting the server directly.
        out = subprocess.run([str(BENCH_DIR / "mariadb.sh"), str(dir), *(extra or [])], env=env,
                             stdout=subprocess.PIPE, text=True, start_new_session=True, check=False)
        last = out.stdout.strip().splitlines()[-1:] if out.stdout.strip() else []
        if out.returncode != 0 or not last:
            raise RuntimeError(f"MariaDB '{label}' did not start (see {dir}/error.log)")
        port, pid = (int(x) for x in last[0].split())
        return cls(dir, port, pid, label)

    @property
    def socket(self) -> Path:
        """The server's Unix socket (bench/lib.sh puts it in the server's directory)."""
        return self.dir / "mysqld.sock"

    def root(self, timeout: float = 10.0) -> MiniConn:
        return MiniConn("127.0.0.1", self.port, "root", "", timeout=timeout)

    def sql(self, *statements: str) -> list[tuple]:
        c = self.root()
        try:
            rows: list[tuple] = []
            for s in statements:
                rows = c.query(s)
            return rows
        finally:
            c.close()

    def create_sbtest(self) -> None:
        self.sql(f"CREATE DATABASE IF NOT EXISTS {SB_DB}",
                 f"CREATE USER IF NOT EXISTS {SB_USER}@'%' IDENTIFIED BY '{SB_PASSWORD}'",
                 f"GRANT ALL ON *.* TO {SB_USER}@'%'")

    def prepare_sysbench(self, tables: int, table_size: int) -> None:
        log(f"preparing sysbench tables on '{self.label}' ({tables} x {table_size} rows)")
        self.create_sbtest()
        cmd = ["sysbench", "oltp_read_write", *sysbench_conn_args(self.port), f"--tables={tables}",
               f"--table-size={table_size}", f"--threads={min(tables, os.cpu_count() or 2)}", "prepare"]
        with open(self.dir / "prepare.log", "w") as f:
            subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
        # Read every row once so all targets start with a warm buffer pool.
        for t in range(1, tables + 1):
            self.sql(f"SELECT COUNT(*) FROM {SB_DB}.sbtest{t} FORCE INDEX (PRIMARY)",
                     f"SELECT COUNT(*), SUM(LENGTH(c)) FROM {SB_DB}.sbtest{t}")

    def sbtest_connections(self) -> int:
        """Client connections of user sbtest (backend connections for Funnel)."""
        c = self.root(timeout=5)
        try:
            return int(c.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER='sbtest'"))
        finally:
            c.close()

    def status(self, name: str) -> int:
        rows = self.sql(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return int(rows[0][1]) if rows else 0

    def stop(self) -> None:
        log(f"stopping MariaDB '{self.label}' (pid {self.pid})")
        stop_pid(self.pid)


@dataclass
class Funnel:
    """A Funnel process in front of one backend, with its config and log."""

    proc: subprocess.Popen
    port: int
    dir: Path
    binary: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @staticmethod
    def private_binary(workdir: Path) -> Path:
        """Copies the Funnel binary ($FUNNEL_BIN, default target/release/funnel)
        into `workdir`, so a rebuild mid-run changes nothing."""
        src = Path(os.environ.get("FUNNEL_BIN") or ROOT / "target" / "release" / "funnel")
        if not src.exists():
            raise RuntimeError(f"{src} is missing: run `cargo build --release -p funnel`")
        dst = workdir / "funnel-bin"
        shutil.copy2(src, dst)
        return dst

    @staticmethod
    def binary_info(path: Path) -> dict:
        src = Path(os.environ.get("FUNNEL_BIN") or ROOT / "target" / "release" / "funnel")
        h = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(src.stat().st_mtime))
        return {"source": str(src), "built": mtime, "sha256_16": h}

    @classmethod
    def start(cls, workdir: Path, binary: Path, backend_port: int, cores: int, pool_per_core: int,
              min_idle_per_core: int | None = None, wait_timeout: str = "30s", level: str = "warn",
              name: str = "funnel", metrics_port: int | None = None, backend_user: str = SB_USER,
              backend_password: str = SB_PASSWORD, wrapper: list[str] | None = None,
              start_timeout: float = 30.0, backend_socket: Path | None = None,
              extra_yaml: str = "", users_yaml: str | None = None,
              backends_yaml: str | None = None) -> "Funnel":
        """Starts Funnel and waits until it answers a query. `wrapper` is a command
        prefix (e.g. valgrind and its options); the process is then the wrapper's.
        With `backend_socket`, Funnel reaches the backend through that Unix socket
        instead of 127.0.0.1:`backend_port`. `extra_yaml` is appended at the top
        level (e.g. `idle_poll: 0`). `users_yaml` and `backends_yaml` replace the
        `users:` and `backends:` sections (their list items, indented by two);
        user sbtest must still log in, as the readiness check does."""
        port = free_port()
        d = workdir / name
        d.mkdir(parents=True, exist_ok=True)
        min_idle = pool_per_core if min_idle_per_core is None else min_idle_per_core
        metrics = f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n" if metrics_port else ""
        users_yaml = users_yaml or f"""\
  - name: {SB_USER}
    password: {SB_PASSWORD}
    default_schema: {SB_DB}
"""
        backends_yaml = backends_yaml or f"""\
  - name: primary
    address: {backend_socket or f"127.0.0.1:{backend_port}"}
    user: {backend_user}
    password: {backend_password}
"""
        (d / "funnel.yaml").write_text(f"""\
listen: 127.0.0.1:{port}
cores: {cores}
users:
{users_yaml}backends:
{backends_yaml}pool:
  max_per_core: {pool_per_core}
  min_idle_per_core: {min_idle}
backlog:
  max_waiting_per_core: 20000
  wait_timeout: {wait_timeout}
client:
  max_connections: 20000
{metrics}log:
  level: {level}
{extra_yaml}""")
        logf = open(d / "funnel.log", "w")
        proc = subprocess.Popen([*(wrapper or []), str(binary), "--config", str(d / "funnel.yaml")],
                                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Funnel exited ({proc.returncode}):\n{(d / 'funnel.log').read_text()[-3000:]}")
            try:
                c = MiniConn("127.0.0.1", port, SB_USER, SB_PASSWORD, SB_DB, timeout=2)
                c.query("SELECT 1")
                c.close()
                break
            except (OSError, MySQLError):
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"Funnel did not start:\n{(d / 'funnel.log').read_text()[-3000:]}")
                time.sleep(0.1)
        log(f"Funnel pid {proc.pid} on port {port} (cores {cores}, pool {pool_per_core}/core)")
        return cls(proc, port, d, binary)

    def stop(self) -> None:
        if self.proc.poll() is None:
            log(f"stopping Funnel (pid {self.pid})")
            stop_pid(self.pid)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=1)


class Cleanup:
    """Runs registered stop functions once, last first: on normal exit,
    exceptions, Ctrl-C and SIGTERM/SIGHUP (turned into KeyboardInterrupt)."""

    def __init__(self) -> None:
        self._fns: list = []

    def push(self, fn) -> None:
        self._fns.append(fn)

    def __enter__(self) -> "Cleanup":
        def on_signal(signum, _frame):
            raise KeyboardInterrupt(f"signal {signum}")

        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, on_signal)
        return self

    def __exit__(self, *exc) -> None:
        # Further Ctrl-Cs must not interrupt the stopping itself.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._fns:
                fn = self._fns.pop()
                try:
                    fn()
                except Exception as e:  # keep stopping the others
                    print(f"cleanup: {e}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, old)


def unique_stem(out: Path, base: str, exts=(".json", ".csv", ".md", ".png")) -> str:
    """`base`, or `base-HHMMSS` when a file of that name exists already
    (results directories only ever gain files)."""
    import datetime as dt

    if any((out / f"{base}{ext}").exists() for ext in exts):
        return f"{base}-{dt.datetime.now().strftime('%H%M%S')}"
    return base


def run_script(main) -> None:
    """Runs a script's `main()` and exits with its status; Ctrl-C exits 130 (the
    script's `Cleanup` has stopped its servers by then)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)


def write_report(out: Path, base: str, res: dict, md: str) -> str:
    """Writes `res` as <stem>.json and `md` as <stem>.md to `out` (a new stem when
    `base` is taken), prints the markdown, and returns the stem."""
    name = unique_stem(out, base, (".json", ".md"))
    (out / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"{name}.md").write_text(md)
    print(md)
    return name


def default_results_dir() -> Path:
    import datetime as dt

    d = BENCH_DIR / "results" / f"{dt.date.today().isoformat()}-{socket.gethostname()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("FUNNEL_BENCH_TMP", "/tmp")))


# ---------------------------------------------------------------- sysbench


def sysbench_conn_args(port: int, user: str = SB_USER) -> list[str]:
    return ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
            f"--mysql-user={user}", f"--mysql-password={SB_PASSWORD}", f"--mysql-db={SB_DB}"]


_NUM = r"([0-9]+(?:\.[0-9]+)?)"


@dataclass
class SysbenchResult:
    ok: bool
    reason: str = ""
    tps: float | None = None
    qps: float | None = None
    transactions: int | None = None
    queries: int | None = None
    errors: int | None = None
    reconnects: int | None = None
    total_time_s: float | None = None
    events: int | None = None
    lat_min_ms: float | None = None
    lat_avg_ms: float | None = None
    lat_max_ms: float | None = None
    lat_p95_ms: float | None = None  # from the histogram (sysbench's own method, 3 decimals)
    lat_p99_ms: float | None = None  # from the histogram
    lat_p95_reported_ms: float | None = None  # sysbench's "95th percentile" line (2 decimals)
    rc: int | None = None
    sysbench_cpu_s: float | None = None
    wall_s: float | None = None
    output_tail: str = field(default="", repr=False)


def hist_percentile(hist: list[tuple[float, int]], pct: float) -> float | None:
    """The value of the first bucket whose cumulative count reaches pct% of
    all events: the same rule as sysbench's sb_histogram_get_pct()."""
    total = sum(c for _, c in hist)
    if total == 0:
        return None
    need = total * pct / 100.0
    acc = 0
    for value, count in hist:
        acc += count
        if acc >= need:
            return value
    return hist[-1][0]


def parse_sysbench(out: str, rc: int) -> SysbenchResult:
    def grab(pattern: str, conv=float):
        m = re.search(pattern, out, re.M)
        return conv(m.group(1)) if m else None

    r = SysbenchResult(ok=False, rc=rc)
    r.transactions = grab(r"^\s*transactions:\s+(\d+)", int)
    r.tps = grab(r"^\s*transactions:\s+\d+\s+\(" + _NUM + " per sec")
    r.queries = grab(r"^\s*queries:\s+(\d+)", int)
    r.qps = grab(r"^\s*queries:\s+\d+\s+\(" + _NUM + " per sec")
    r.errors = grab(r"^\s*ignored errors:\s+(\d+)", int)
    r.reconnects = grab(r"^\s*reconnects:\s+(\d+)", int)
    r.total_time_s = grab(r"^\s*total time:\s+" + _NUM + "s")
    r.events = grab(r"^\s*total number of events:\s+(\d+)", int)
    r.lat_min_ms = grab(r"^\s*min:\s+" + _NUM)
    r.lat_max_ms = grab(r"^\s*max:\s+" + _NUM)
    r.lat_p95_reported_ms = grab(r"^\s*95th percentile:\s+" + _NUM)
    lat_sum = grab(r"^\s*sum:\s+" + _NUM)
    # "avg:" is printed with 2 decimals (10 us steps); sum/events is exact.
    if lat_sum is not None and r.events:
        r.lat_avg_ms = round(lat_sum / r.events, 4)
    else:
        r.lat_avg_ms = grab(r"^\s*avg:\s+" + _NUM)
    hist = [(float(v), int(c)) for v, c in
            re.findall(r"^\s*([0-9.]+)\s+\|\**\s+(\d+)\s*$", out, re.M)]
    if hist:
        r.lat_p95_ms = hist_percentile(hist, 95)
        r.lat_p99_ms = hist_percentile(hist, 99)
    else:
        r.lat_p95_ms = r.lat_p95_reported_ms
    fatal = [ln.strip() for ln in out.splitlines() if "FATAL" in ln or "ALERT" in ln]
    if r.tps is None:
        r.reason = fatal[0] if fatal else (out.strip().splitlines()[-1:] or ["no output"])[0]
    elif rc != 0:
        r.reason = f"rc={rc}: " + (fatal[0] if fatal else "sysbench exited non-zero")
    else:
        r.ok = True
    # Keep the first and last of possibly thousands of identical FATAL lines.
    uniq = list(dict.fromkeys(fatal))
    if uniq and r.ok:
        r.reason = f"warnings: {uniq[0]}"
    r.output_tail = "\n".join(out.splitlines()[-60:])
    return r


def run_sysbench(port: int, workload: str, threads: int, seconds: int, tables: int, table_size: int,
                 ps_mode: str = "disable", extra: list[str] | None = None, log_path: Path | None = None,
                 hard_limit: float | None = None, user: str = SB_USER) -> SysbenchResult:
    """One sysbench run; never raises for a failed run (it is a data point).

    --percentile=95 and --histogram=on: p95 and p99 come from sysbench's own
    latency histogram (same rule as sysbench's percentile line, with one
    more decimal), avg = latency sum / events. `user` logs in with sbtest's password.
    """
    cmd = ["sysbench", workload, *sysbench_conn_args(port, user), f"--tables={tables}",
           f"--table-size={table_size}", f"--threads={threads}", f"--time={seconds}",
           "--report-interval=0", "--percentile=95", "--histogram=on", f"--db-ps-mode={ps_mode}",
           *(extra or []), "run"]
    limit = hard_limit if hard_limit is not None else seconds + 120
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        rusage = None
        killed = False
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - started > limit and not killed:
                proc.kill()
                killed = True
            time.sleep(0.05)
        out.seek(0)
        text = out.read()
    if log_path:
        log_path.write_text(" ".join(cmd) + "\n\n" + text)
    r = parse_sysbench(text, proc.returncode)
    if killed:
        r.ok = False
        r.reason = f"killed after {limit:.0f}s (hung); " + r.reason
    r.wall_s = round(time.monotonic() - started, 2)
    if rusage is not None:
        r.sysbench_cpu_s = round(rusage.ru_utime + rusage.ru_stime, 3)
    return r


class PeakSampler:
    """Polls a function every `every` seconds in a thread; keeps the max."""

    def __init__(self, fn, every: float = 2.0, first_after: float = 1.0):
        self.fn, self.every, self.first_after = fn, every, first_after
        self.values: list[int] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self._stop.wait(self.first_after):
            return
        while not self._stop.is_set():
            try:
                self.values.append(int(self.fn()))
            except Exception:
                self.errors += 1
            self._stop.wait(self.every)

    @property
    def peak(self) -> int | None:
        return max(self.values) if self.values else None

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def perf_counters_work() -> tuple[bool, str]:
    """Whether `perf stat -e instructions` counts here (VMs often say no)."""
    if not shutil.which("perf"):
        return False, "perf is not installed"
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-e", "instructions,cycles", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"perf failed: {e}"
    text = p.stderr + p.stdout
    if p.returncode != 0 or "not supported" in text or "<not counted>" in text:
        return False, "hardware counters not supported here: " + " ".join(text.split())[:200]
    return True, ""


def machine_info() -> dict:
    info = {"hostname": socket.gethostname(), "cpus": os.cpu_count()}
    with contextlib.suppress(Exception):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        info["mem_kib"] = int(open("/proc/meminfo").readline().split()[1])
    with contextlib.suppress(Exception):
        info["kernel"] = os.uname().release
    with contextlib.suppress(Exception):
        info["mariadb"] = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True,
                                         env=dict(os.environ, PATH=os.environ["PATH"] + ":/usr/sbin")
                                         ).stdout.strip()
    with contextlib.suppress(Exception):
        info["sysbench"] = subprocess.run(["sysbench", "--version"], capture_output=True,
                                          text=True).stdout.strip()
    with contextlib.suppress(Exception):
        info["funnel_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                               capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), "status", "--porcelain", "--", "crates"],
                               capture_output=True, text=True).stdout.strip()
        info["funnel_crates_dirty"] = bool(dirty)
    return info

#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ seed files from the captured packets in
crates/funnel-protocol/testdata/*.txt (one packet per line:
`<c2s|s2c> <seq> <hex payload>`), in each target's input layout (see the
comment at the top of each fuzz_targets/*.rs), plus a few hand-made packets
for paths the capture does not show (auth switch, prepare, LOCAL INFILE, ...)
and the inputs in fuzz/regressions/ (bugs these targets found).

Usage: python3 fuzz/seed.py   (from anywhere; rewrites the seed files, keeps
whatever the fuzzer added to the corpus)
"""

import hashlib
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
TESTDATA = FUZZ.parent / "crates" / "funnel-protocol" / "testdata"
CORPUS = FUZZ / "corpus"

MAX_CHUNK = 0xFFFFFF
CLIENT_MYSQL = 1
CLIENT_SSL = 1 << 11
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24

EXPECT = {"status": 0, "results": 1, "prepare": 2, "fetch": 3, "fieldlist": 4, "statistics": 5}


def load(path):
    pkts = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        payload = bytes.fromhex(parts[2]) if len(parts) > 2 else b""
        pkts.append((parts[0], int(parts[1]), payload))
    return pkts


def frame(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def write(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def client_caps(resp):
    """Capabilities a HandshakeResponse41 payload announces (with MariaDB's upper half)."""
    low = struct.unpack_from("<I", resp, 0)[0]
    ext = struct.unpack_from("<I", resp, 28)[0]
    return low | (ext << 32 if not low & CLIENT_MYSQL else 0)


def server_caps(greeting):
    ver_end = greeting.index(b"\0", 1)
    pos = ver_end + 1 + 4 + 8 + 1
    low = struct.unpack_from("<H", greeting, pos)[0]
    high = struct.unpack_from("<H", greeting, pos + 5)[0]
    ext = struct.unpack_from("<I", greeting, pos + 14)[0]
    caps = low | high << 16
    return caps | (ext << 32 if not caps & CLIENT_MYSQL else 0)


def response_input(expect, caps, packets, status=2, columns=3, big=()):
    out = bytes([EXPECT[expect]]) + struct.pack("<QHB", caps, status, columns)
    for i, p in enumerate(packets):
        ctl = min(len(p), 0x7FFF) | (0x8000 if i in big else 0)
        out += struct.pack("<H", ctl) + p[:0x7FFF]
    return out


def lenenc_count(p):
    if p and p[0] < 0xFB:
        return p[0]
    return None


def deprecate_eof(packets):
    """The same result set as a CLIENT_DEPRECATE_EOF server sends it: no EOF
    after the column definitions, an OK with header 0xfe at the end."""
    n = lenenc_count(packets[0])
    if not n:
        return None
    out = packets[: 1 + n]
    for p in packets[2 + n :]:
        if p[:1] == b"\xfe" and len(p) < 9:
            out.append(b"\xfe\x00\x00" + p[3:5] + p[1:3])
        else:
            out.append(p)
    return out


def main():
    files = sorted(TESTDATA.glob("*.txt"))
    greetings, logins = [], []
    for f in files:
        pkts = load(f)
        # packet_decoder: each direction as one framed stream, in several splits
        # and maxima, and every packet alone.
        for d in ("c2s", "s2c"):
            stream = b"".join(frame(s, p) for dd, s, p in pkts if dd == d)
            write("packet_decoder", bytes([4]) + struct.pack("<I", 1 << 24) + bytes([3, 1, 7, 64]) + stream)
            write("packet_decoder", bytes([4]) + struct.pack("<I", 64) + bytes([0]) + stream)
        for _, s, p in pkts:
            write("packet_decoder", bytes([2]) + struct.pack("<I", 1 << 20) + bytes([1, 5]) + frame(s, p))

        greeting, login = pkts[0][2], pkts[1][2]
        greetings.append(greeting)
        logins.append(login)
        ccaps = client_caps(login)
        caps = ccaps & server_caps(greeting)

        # handshake: the greeting, the login, the login cut to an SSLRequest.
        write("handshake", greeting)
        write("handshake", login)
        ssl = bytearray(login[:32])
        ssl[1] |= CLIENT_SSL >> 8
        write("handshake", bytes(ssl))

        # command: every client command, with the client's capabilities.
        for d, s, p in pkts[2:]:
            if d == "c2s":
                write("command", struct.pack("<I", ccaps & 0xFFFFFFFF) + p)

        # response: the server's answer to the login and to each command.
        resp_runs, cur = [], None
        for d, s, p in pkts[1:]:
            if d == "c2s":
                cur = (p[:1], [])
                resp_runs.append(cur)
            else:
                cur[1].append(p)
        for cmd, run in resp_runs:
            if not run:
                continue
            expect = "results" if cmd == b"\x03" else "status"
            write("response", response_input(expect, caps, run))
            if expect == "results":
                dep = deprecate_eof(run)
                if dep:
                    write("response", response_input(expect, caps | CLIENT_DEPRECATE_EOF, dep))

    # Hand-made packets for what the capture does not show.
    scramble = bytes(range(1, 21))
    for payload in (
        b"\xfemysql_native_password\0" + scramble + b"\0",
        b"\xfecaching_sha2_password\0" + scramble + b"\0",
        b"\x01\x03",
        b"\x01\x04",
        b"\x01-----BEGIN PUBLIC KEY-----\nMFww\n-----END PUBLIC KEY-----\n",
    ):
        write("handshake", payload)
    # A MySQL-style greeting (CLIENT_MYSQL set, no MariaDB capabilities).
    g = bytearray(greetings[0])
    pos = g.index(b"\0", 1) + 1 + 4 + 8 + 1
    g[pos] |= CLIENT_MYSQL
    write("handshake", bytes(g))

    caps = CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | (1 << 9)
    cu = b"\x11bob\0" + bytes([20]) + scramble + b"db\0" + struct.pack("<H", 45) + b"mysql_native_password\0"
    for payload in (
        cu,
        b"\x16SELECT ?",
        b"\x17" + struct.pack("<IBI", 1, 0, 1) + b"\x00\x01\x08\x00" + struct.pack("<q", 7),
        b"\x18" + struct.pack("<IH", 1, 0) + b"long data",
        b"\x19" + struct.pack("<I", 1),
        b"\x1a" + struct.pack("<I", 1),
        b"\x1c" + struct.pack("<II", 1, 10),
        b"\x0c" + struct.pack("<I", 7),
        b"\x1b\x01\x00",
        b"\x04t\0%",
        b"\x0e",
        b"\x1f",
        b"\x09",
        b"\x12",
    ):
        write("command", struct.pack("<I", caps) + payload)

    coldef = bytes.fromhex("0364656605636170646201740174046e616d65046e616d65000c21003c000000fd0000000000")
    eof = bytes.fromhex("fe00000200")
    ok = bytes.fromhex("00000002000000")
    caps = CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | (1 << 9) | CLIENT_SESSION_TRACK
    prepare_ok = b"\x00" + struct.pack("<IHHBH", 1, 1, 1, 0, 0)
    for expect, c, pkts, big in (
        ("prepare", caps, [prepare_ok, coldef, eof, coldef, eof], ()),
        ("prepare", caps | CLIENT_DEPRECATE_EOF, [prepare_ok, coldef, coldef], ()),
        ("fetch", caps, [b"\x01a", b"\x01b", eof], ()),
        ("fetch", caps, [b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00", eof, eof], (0,)),
        ("fieldlist", caps, [coldef, coldef, eof], ()),
        ("statistics", caps, [b"Uptime: 5  Threads: 1"], ()),
        ("results", caps, [b"\xfb/tmp/x.csv", ok], ()),
        ("results", caps, [b"\x01", coldef, eof, b"\x01a", b"\xfe\x00\x00\x22\x00", ok], ()),
        ("results", caps, [b"\x01", coldef, eof, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00", eof, eof], (3,)),
        (
            "results",
            caps | CLIENT_DEPRECATE_EOF,
            [b"\x01", coldef, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00", eof, b"\xfe\x00\x00\x02\x00\x00\x00"],
            (2,),
        ),
        ("status", caps, [bytes.fromhex("0000000240000000080106056361706462")], ()),
    ):
        write("response", response_input(expect, c, pkts, big=big))

    # A synthetic packet_decoder stream: a 16 MiB chunk then its 5-byte tail.
    write(
        "packet_decoder",
        bytes([1 | 3 << 1]) + struct.pack("<I", 1 | 64 << 2) + bytes([1, 255]) + b"\xab\x00\x05\x01hello",
    )

    # Inputs that once failed (bugs found by these targets, since fixed).
    for f in sorted((FUZZ / "regressions").iterdir()):
        write(f.name.split("-", 1)[0], f.read_bytes())

    for t in sorted(p.name for p in CORPUS.iterdir()):
        print(f"corpus/{t}: {sum(1 for _ in (CORPUS / t).iterdir())} files")


if __name__ == "__main__":
    main()

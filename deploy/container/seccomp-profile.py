#!/usr/bin/env python3
"""Funnel's seccomp profile: regenerate it, or run a command under it.

Docker 25 and later and containerd 2.0 and later ship a default seccomp
profile without the io_uring system calls, and Funnel's runtime (glommio)
cannot run without them. `seccomp-io_uring.json` is an allow-list profile
for Funnel's container. It holds the same system calls as the systemd unit's
filter (`SystemCallFilter=@system-service` minus `@privileged`), and that
set includes io_uring_setup, io_uring_enter and io_uring_register.

    seccomp-profile.py generate > seccomp-io_uring.json
        Rebuilds the profile from `systemd-analyze syscall-filter` on this
        machine (systemd's own, reviewed groups), sorted so diffs stay small.

    seccomp-profile.py run seccomp-io_uring.json -- funnel --config funnel.yaml
        Loads the profile with libseccomp in this process and then execs the
        command, as a container runtime would. deploy/check.sh uses it to
        prove that Funnel starts, serves and answers its health check under
        the profile. Needs Debian's python3-seccomp, so run it with
        /usr/bin/python3.

The profile uses only what Docker's and the OCI runtime spec's formats
share (defaultAction, defaultErrnoRet, syscalls[].names/action), so Docker
(`--security-opt seccomp=...`), Podman and Kubernetes (a Localhost profile)
all accept it. Without `architectures` it applies to the native
architecture only, like the unit's `SystemCallArchitectures=native`.
"""

import errno
import json
import os
import subprocess
import sys

ALLOWED_GROUP = "@system-service"
DENIED_GROUP = "@privileged"
IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")


def expand(group, cache=None):
    """Every system call name in a systemd syscall-filter group, recursively."""
    cache = {} if cache is None else cache
    if group in cache:
        return cache[group]
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        names |= expand(item, cache) if item.startswith("@") else {item}
    cache[group] = names
    return names


def generate():
    names = sorted(expand(ALLOWED_GROUP) - expand(DENIED_GROUP))
    missing = [n for n in IO_URING if n not in names]
    if missing:
        sys.exit(f"{ALLOWED_GROUP} here lacks {missing}: systemd too old to generate from")
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
    }
    json.dump(profile, sys.stdout, indent=2)
    sys.stdout.write("\n")


def run(profile_path, command):
    try:
        import seccomp  # Debian: python3-seccomp, for /usr/bin/python3
    except ImportError:
        sys.exit("seccomp-profile.py run needs libseccomp's Python module: apt-get install python3-seccomp")
    with open(profile_path) as f:
        profile = json.load(f)
    if profile.get("defaultAction") != "SCMP_ACT_ERRNO":
        sys.exit("only profiles with defaultAction SCMP_ACT_ERRNO are supported")
    filt = seccomp.SyscallFilter(defaction=seccomp.ERRNO(profile.get("defaultErrnoRet", errno.EPERM)))
    for rule in profile["syscalls"]:
        if rule.get("action") != "SCMP_ACT_ALLOW" or rule.get("args"):
            sys.exit(f"unsupported rule (only plain SCMP_ACT_ALLOW lists): {rule}")
        for name in rule["names"]:
            try:
                filt.add_rule(seccomp.ALLOW, name)
            except (RuntimeError, ValueError, OSError):
                # Not a system call on this architecture: runtimes skip these too.
                pass
    filt.load()
    os.execvp(command[0], command)


def main(argv):
    if argv[1:2] == ["generate"]:
        generate()
    elif argv[1:2] == ["run"] and len(argv) > 4 and argv[3] == "--":
        run(argv[2], argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

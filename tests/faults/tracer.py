"""Run child.py under strace: count an operation's syscalls, or fail one of them.

strace attaches (``-p``) to a child that has already imported sos and opened
its store and is waiting, so every count starts at the operation's first
syscall: ``when=N`` is the N-th call of the operation, not of Python's
start-up. strace counts per syscall and per tracee (thread): N also hits the
N-th call of each worker thread a group commit starts.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child.py")
TIMEOUT = 30.0

# The syscalls the suite attacks, with the error each gets and the names the
# kernel may use for it (glibc picks rename or renameat2, unlink or unlinkat).
ATTACKED: dict[str, tuple[str, str]] = {
    # syscall: (the error injected, a word for it in reports)
    "fsync": ("EIO", "fsync"),
    "fdatasync": ("EIO", "fsync"),
    "write": ("ENOSPC", "write"),
    "rename": ("EIO", "rename"),
    "renameat": ("EIO", "rename"),
    "renameat2": ("EIO", "rename"),
    "unlink": ("EIO", "unlink"),
    "unlinkat": ("EIO", "unlink"),
    "mkdir": ("ENOSPC", "mkdir"),
    "mkdirat": ("ENOSPC", "mkdir"),
    "flock": ("ENOLCK", "flock"),
    "openat": ("EMFILE", "openat"),
    "open": ("EMFILE", "openat"),
    "getdents64": ("EIO", "getdents64"),
    "read": ("EIO", "read"),
}
_CALL = re.compile(r"^(\d+)\s+([a-z0-9_]+)\(")


@functools.cache
def strace_problem() -> str | None:
    """Why strace cannot be used here, or None (probed once per process: three
    test modules ask while they are collected)."""
    if shutil.which("strace") is None:
        return "strace is not installed (.ci/faults.sh installs it)"
    probe = subprocess.run(
        ["strace", "-f", "-o", "/dev/null", "-e", "trace=getpid", sys.executable, "-c", "0"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"strace cannot trace here (no ptrace?): {probe.stderr.strip()[:200]}"
    return None


@dataclass
class Run:
    """What one traced run of an operation did."""

    outcome: dict[str, Any] | None  # the child's verdict, None if it wrote none
    status: int | None  # exit status; None if it timed out and was killed
    stderr: str
    log: str  # strace's log of the traced syscalls
    injected: list[str] = field(default_factory=list)  # log lines strace tampered with

    @property
    def returned(self) -> bool:
        return self.outcome is not None and "returned" in self.outcome


def run(
    spec: dict[str, Any],
    workdir: Path,
    syscalls: list[str],
    inject: tuple[str, int] | None = None,
) -> Run:
    """Run the operation ``spec`` with strace tracing ``syscalls``; with
    ``inject=(name, n)`` the n-th call of ``name`` fails with its errno.
    With no ``syscalls``, no strace: the child meets real faults (a full
    filesystem, a resource limit)."""
    log_path = workdir / f"strace-{os.getpid()}-{id(spec)}-{os.urandom(4).hex()}.log"
    read_end, write_end = os.pipe()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps({**spec, "result_fd": write_end})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(write_end,),
        cwd=workdir,
        env=env,
    )
    os.close(write_end)
    tracer = None
    try:
        assert child.stdout is not None and child.stdin is not None
        ready = child.stdout.readline()
        if ready != b"ready\n":
            child.kill()
            _, err = child.communicate()
            raise RuntimeError(f"child did not start: {ready!r} {err.decode()[-2000:]}")
        if syscalls:
            tracer = _attach(child.pid, log_path, syscalls, inject)
        child.stdin.write(b"go\n")
        child.stdin.flush()
        try:
            _, err = child.communicate(timeout=TIMEOUT)
            status: int | None = child.returncode
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
            status = None
        if tracer is not None:
            tracer.wait(timeout=TIMEOUT)
        with os.fdopen(read_end, "rb") as f:
            read_end = -1
            data = f.read()
        outcome = json.loads(data) if data else None
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
    finally:
        if read_end >= 0:
            os.close(read_end)
        if tracer is not None and tracer.poll() is None:
            tracer.kill()
            tracer.wait()
        if child.poll() is None:
            child.kill()
            child.wait()
        log_path.unlink(missing_ok=True)
    injected = [line for line in log.splitlines() if "(INJECTED)" in line]
    return Run(outcome, status, err.decode(errors="replace"), log, injected)


def _attach(
    pid: int, log_path: Path, syscalls: list[str], inject: tuple[str, int] | None
) -> subprocess.Popen[str]:
    command = ["strace", "-f", "-y", "-o", str(log_path)]
    command += ["-e", "trace=" + ",".join(syscalls)]
    if inject is not None:
        name, n = inject
        command += ["-e", f"inject={name}:error={ATTACKED[name][0]}:when={n}"]
    command += ["-p", str(pid)]
    tracer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert tracer.stderr is not None
    first = tracer.stderr.readline()
    if "attached" not in first:
        tracer.kill()
        raise RuntimeError(f"strace did not attach: {first}{tracer.stderr.read()[:500]}")
    return tracer


def count(log: str) -> dict[str, int]:
    """For each syscall in a log: its most calls in any one tracee (strace's
    ``when=`` counts per tracee)."""
    per: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in log.splitlines():
        match = _CALL.match(line)
        if match is not None:
            per[match.group(1), match.group(2)] += 1
    most: dict[str, int] = {}
    for (_, name), n in per.items():
        most[name] = max(most.get(name, 0), n)
    return most

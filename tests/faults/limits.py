"""Run one read of a store in a child process held to a time and a memory limit."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from .tracer import REPO

TIME_LIMIT = 5.0  # seconds; a refusal takes milliseconds, a hang never ends
MEMORY_LIMIT = 512 << 20  # address space; the interpreter with sos needs well under this

_READER = r"""
import json, os, sys
import sos, sos.cli
spec = json.loads(sys.argv[1])
names = {"sos": sos, "R": spec["root"], "result": None}
try:
    if spec.get("cli"):
        status = sos.cli.main(spec["cli"])
        out = {"status": status}
    else:
        exec(spec["code"], names)
        result = names["result"]
        if isinstance(result, list) and result and isinstance(result[0], sos.Problem):
            result = [{"code": p.code, "path": p.path, "message": p.message} for p in result]
        out = {"returned": json.loads(json.dumps(result, default=repr))}
except BaseException as exc:
    out = {"raised": type(exc).__name__, "sos": isinstance(exc, sos.CorruptError),
           "message": str(exc)[:400], "path": getattr(exc, "path", None)}
sys.stdout.flush()
os.write(spec["fd"], json.dumps(out).encode())
"""


@dataclass
class Outcome:
    result: dict[str, Any] | None  # None: killed at the time limit, or died
    stdout: str
    stderr: str
    status: int | None


def _limit(rlimits: dict[int, int]) -> Any:
    def apply() -> None:
        for which, value in rlimits.items():
            resource.setrlimit(which, (value, value))

    return apply


def run_read(
    spec: dict[str, Any],
    *,
    rlimits: dict[int, int] | None = None,
    timeout: float = TIME_LIMIT,
    cwd: str | None = None,
) -> Outcome:
    """Run ``spec`` (``code`` with the store path as ``R``, or ``cli`` arguments)
    with RLIMIT_AS (and any other ``rlimits``) and a time limit."""
    import os

    limits = {resource.RLIMIT_AS: MEMORY_LIMIT, **(rlimits or {})}
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _READER, json.dumps({**spec, "fd": write_end})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            pass_fds=(write_end,),
            preexec_fn=_limit(limits),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=cwd,
            text=True,
        )
    finally:
        os.close(write_end)
    try:
        out, err = child.communicate(timeout=timeout)
        status: int | None = child.returncode
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        status = None
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    result = json.loads(data) if data and status is not None else None
    return Outcome(result, out, err, status)

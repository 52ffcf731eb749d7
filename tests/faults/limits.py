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


# Many reads in one child: each under its own alarm (a handler that raises
# interrupts a blocking open() or read(), and a Python loop), the CLI's
# through sos.cli.main with its output captured. RLIMIT_AS bounds the whole
# child; a MemoryError is caught per read and its memory given back.
_READER_MANY = r"""
import contextlib, io, json, os, signal, sys
import sos, sos.cli
spec = json.loads(sys.argv[1])

class Hang(BaseException):
    pass

def alarm(signum, frame):
    raise Hang()

signal.signal(signal.SIGALRM, alarm)
outcomes = {}
for label, read in spec["reads"].items():
    names = {"sos": sos, "R": spec["root"], "result": None}
    out, err = io.StringIO(), io.StringIO()
    signal.setitimer(signal.ITIMER_REAL, spec["limit"])
    try:
        if read.get("cli"):
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = sos.cli.main(read["cli"])
            got = {"status": status}
        else:
            exec(read["code"], names)
            result = names["result"]
            if isinstance(result, list) and result and isinstance(result[0], sos.Problem):
                result = [{"code": p.code, "path": p.path, "message": p.message} for p in result]
            got = {"returned": json.loads(json.dumps(result, default=repr))}
    except Hang:
        got = {"hung": True}
    except BaseException as exc:
        got = {"raised": type(exc).__name__, "sos": isinstance(exc, sos.CorruptError),
               "message": str(exc)[:400], "path": getattr(exc, "path", None)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    got["stdout"], got["stderr"] = out.getvalue()[-2000:], err.getvalue()[-2000:]
    outcomes[label] = got
    if got.get("hung"):  # the rest would most likely wait on the same thing
        break
os.write(spec["fd"], json.dumps(outcomes).encode())
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


def run_reads(
    root: str, reads: dict[str, dict[str, Any]], *, limit: float = TIME_LIMIT
) -> dict[str, Outcome]:
    """Each of ``reads`` (label -> spec) in one child under RLIMIT_AS, each
    with its own time limit; an Outcome per label (status None: it hung)."""
    import os

    read_end, write_end = os.pipe()
    spec = {"root": root, "reads": reads, "limit": limit, "fd": write_end}
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _READER_MANY, json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            pass_fds=(write_end,),
            preexec_fn=_limit({resource.RLIMIT_AS: MEMORY_LIMIT}),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            text=True,
        )
    finally:
        os.close(write_end)
    try:
        _, err = child.communicate(timeout=limit * (len(reads) + 2))
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    if not data:
        raise AssertionError(f"the reading child died (exit {child.returncode}): {err[-800:]}")
    outcomes = {}
    done = json.loads(data)
    for label in reads:
        if label not in done:
            outcomes[label] = Outcome({"not run": True}, "", "an earlier read hung", 0)
            continue
        got = done[label]
        stdout, stderr = got.pop("stdout"), got.pop("stderr")
        hung = got.pop("hung", False)
        outcomes[label] = Outcome(None if hung else got, stdout, stderr, None if hung else 0)
    return outcomes

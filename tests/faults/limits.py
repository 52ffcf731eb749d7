"""Run one read of a store in a child process held to a time and a memory limit.

The children are forked warm (tests/forked.py: sos already imported, a few
ms each instead of ~0.15 s of CPU for a fresh interpreter); each is still its
own process, with its own address-space limit, killed at the time limit. The
verdict goes to a file the child opens before the read, so what the read
prints (a CLI's output) or how it ends cannot mix with it.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
from dataclasses import dataclass
from typing import Any

import forked

from .tracer import REPO

TIME_LIMIT = 5.0  # seconds; a refusal takes milliseconds, a hang never ends
MEMORY_LIMIT = 512 << 20  # address space; the interpreter with sos needs well under this

_READER = r"""
import json, os, sys
import sos, sos.cli
spec = json.loads(sys.argv[1])
verdict = os.open(spec["verdict"], os.O_WRONLY | os.O_TRUNC)
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
os.write(verdict, json.dumps(out).encode())
"""


# Many reads in one child: each under its own alarm (a handler that raises
# interrupts a blocking open() or read(), and a Python loop), the CLI's
# through sos.cli.main with its output captured. RLIMIT_AS bounds the whole
# child; a MemoryError is caught per read and its memory given back.
_READER_MANY = r"""
import contextlib, io, json, os, signal, sys
import sos, sos.cli
spec = json.loads(sys.argv[1])
verdict = os.open(spec["verdict"], os.O_WRONLY | os.O_TRUNC)

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
os.write(verdict, json.dumps(outcomes).encode())
"""


@dataclass
class Outcome:
    result: dict[str, Any] | None  # None: killed at the time limit, or died
    stdout: str
    stderr: str
    status: int | None


def _child(
    code: str,
    spec: dict[str, Any],
    cwd: str | None = None,
    rlimits: dict[int, int] | None = None,
) -> tuple[forked.Child, str]:
    """A forked ``python -c code SPEC`` under RLIMIT_AS (and ``rlimits``),
    and the file its verdict will be in."""
    fd, verdict = tempfile.mkstemp(prefix="sos-verdict-")
    os.close(fd)
    child = forked.start(
        "-c",
        code,
        json.dumps({**spec, "verdict": verdict}),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        rlimits={resource.RLIMIT_AS: MEMORY_LIMIT, **(rlimits or {})},
    )
    return child, verdict


def _verdict(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def run_read(
    spec: dict[str, Any],
    *,
    rlimits: dict[int, int] | None = None,
    timeout: float = TIME_LIMIT,
    cwd: str | None = None,
) -> Outcome:
    """Run ``spec`` (``code`` with the store path as ``R``, or ``cli`` arguments)
    with RLIMIT_AS (and any other ``rlimits``) and a time limit."""
    child, verdict = _child(_READER, spec, cwd, rlimits)
    status: int | None
    try:
        status = child.wait(timeout)
    except TimeoutError:
        child.kill()
        child.wait()
        status = None
    data = _verdict(verdict)
    result = json.loads(data) if data and status is not None else None
    return Outcome(result, child.stdout, child.stderr, status)


def run_reads(
    root: str, reads: dict[str, dict[str, Any]], *, limit: float = TIME_LIMIT
) -> dict[str, Outcome]:
    """Each of ``reads`` (label -> spec) in one child under RLIMIT_AS, each
    with its own time limit; an Outcome per label (status None: it hung)."""
    child, verdict = _child(_READER_MANY, {"root": root, "reads": reads, "limit": limit})
    try:
        child.wait(limit * (len(reads) + 2))
    except TimeoutError:
        child.kill()
        child.wait()
    data = _verdict(verdict)
    if not data:
        raise AssertionError(
            f"the reading child died (exit {child.returncode}): {child.stderr[-800:]}"
        )
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

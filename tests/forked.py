"""Python children forked from a warm process instead of started afresh.

A child that starts as ``python worker.py`` against S3 spends ~0.6 s of CPU
before its first request: the interpreter, boto3, botocore's S3 model. The
S3 tests start dozens, so a run spent more CPU starting them than on what
they test. Here a child is forked from multiprocessing's fork server, which
has imported sos and loaded the S3 model once per pytest-xdist worker
(:mod:`forked_warm`): a few ms per child.

The children are real processes: their own address space and pid, killed by
``kill -9`` like any, their exit status reported; a child runs its script as
``__main__`` with the ``sys.argv``, environment and working directory it
would have had, its stdout and stderr in files the parent reads, and the
``atexit`` handlers run at its end as in a normal exit. Tests about starting
Python itself (``python -m sos``'s entry point, a missing boto3) still start
a fresh interpreter.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import runpy
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_context: Any = None
_outputs: Any = None  # the children's stdout and stderr files, removed at exit


def context() -> Any:
    """The fork server context, started with the warm modules preloaded."""
    global _context, _outputs
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["forked_warm"])
        _outputs = tempfile.TemporaryDirectory(prefix="sos-forked-")
    from multiprocessing import forkserver

    forkserver.ensure_running()  # its fds stay open for the session
    return _context


class Child:
    """A forked child, with the part of :class:`subprocess.Popen` the tests use."""

    def __init__(self, process: Any, out: Path, err: Path) -> None:
        self._process = process
        self._out, self._err = out, err
        self.pid: int = process.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self._process.exitcode is not None:
            self._finish()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise TimeoutError(f"forked child {self.pid} still running after {timeout} s")
        self._finish()
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait, then (stdout, stderr) as text."""
        self.wait(timeout)
        return self.stdout, self.stderr

    def wait_for_line(self, line: str, timeout: float = 60) -> None:
        """Wait until the child has printed ``line`` (flushed), while it runs."""
        deadline = time.monotonic() + timeout
        while line not in self.stdout.splitlines():
            if self.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"forked child {self.pid} never printed {line!r} "
                    f"(exit {self.returncode}); stderr:\n{self.stderr}"
                )
            time.sleep(0.005)

    @property
    def stdout(self) -> str:
        return self._out.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.read_text(encoding="utf-8", errors="replace")

    def _finish(self) -> None:
        self.returncode = self._process.exitcode
        self._process.close()  # its sentinel fd: the suite checks for leaked fds


def start(
    *argv: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    rlimits: dict[int, int] | None = None,
) -> Child:
    """Fork ``python *argv`` (``script.py args``, ``-c code args`` or ``-m
    module args``) with ``env`` and ``cwd`` (this process's by default) and
    ``rlimits`` (``resource.RLIMIT_*`` -> soft and hard limit, set before the
    script starts); its output goes to files in a directory removed when this
    process exits."""
    ctx = context()
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    out, err = (Path(_outputs.name) / f"child-{stamp}.{ext}" for ext in ("out", "err"))
    out.touch()  # readable before the child opens them
    err.touch()
    process = ctx.Process(
        target=_main,
        args=(
            list(argv),
            dict(os.environ if env is None else env),
            os.getcwd() if cwd is None else cwd,
            str(out),
            str(err),
            dict(rlimits or {}),
        ),
    )
    process.start()
    return Child(process, out, err)


def run(*argv: str, timeout: float = 120) -> Child:
    """:func:`start`, then wait (a ``subprocess.run`` with its output captured)."""
    child = start(*argv)
    child.wait(timeout)
    return child


def _main(
    argv: list[str], env: dict[str, str], cwd: str, out: str, err: str, rlimits: dict[int, int]
) -> None:
    """In the child: become ``python *argv`` and run it as ``__main__``."""
    # Killed with the fork server, which ends with the test process: a child
    # a failed test left running (a writer in an endless loop) ends too.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    if rlimits:
        import resource  # POSIX only: the Windows run (tests/windows) imports this module

        for which, value in rlimits.items():
            resource.setrlimit(which, (value, value))
    try:
        if argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        elif argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path.insert(0, str(Path(argv[0]).resolve().parent))  # as python script.py
            runpy.run_path(argv[0], run_name="__main__")
    finally:
        atexit._run_exitfuncs()  # as a normal exit does (multiprocessing skips them)
        sys.stdout.flush()
        sys.stderr.flush()

"""Fork-heavy tests run in a small helper process instead of the pytest worker.

A crash-point test forks a child per crash point and another to verify it
(~1,700 in a default run). The cost of a fork and of its child's exit grows
with the parent's memory: a pytest-xdist worker that has collected every test
module (boto3 and botocore, pydantic, hypothesis...) is 77-120 MB: a fork
plus its child's exit took ~7.3 ms of CPU from a 117 MB process, 3.5 ms from
a 36 MB one, 1.2 ms from 16 MB (200 each; the suite is CPU-bound on two
cores, and one worker forked 1,616 times in a run). So each
worker starts one helper: a fresh ``python`` that imports only what the tests
it is handed import. A test decorated with :func:`in_lean_process` runs there,
whole: its closures, its forks, its ``kill -9`` stand-ins (``os._exit``)
and its assertions, from a parent of 34-38 MB. The worker sends the test's
module, name and arguments (its fixtures' values: paths, parameters, which
must pickle) and gets back its outcome, its output and the reliability
figures it counted.

What the worker's autouse fixtures do for every test is done here per call
too: the test's ``tempfile`` directory is the worker's (tmpfs), a leaked file
descriptor or thread fails it, and the broken build a mutant run put in the
worker (``SOS_MUTANT``, tests/reliability/mutants.py) is put in the helper.
Each reply carries its request's number, so a reply can never be taken for
another test's; a process forked by a test that comes back here instead of
dying is stopped before it can answer.
"""

from __future__ import annotations

import ast
import functools
import gc
import importlib
import importlib.util
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from s3.weed import die_with_parent, tail

_HEADER = struct.Struct("<Q")
_HARNESS = "reliability.harness"  # its figures, where the test counts some
_LOGS = tempfile.gettempdir()  # read at import: not a test's scratch directory
_ESCAPED = 70  # the exit status of a test's child that came back to the helper's loop
#: pytest's outcomes, which do not pickle: sent by name, raised again in the
#: worker (xfail first: its exception is a kind of fail's)
_OUTCOMES: dict[str, Callable[[str], Any]] = {
    "xfail": pytest.xfail,
    "skip": pytest.skip,
    "fail": pytest.fail,
}


def in_lean_process(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` in this worker's lean helper (its arguments must pickle).

    Put it under ``@pytest.mark.parametrize``: pytest reads the test's own
    signature through it to find the fixtures."""

    @functools.wraps(test)
    def wrapper(**kwargs: Any) -> None:
        helper().call(test.__module__, test.__qualname__, kwargs)

    return pytest.mark.usefixtures("lean_helper")(wrapper)


class Helper:
    """The worker's end: a running helper and the two pipes to it."""

    def __init__(self) -> None:
        to_helper, from_worker = os.pipe()
        from_helper, to_worker = os.pipe()
        for fd in (to_helper, from_helper):
            os.set_inheritable(fd, False)
        # Its output, a test's included, goes to a log it reads back per test.
        log, self.log = tempfile.mkstemp(prefix="sos-lean-", suffix=".log", dir=_LOGS)
        code = f"import sys; sys.path[:] = sys.argv[2:]; from {__name__} import serve; serve()"
        arguments = [str(to_helper), str(to_worker), str(os.getpid()), self.log, _mutant()]
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, ",".join(arguments), *sys.path],
            pass_fds=(to_helper, to_worker),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        os.close(log)
        os.close(to_helper)
        os.close(to_worker)
        self._out = os.fdopen(from_worker, "wb")
        self._in = os.fdopen(from_helper, "rb")
        self._number = 0

    def call(self, module: str, name: str, kwargs: dict[str, Any]) -> None:
        self._number += 1
        _send(self._out, (self._number, module, name, kwargs, tempfile.tempdir))
        try:
            while True:  # a reply to a request an interrupted call left behind is skipped
                number, status, error, text, output, figures = _receive(self._in)
                if number == self._number:
                    break
        except EOFError:
            raise RuntimeError(
                f"the lean helper died running {module}.{name} (exit status "
                f"{self.process.wait()}); its log ({self.log}):\n{tail(Path(self.log))}"
            ) from None
        sys.stdout.write(output)  # captured by pytest for this test's report
        harness = sys.modules.get(_HARNESS)
        if harness is not None:
            for figure, count in figures.items():
                harness.add_figure(figure, count)
        if status == "ok":
            return
        if status in _OUTCOMES:
            _OUTCOMES[status](text)
        if error is None:  # it did not survive pickling: its traceback instead
            error = AssertionError(text)
        else:
            error.add_note(f"in the lean helper (tests/lean.py):\n{text}")
        raise error

    def close(self) -> None:
        self._out.close()
        self._in.close()
        self.process.wait()
        Path(self.log).unlink(missing_ok=True)


_helper: Helper | None = None


def helper() -> Helper:
    """This worker's helper, started on first use (the ``lean_helper``
    fixture starts it before a test's leak check counts descriptors)."""
    global _helper
    if _helper is not None and _helper.process.poll() is not None:
        stop()  # it died with a test (that test failed): a new one for the next
    if _helper is None:
        _helper = Helper()
    return _helper


def stop() -> None:
    global _helper
    if _helper is not None:
        _helper.close()
        _helper = None


def _mutant() -> str:
    """The name of the broken build in the worker's ``sos.storage.atomic.ops``, or ""."""
    mutants = sys.modules.get("reliability.mutants")
    if mutants is None:
        return ""
    from sos.storage import atomic

    built = type(atomic.ops)
    return next((name for name, kind in mutants.MUTANTS.items() if kind is built), "")


# -- the helper's end ----------------------------------------------------------------


def serve() -> None:
    """Run the tests the worker sends, one at a time, until it closes the pipe."""
    requests, replies, worker, log, mutant = sys.argv[1].split(",")
    die_with_parent()  # here, not between fork and exec in the worker
    if os.getppid() != int(worker):
        return  # the worker died before that took hold
    import conftest  # tests/conftest.py: what the worker warms before forking

    if mutant:
        from reliability.mutants import MUTANTS

        from sos.storage import atomic

        atomic.ops = MUTANTS[mutant]()
    conftest.warm_for_forks()
    me = os.getpid()
    incoming = os.fdopen(int(requests), "rb")
    outgoing = os.fdopen(int(replies), "wb")
    while True:
        try:
            number, module, name, kwargs, tempdir = _receive(incoming)
        except EOFError:
            return
        reply = (number, *_run(module, name, kwargs, tempdir, log))
        if os.getpid() != me:  # a test's forked child came back here: it must not answer
            os._exit(_ESCAPED)
        _send(outgoing, reply)


def _run(
    module: str, name: str, kwargs: dict[str, Any], tempdir: str | None, log: str
) -> tuple[Any, ...]:
    harness = importlib.import_module(_HARNESS)
    harness.FIGURES.clear()
    saved = tempfile.tempdir
    tempfile.tempdir = tempdir
    start = os.lseek(1, 0, os.SEEK_END)  # stdout and stderr are the log
    try:
        test = getattr(_import(module), name)
        fds, threads = _open_fds(), threading.active_count()
        test.__wrapped__(**kwargs)
        _no_leaks(fds, threads)
        status, error, text = "ok", None, ""
    except BaseException as exc:  # the worker reports it as the test's outcome
        status, error, text = "error", exc, traceback.format_exc()
        for outcome, raised in _OUTCOMES.items():
            if isinstance(exc, raised.Exception):  # type: ignore[attr-defined]
                status, error, text = outcome, None, str(exc.msg)  # type: ignore[attr-defined]
                break
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        tempfile.tempdir = saved
    with open(log, "rb") as f:
        f.seek(start)
        output = f.read().decode("utf-8", "replace")
    try:
        pickle.loads(pickle.dumps(error))  # it must come back whole, or not at all
    except Exception:
        error = None
    return status, error, text, output, dict(harness.FIGURES)


def _import(module: str) -> Any:
    """``module``, its ``assert`` statements rewritten as pytest does in the
    worker, so that a failure here shows the values compared too."""
    if module in sys.modules:
        return sys.modules[module]
    from _pytest.assertion.rewrite import rewrite_asserts

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None and spec.loader is not None, module
    source = Path(spec.origin).read_bytes()
    tree = ast.parse(source, spec.origin)
    rewrite_asserts(tree, source, spec.origin)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    try:
        exec(compile(tree, spec.origin, "exec", dont_inherit=True), loaded.__dict__)
    except BaseException:
        del sys.modules[module]
        raise
    return loaded


def _open_fds() -> int:
    """How many descriptors are open, or -1 where /proc does not say (as
    tests/conftest.py's ``no_leaks``, which then counts threads only)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:
        return -1


def _no_leaks(fds: int, threads: int) -> None:
    """tests/conftest.py's ``no_leaks``, for the part of a test run here."""
    if fds >= 0:
        if _open_fds() > fds:
            gc.collect()  # maybe only garbage not yet collected
        leaked = _open_fds() - fds
        assert leaked <= 0, f"leaked {leaked} file descriptor(s)"
    assert threading.active_count() <= threads, "leaked a thread"


def _send(pipe: Any, message: Any) -> None:
    data = pickle.dumps(message)
    pipe.write(_HEADER.pack(len(data)) + data)
    pipe.flush()


def _receive(pipe: Any) -> Any:
    header = pipe.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = pipe.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)

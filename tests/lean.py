"""Fork-heavy tests run in a small helper process instead of the pytest worker.

A crash-point test forks a child per crash point and another to verify it
(~1,700 in a default run). The cost of a fork and of its child's exit grows
with the parent's memory: a pytest-xdist worker that has collected every test
module (boto3 and botocore, pydantic, hypothesis...) is 77-120 MB, and a
fork plus exit from it took ~8 ms of CPU where one from a 37 MB process took
~3.5 ms (3,000 forks measured; the suite is CPU-bound on two cores). So each
worker starts one helper: a fresh ``python`` that imports only what the tests
it is handed import. A test decorated with :func:`in_lean_process` runs there,
whole: its closures, its forks, its ``kill -9`` stand-ins (``os._exit``)
and its assertions, from a parent of ~40 MB. The worker sends the test's
module, name and arguments (its fixtures' values: paths, parameters, which
must pickle) and gets back its outcome, its output and the reliability
figures it counted.

What the worker's autouse fixtures do for every test is done here per call
too: the test's ``tempfile`` directory is the worker's (tmpfs), a leaked file
descriptor or thread fails it, and ``SOS_MUTANT`` (a broken build, for the
mutant runs) is installed in the helper as in the worker.
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
        code = (
            "import sys; sys.path[:] = sys.argv[3:]; "
            f"from {__name__} import serve; serve(int(sys.argv[1]), int(sys.argv[2]))"
        )
        # What it prints outside a test (an error while starting) goes to a log.
        log, self.log = tempfile.mkstemp(prefix="sos-lean-", suffix=".log")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(to_helper), str(to_worker), *sys.path],
            pass_fds=(to_helper, to_worker),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        os.close(log)
        os.close(to_helper)
        os.close(to_worker)
        self._out = os.fdopen(from_worker, "wb")
        self._in = os.fdopen(from_helper, "rb")

    def call(self, module: str, name: str, kwargs: dict[str, Any]) -> None:
        _send(self._out, (module, name, kwargs, tempfile.tempdir))
        try:
            status, error, text, output, figures = _receive(self._in)
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
        if error is None:  # it did not pickle: its type and text instead
            error = AssertionError(text)
        else:
            error.add_note(f"in the lean helper (tests/lean.py):\n{text}")
        raise error

    def close(self) -> None:
        self._out.close()
        self._in.close()
        self.process.wait()
        os.unlink(self.log)


_helper: Helper | None = None


def helper() -> Helper:
    """This worker's helper, started on first use (the ``lean_helper``
    fixture starts it before a test's leak check counts descriptors)."""
    global _helper
    if _helper is None or _helper.process.poll() is not None:
        _helper = Helper()
    return _helper


def stop() -> None:
    global _helper
    if _helper is not None:
        _helper.close()
        _helper = None


# -- the helper's end ----------------------------------------------------------------


def serve(requests: int, replies: int) -> None:
    """Run the tests the worker sends, one at a time, until it closes the pipe."""
    import conftest  # tests/conftest.py: what the worker warms before forking
    from reliability.mutants import install_from_environment

    install_from_environment()
    conftest.warm_for_forks()
    incoming = os.fdopen(requests, "rb")
    outgoing = os.fdopen(replies, "wb")
    while True:
        try:
            module, name, kwargs, tempdir = _receive(incoming)
        except EOFError:
            return
        _send(outgoing, _run(module, name, kwargs, tempdir))


def _run(module: str, name: str, kwargs: dict[str, Any], tempdir: str | None) -> tuple[Any, ...]:
    harness = importlib.import_module(_HARNESS)
    harness.FIGURES.clear()
    saved = tempfile.tempdir
    tempfile.tempdir = tempdir
    with tempfile.TemporaryFile() as capture:
        saved_fds = os.dup(1), os.dup(2)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            test = getattr(_import(module), name)
            fds, threads = _open_fds(), threading.active_count()
            test.__wrapped__(**kwargs)
            _no_leaks(fds, threads)
            status, error, text = "ok", None, ""
        except BaseException as exc:  # the worker reports it as the test's outcome
            status, error, text = "error", exc, traceback.format_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])
            tempfile.tempdir = saved
        capture.seek(0)
        output = capture.read().decode("utf-8", "replace")
    try:
        pickle.dumps(error)
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
    return len(os.listdir("/proc/self/fd"))


def _no_leaks(fds: int, threads: int) -> None:
    """tests/conftest.py's ``no_leaks``, for the part of a test run here."""
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

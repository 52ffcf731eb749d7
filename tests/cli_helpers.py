"""Run ``sos`` as a user's shell would: in-process by default (``main(argv)``
with stdin, stdout, stderr, the environment and the working directory swapped
for the call), or the real executable in a subprocess (``sos_exe``) where the
test is about the program itself (console script, ``python -m sos``, a broken
pipe, a terminal). Git always runs as a subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# The console script pip installed next to this interpreter.
SOS = str(Path(sys.executable).with_name("sos"))


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment that does not depend on the machine: git identity, no user config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SOS_"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Ada",
        GIT_AUTHOR_EMAIL="ada@example.org",
        GIT_COMMITTER_NAME="Ada",
        GIT_COMMITTER_EMAIL="ada@example.org",
        LC_ALL="C.UTF-8",
        PATH=f"{Path(SOS).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update(extra)
    return env


def run(
    *args: str | Path,
    cwd: Path | None = None,
    input: str | None = None,  # noqa: A002 - as subprocess.run
    env: dict[str, str] | None = None,
    expect: int | None = 0,
) -> subprocess.CompletedProcess[str]:
    """Run a program; check its exit status unless ``expect`` is None."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        input=input,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if expect is not None:
        assert proc.returncode == expect, (
            f"{args} exited {proc.returncode}, not {expect}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def sos_exe(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    """The installed console script, in a subprocess."""
    return run(SOS, *args, **kwargs)


@contextlib.contextmanager
def _environment(env: dict[str, str] | None, cwd: Path | None) -> Iterator[None]:
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def sos(
    *args: str | Path,
    cwd: Path | None = None,
    input: str | None = None,  # noqa: A002 - as subprocess.run
    env: dict[str, str] | None = None,
    expect: int | None = 0,
) -> subprocess.CompletedProcess[str]:
    """``sos ARGS`` in this process: ``sos.cli.main`` with its own stdin/stdout/stderr.

    Same result object and checks as :func:`run`; an exception that main lets
    through (a traceback, for a user) fails the test.
    """
    from sos.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(input if input is not None else "")
    saved = sys.stdin
    try:
        sys.stdin = stdin
        with (
            _environment(env, cwd),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            status = main(argv)
    finally:
        sys.stdin = saved
    proc = subprocess.CompletedProcess(["sos", *argv], status, out.getvalue(), err.getvalue())
    if expect is not None:
        assert status == expect, (
            f"sos {argv} exited {status}, not {expect}\nstdout: {proc.stdout}\n"
            f"stderr: {proc.stderr}"
        )
    return proc


def git(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return run("git", *args, **kwargs)


def default_sigint() -> None:
    """``preexec_fn`` for a child a test stops with Ctrl-C (SIGINT).

    A shell starts a background job (``pytest &``) with SIGINT ignored, an
    ignored signal stays ignored across fork and exec, and Python turns SIGINT
    into KeyboardInterrupt only where it found the default action: without
    this the child would never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)

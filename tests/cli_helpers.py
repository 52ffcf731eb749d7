"""Run the real ``sos`` executable (and git) in subprocesses, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
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


def sos(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return run(SOS, *args, **kwargs)


def git(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return run("git", *args, **kwargs)

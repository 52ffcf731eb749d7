"""Run code in python.org's CPython 3.13 for Windows under Wine, from Linux tests.

``.ci/wine.sh`` makes the interpreter and the Wine prefix (cached in
``$SOS_WINE_DIR``, default ``~/.cache/sos-wine``). The prefix is shared
between runs because making one costs 10-15 s and 700 MB; the stores the
tests write live in pytest's temporary directories, seen from Windows as
``Z:\\tmp\\...``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WINE_DIR = Path(os.environ.get("SOS_WINE_DIR") or Path.home() / ".cache" / "sos-wine")
PYTHON_EXE = WINE_DIR / "python" / "python.exe"
SETUP_HINT = "run .ci/wine.sh (installs wine and the Windows Python, cached) first"


def winpath(path: str | os.PathLike[str]) -> str:
    """The Windows name of a Linux path: Wine maps / to drive Z:."""
    return "Z:" + str(Path(path).resolve()).replace("/", "\\")


class Wine:
    """Starts Windows Python processes with sos importable from this checkout."""

    def __init__(self, cwd: Path) -> None:
        missing = [
            what
            for what, ok in (
                ("wine", shutil.which("wine") is not None),
                (str(PYTHON_EXE), PYTHON_EXE.is_file()),
            )
            if not ok
        ]
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: {SETUP_HINT}")
        self.cwd = cwd
        self.env = dict(os.environ, WINEPREFIX=str(WINE_DIR / "prefix"), WINEDEBUG="-all")
        self.env.pop("PYTHONPATH", None)
        self.prelude = (
            # Bytecode is cached beside the prefix, never in the checkout.
            # The checkout goes last on the path: every import looks in each
            # entry before the one holding its module, and under Wine a look
            # in a directory is a stat through wineserver (~1.3 ms) where one
            # in the standard library's zip is none: `import sos, sos.cli`
            # took 1.4 s with the checkout first, 0.57 s last.
            f"import sys; sys.pycache_prefix = {winpath(WINE_DIR / 'pycache')!r}; "
            f"sys.path += [{winpath(REPO)!r}, {winpath(REPO / 'tests')!r}]\n"
        )
        # Wine's helper processes (services, explorer) keep the output of the
        # process that starts them open: start them, and a wineserver that
        # outlives its last client by 10 s, with output sent nowhere, or every
        # read of a later process's output to its end waits for them.
        null = subprocess.DEVNULL
        subprocess.run(
            ["wineserver", "-p", "10"],
            env=self.env,
            stdin=null,
            stdout=null,
            stderr=null,
            check=False,
        )
        boot = subprocess.run(
            [*self.argv("pass")],
            env=self.env,
            cwd=cwd,
            stdin=null,
            stdout=null,
            stderr=null,
            timeout=120,
            check=False,
        )
        if boot.returncode != 0:
            raise RuntimeError(f"the Windows Python does not start under Wine: {SETUP_HINT}")

    def argv(self, code: str, *args: str) -> list[str]:
        return ["wine", str(PYTHON_EXE), "-c", self.prelude + code, *args]

    def run(
        self,
        code: str,
        *args: str,
        timeout: float = 60,
        check: bool = True,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` with ``sys.argv[1:] == args``; its output, failing loudly."""
        result = subprocess.run(
            self.argv(code, *args),
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise AssertionError(
                f"Windows Python exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def start(self, code: str, *args: str) -> subprocess.Popen[str]:
        """As :meth:`run`, without waiting: for processes that overlap."""
        return subprocess.Popen(
            self.argv(code, *args),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for a :meth:`Wine.start` process; its output, or AssertionError."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"Windows Python exited {proc.returncode}:\n{out}{err}")
    return out


def finish_all(procs: list[subprocess.Popen[str]], timeout: float = 180) -> list[str]:
    """:func:`finish` for each, every one waited for (and its pipes closed) first."""
    results: list[str | AssertionError] = []
    for proc in procs:
        try:
            results.append(finish(proc, timeout))
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            proc.kill()
            proc.communicate()
            results.append(AssertionError(str(exc)))
    for result in results:
        if isinstance(result, AssertionError):
            raise result
    return [r for r in results if isinstance(r, str)]

"""Print the figures the reliability suites counted, at the end of the run;
put a broken build in place when ``SOS_MUTANT`` names one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import FIGURES
from .mutants import install_from_environment


def pytest_configure(config: pytest.Config) -> None:
    """``SOS_MUTANT=<name>``: run against a broken build (see mutants.py)."""
    install_from_environment()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist: hand this worker's counts to the controller, which
    prints them and writes ``SOS_FIGURES`` (tests/conftest.py)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput.setdefault("sos_figures", {})["sos reliability figures"] = dict(FIGURES)


def pytest_terminal_summary(terminalreporter) -> None:
    mutant = os.environ.get("SOS_MUTANT")
    if mutant:
        terminalreporter.section(f"sos: this run used the broken build {mutant!r}")
    if not FIGURES:
        return
    terminalreporter.section("sos reliability figures")
    for name, count in FIGURES.items():
        terminalreporter.write_line(f"{name}: {count}")
    target = os.environ.get("SOS_FIGURES")
    if target:  # for docs/reliability.md: the figures of the last full run
        with open(target, "w", encoding="utf-8") as f:
            json.dump(FIGURES, f, indent=2)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory on tmpfs (/dev/shm) where there is one.

    Crash points and the power-loss model do not depend on the disk keeping
    anything (process death loses nothing the kernel has; power loss is
    modelled, not done), but they pay every fsync: on tmpfs an fsync is free,
    and these suites run several times faster. SOS_TEST_DISK=1 keeps them on
    the real disk.
    """
    shm = Path("/dev/shm")
    if os.environ.get("SOS_TEST_DISK") == "1" or not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="sos-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

"""Print the figures the fault suite counted, at the end of the run."""

from __future__ import annotations

import pytest

from .figures import FIGURES


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist: hand this worker's counts to the controller, which
    prints them (tests/conftest.py)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput.setdefault("sos_figures", {})["sos fault figures"] = dict(FIGURES)


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("sos fault figures")
    for name, count in FIGURES.items():
        terminalreporter.write_line(f"{name}: {count}")

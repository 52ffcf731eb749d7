"""The fault suite's warm children, and the figures it counted, printed at
the end of the run."""

from __future__ import annotations

import pytest

from .figures import FIGURES


@pytest.fixture(autouse=True)
def _warm_children(fork_server: None) -> None:
    """The reads under limits run in children forked warm (limits.py): the
    fork server starts before a test's leak check counts descriptors."""


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

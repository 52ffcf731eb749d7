"""Print the figures the fault suite counted, at the end of the run."""

from __future__ import annotations

from .figures import FIGURES


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("sos fault figures")
    for name, count in FIGURES.items():
        terminalreporter.write_line(f"{name}: {count}")

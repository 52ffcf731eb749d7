"""Print the figures the reliability suites counted, at the end of the run."""

from __future__ import annotations

import json
import os

from .harness import FIGURES


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("sos reliability figures")
    for name, count in FIGURES.items():
        terminalreporter.write_line(f"{name}: {count}")
    target = os.environ.get("SOS_FIGURES")
    if target:  # for docs/reliability.md: the figures of the last full run
        with open(target, "w", encoding="utf-8") as f:
            json.dump(FIGURES, f, indent=2)

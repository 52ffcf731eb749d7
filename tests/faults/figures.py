"""Counts the fault suites report (operations, syscalls, occurrences, cases)."""

from __future__ import annotations

import os

FIGURES: dict[str, int] = {}
# SOS_LONG=1: every occurrence of every syscall; else a sample (see test_inject).
LONG = os.environ.get("SOS_LONG") == "1"


def add(name: str, count: int = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + count

"""Process death at every filesystem step of every mutating call.

From the same pre-state each time, a forked child performs the call and dies
(``os._exit``: no cleanup, as ``kill -9``) just before step k, for k = 0, 1,
2 ... until the call completes; a ``write`` step is also cut halfway. A fresh
process then checks the invariant (harness.violations).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from lean import in_lean_process

from sos import format as _format
from sos.storage import atomic as _atomic

from . import harness
from .mutants import InPlace
from .operations import OPERATIONS, Operation


def crash_points(
    op: Operation, base: Path, broken: Callable[[], None] | None = None
) -> tuple[int, list[str]]:
    """Crash ``op`` at each of its steps; (points tried, violations found).

    ``broken``, if given, breaks the build inside each writing child.
    """
    pre = base / "pre" / "store"
    work = base / "work" / "store"
    work.parent.mkdir(parents=True, exist_ok=True)
    if not op.creates:
        harness.make_store(pre, op.kind, op.pre)

    def reset() -> None:
        if op.creates:
            shutil.rmtree(work, ignore_errors=True)
        else:
            harness.replace_tree(pre, work)

    expected = op.expected()

    def verify(done: bool) -> list[str]:
        return harness.violations(str(work), op.kind, op.pre, expected, done=done)

    return harness.crash_loop(op.name, reset, lambda: op.run(str(work)), verify, broken, state=work)


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
@in_lean_process
def test_crash_at_every_step(op: Operation, fast_dir: Path):
    tried, found = crash_points(op, fast_dir)
    harness.add_figure("crash points", tried)
    assert found == []
    assert tried >= 2  # every operation here writes something


@in_lean_process
def test_crash_points_catch_in_place_writes(fast_dir: Path):
    """A build that overwrites files in place (as dictdatabase does) goes red."""

    def broken() -> None:
        _atomic.ops = InPlace()  # the crash points' recording goes below it

    op = next(o for o in OPERATIONS if o.name == "dict overwrite")
    _, found = crash_points(op, fast_dir, broken)
    assert any("torn or invalid document" in f or "CorruptError" in f for f in found), found


@in_lean_process
def test_crash_points_catch_manifest_written_first(fast_dir: Path):
    """A List that replaces order.txt before its new item files goes red."""

    def broken() -> None:
        real_write_file = _atomic.write_file
        pending: list[tuple[str, bytes]] = []

        real_replace_file = _atomic.replace_file

        def items_after_manifest(path: str, data: bytes, *, sync_dir: bool = True) -> None:
            if os.path.basename(path) != _format.ORDER_NAME:
                real_write_file(path, data, sync_dir=sync_dir)
                return
            real_write_file(path, data, sync_dir=sync_dir)
            for p, d in pending:
                real_write_file(p, d)

        def manifest_then_items(path: str, data: bytes, mode: int | None) -> object:
            written = real_replace_file(path, data, mode)  # the List's manifest write
            for p, d in pending:
                real_write_file(p, d)
            return written

        _atomic.write_files = lambda entries, threads=8, **_: pending.extend(entries)
        _atomic.write_file = items_after_manifest
        _atomic.replace_file = manifest_then_items

    op = next(o for o in OPERATIONS if o.name == "list append")
    _, found = crash_points(op, fast_dir, broken)
    assert any("manifest names missing item" in f or "CorruptError" in f for f in found), found

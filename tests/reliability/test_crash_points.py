"""Process death at every filesystem step of every mutating call.

For each operation the steps are counted first; then, from the same
pre-state, a forked child performs the call and dies (``os._exit``, no
cleanup, as ``kill -9``) just before step k, for every k; a ``write`` step is
also cut halfway. A fresh process then checks the invariant (harness.violations).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sos import _atomic, _format

from . import harness
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

    found: list[str] = []
    tried = 0
    expected = op.expected()
    # The number of steps varies (a new fan-out directory costs two more, the
    # pool orders its threads' steps as it likes): go on until a child
    # finishes without reaching step k.
    for k in range(10_000):
        for torn in (False, True):
            reset()

            def die_at_k(k: int = k, torn: bool = torn) -> None:
                if broken is not None:
                    broken()
                _atomic.ops = harness.CrashOps(k, torn)
                op.run(str(work))

            code = harness.fork_exit_code(die_at_k)
            if code not in (0, harness.CRASH_EXIT, harness.CRASH_EXIT_WRITE):
                found.append(f"step {k}: child exited {code}")
                return tried, found
            tried += 1
            done = code == 0
            problems = harness.in_fork(
                lambda done=done: harness.violations(
                    str(work), op.kind, op.pre, expected, done=done
                )
            )
            where = "after the call returned" if done else f"killed before step {k}"
            where += " (mid-write)" if torn else ""
            found += [f"{op.name}, {where}: {p}" for p in problems]
            if done:
                return tried, found
            if code != harness.CRASH_EXIT_WRITE:
                break  # only a write step has a halfway point
    return tried, found


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_crash_at_every_step(op: Operation, tmp_path: Path):
    tried, found = crash_points(op, tmp_path)
    harness.add_figure("crash points", tried)
    assert found == []
    assert tried >= 2  # every operation here writes something


def test_crash_points_catch_in_place_writes(tmp_path: Path):
    """A build that overwrites files in place (as dictdatabase does) goes red."""

    def in_place(path: str, data: bytes, *, sync_dir: bool = True) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _atomic.ops.write(fd, data)
            _atomic.ops.fsync(fd)
        finally:
            _atomic.ops.close(fd)

    def broken() -> None:
        _atomic.write_file = in_place

    op = next(o for o in OPERATIONS if o.name == "dict overwrite")
    _, found = crash_points(op, tmp_path, broken)
    assert any("torn or invalid document" in f or "CorruptError" in f for f in found), found


def test_crash_points_catch_manifest_written_first(tmp_path: Path):
    """A List that replaces order.txt before its new item files goes red."""

    def broken() -> None:
        real_write_file = _atomic.write_file
        pending: list[tuple[str, bytes]] = []

        def items_after_manifest(path: str, data: bytes, *, sync_dir: bool = True) -> None:
            if os.path.basename(path) != _format.ORDER_NAME:
                real_write_file(path, data, sync_dir=sync_dir)
                return
            real_write_file(path, data, sync_dir=sync_dir)
            for p, d in pending:
                real_write_file(p, d)

        _atomic.write_files = lambda entries, threads=8: pending.extend(entries)
        _atomic.write_file = items_after_manifest

    op = next(o for o in OPERATIONS if o.name == "list append")
    _, found = crash_points(op, tmp_path, broken)
    assert any("manifest names missing item" in f or "CorruptError" in f for f in found), found

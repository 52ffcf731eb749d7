"""Power loss: every disk state a power cut may leave (see powerloss.py) is
rebuilt in a fresh directory and checked with fresh handles."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sos import format as _format
from sos.storage import atomic as _atomic

from . import harness
from .mutants import Layer, NoDirFsyncAfterRename, RenameBeforeFsync
from .operations import OPERATIONS, Operation
from .powerloss import check_power_cuts

LONG = os.environ.get("SOS_LONG") == "1"
STATES_PER_POINT = 24


def power_loss(
    op: Operation,
    base: Path,
    broken: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> tuple[int, list[str]]:
    """(distinct crash states checked, violations) for one call of ``op``.

    ``broken`` breaks the build while the call is recorded (not while checking).
    A transaction (Dict.update) applies without per-file fsync, so its states
    multiply: the default run checks a sample at every crash point, SOS_LONG=1
    checks them all.
    """

    def prepare(store: Path) -> None:
        if not op.creates:
            harness.make_store(store, op.kind, op.pre)

    expected = op.expected()
    return check_power_cuts(
        base,
        op.name,
        prepare,
        lambda store: op.run(str(store)),
        lambda store, done: harness.violations(str(store), op.kind, op.pre, expected, done=done),
        broken,
        None if LONG else STATES_PER_POINT,
    )


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_every_power_loss_state(op: Operation, fast_dir: Path):
    states, found = power_loss(op, fast_dir)
    harness.add_figure("power-loss states", states)
    assert found == []
    assert states >= 2


def _break(layer: type[Layer]) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A broken build for the recorded call: ``layer`` over the recording, so
    the steps recorded are the ones the broken build takes (every write
    path calls ``ops``, the plain set's one-frame path too)."""

    @contextlib.contextmanager
    def patch() -> Iterator[None]:
        broken = layer()
        broken.below = _atomic.ops
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_atomic, "ops", broken)
            yield

    return patch


@pytest.mark.parametrize(
    "name", ["dict overwrite", "dict overwrite, warm handle", "dict set new key", "list append"]
)
def test_model_catches_a_missing_directory_fsync(name: str, fast_dir: Path):
    op = next(o for o in OPERATIONS if o.name == name)
    _, found = power_loss(op, fast_dir, _break(NoDirFsyncAfterRename))
    assert found, "the model saw nothing wrong with a rename that is never made durable"


@pytest.mark.parametrize("name", ["dict overwrite", "dict overwrite, warm handle", "list insert"])
def test_model_catches_rename_before_fsync(name: str, fast_dir: Path):
    op = next(o for o in OPERATIONS if o.name == name)
    _, found = power_loss(op, fast_dir, _break(RenameBeforeFsync))
    if "warm" in name:  # the file the warm set wrote, not the warm-up's (general path)
        written = _format.key_relpath("a").split("/")[-1]
        found = [f for f in found if written in f]
    assert any("torn" in f or "CorruptError" in f for f in found), found


def test_the_operations_reach_both_write_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The suites judge the one-frame plain set (sos.storage.plain) as well as
    the general path: a warm handle's operations reach the first, a fresh
    handle's the second."""
    from sos.storage import plain as _plain

    reached: list[str] = []
    real = _atomic.replace

    def replace(p: str, d: bytes, *args: bool) -> None:
        if sys._getframe(1).f_code is _plain.write_plain.__code__:  # called by the one frame
            reached.append(op.name)
        real(p, d, *args)

    monkeypatch.setattr(_atomic, "replace", replace)
    for n, op in enumerate(OPERATIONS):
        if not op.creates:
            harness.make_store(tmp_path / str(n), op.kind, op.pre)
            op.run(str(tmp_path / str(n)))
    assert set(reached) == {"dict overwrite, warm handle", "dict set new key, warm handle"}

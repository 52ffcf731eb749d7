"""Transactions after any crash: every key at its old value, or every key at its new.

Three attacks, as for the single operations: process death before every
filesystem step (crash points, recovery's own steps included), every state a
power cut may leave (the power-loss model), and real ``kill -9`` of a process
running transactions in a loop, with a reader process watching. Each suite is
also run on a build broken on purpose (no intent record; the record removed
before the documents are durable) and must go red there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import forked
import pytest
from lean import in_lean_process
from recording import Recording

import sos
from sos import txn as _txn
from sos.storage import atomic as _atomic
from sos.storage.fileops import _SYNCFS

from . import harness
from .powerloss import check_power_cuts

LONG = os.environ.get("SOS_LONG") == "1"
STATES_PER_POINT = 6


@dataclass(frozen=True)
class Txn:
    name: str
    kind: str
    pre: Any
    body: Callable[[Any], None]
    post: Any

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by name (its body is a function of this module): lean.py
        sends it to the helper that runs the test."""
        return (txn_named, (self.name,))


def _transfer(db: Any) -> None:
    with db.transaction():
        db["alice"] = db["alice"] - 10
        db["bob"] = db["bob"] + 10
        db["log"] = ["moved 10"]
        del db["temp"]


def _list_change(lst: Any) -> None:
    with lst.transaction():
        lst[0] = "A"
        lst.append("d")
        del lst[1]


def _update(db: Any) -> None:
    db.update({f"k{i}": i for i in range(6)})


TXNS = [
    Txn(
        "dict transfer",
        "dict",
        {"alice": 100, "bob": 0, "temp": "x"},
        _transfer,
        {"alice": 90, "bob": 10, "log": ["moved 10"]},
    ),
    Txn("list change", "list", ["a", "b", "c"], _list_change, ["A", "c", "d"]),
    Txn(
        "dict update",
        "dict",
        {"k0": "old"},
        _update,
        {f"k{i}": i for i in range(6)},
    ),
]


def txn_named(name: str) -> Txn:
    return next(txn for txn in TXNS if txn.name == name)


def _run(txn: Txn, root: str) -> None:
    store = sos.open(root)
    try:
        txn.body(store)
    finally:
        store.close()


def _state(root: str) -> Any:
    """The content a fresh handle sees (opening recovers a pending record)."""
    store = sos.open(root)
    try:
        return dict(store.items()) if isinstance(store, sos.Dict) else list(store)
    finally:
        store.close()


def all_or_nothing(root: str, txn: Txn, done: bool) -> list[str]:
    try:
        got = _state(root)
    except Exception as exc:
        return [f"reading raised {type(exc).__name__}: {exc}"]
    allowed = [txn.post] if done else [txn.pre, txn.post]
    out = [] if got in allowed else [f"content {got!r:.150} is neither all old nor all new"]
    if os.path.exists(os.path.join(root, _txn.RECORD)):
        out.append("a transaction record is still pending after the store was opened")
    if not out:
        problems = [p for p in sos.check(root) if p.code != "temp-file"]
        out += [f"sos check: {p}" for p in problems]
    return out


def _prepare(txn: Txn, root: Path) -> None:
    harness.make_store(root, txn.kind, txn.pre)
    store = sos.open(root)
    try:  # raise the format once, so every crash point is inside the transaction
        with store.transaction():
            pass
    finally:
        store.close()


# -- crash points -------------------------------------------------------------------


def crash_points(
    txn: Txn, base: Path, broken: Callable[[], None] | None = None
) -> tuple[int, list[str]]:
    pre = base / "pre" / "store"
    work = base / "work" / "store"
    work.parent.mkdir(parents=True, exist_ok=True)
    _prepare(txn, pre)

    def reset() -> None:
        harness.replace_tree(pre, work)

    return harness.crash_loop(
        txn.name,
        reset,
        lambda: _run(txn, str(work)),
        lambda done: all_or_nothing(str(work), txn, done),
        broken,
        state=work,
    )


@pytest.mark.parametrize("txn", TXNS, ids=[t.name for t in TXNS])
@in_lean_process
def test_crash_at_every_step_of_a_transaction(txn: Txn, fast_dir: Path):
    tried, found = crash_points(txn, fast_dir)
    harness.add_figure("transaction crash points", tried)
    assert found == []
    assert tried >= 5


@in_lean_process
def test_crash_at_every_step_of_recovery(fast_dir: Path):
    """A crash while recovery itself runs is recovered by the next open."""
    txn = TXNS[0]
    pre = fast_dir / "pre" / "store"
    _prepare(txn, pre)
    # A pending record, exactly as a crash right after the commit point leaves it.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_txn.Journal, "apply", lambda self: os._exit(0))
        code = harness.fork_exit_code(lambda: _run(txn, str(pre)))
    assert code == 0
    assert (pre / _txn.RECORD).exists()
    work = fast_dir / "work" / "store"
    work.parent.mkdir(parents=True, exist_ok=True)
    tried, found = harness.crash_loop(
        "recovery",
        lambda: harness.replace_tree(pre, work),
        lambda: sos.open(str(work)).close(),
        lambda done: all_or_nothing(str(work), txn, True),
        state=work,
    )
    harness.add_figure("recovery crash points", tried)
    assert found == []
    assert tried >= 5


def _no_record() -> None:
    """A build without the intent record: apply straight away, as batch() does."""
    _txn.Journal.commit = lambda self: None  # type: ignore[method-assign]


@in_lean_process
def test_crash_points_catch_a_transaction_without_a_record(fast_dir: Path):
    _, found = crash_points(TXNS[0], fast_dir, _no_record)
    assert any("neither all old nor all new" in f for f in found), found


# -- power loss ---------------------------------------------------------------------


def power_loss(
    txn: Txn,
    base: Path,
    broken: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> tuple[int, list[str]]:
    """Every power-cut state of one transaction; lazy renames multiply them,
    so the default run samples each crash point (SOS_LONG=1: all)."""
    return check_power_cuts(
        base,
        txn.name,
        lambda store: _prepare(txn, store),
        lambda store: _run(txn, str(store)),
        lambda store, done: all_or_nothing(str(store), txn, done),
        broken,
        None if LONG else STATES_PER_POINT,
    )


@pytest.mark.parametrize("txn", TXNS, ids=[t.name for t in TXNS])
def test_every_power_loss_state_of_a_transaction(txn: Txn, fast_dir: Path):
    states, found = power_loss(txn, fast_dir)
    harness.add_figure("transaction power-loss states", states)
    assert found == []
    assert states >= 5


@contextlib.contextmanager
def _record_removed_first() -> Iterator[None]:
    """A build that removes the record before the documents are durable."""

    def finish(storage: Any, names: list[str], parts: list[str], txn_id: str) -> None:
        storage.remove([*parts, _txn.RECORD])
        storage.sync_names(names)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_txn.recovery, "finish", finish)
        yield


def test_power_loss_catches_the_record_removed_before_documents_are_durable(fast_dir: Path):
    _, found = power_loss(TXNS[0], fast_dir, _record_removed_first)
    assert found, "the model saw nothing wrong with a record dropped too early"


# -- kill -9 with a reader watching ----------------------------------------------------

WRITER = """
import sys, sos
db = sos.Dict(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    with db.transaction():
        a, b = db["a"], db["b"]
        db["a"] = a - 1
        db["b"] = b + 1
        db["n"] = n
    n += 1
"""

READER = """
import sys, sos
db = sos.Dict(sys.argv[1])
reads = 0
while True:
    for key in ("a", "b", "n"):
        value = db[key]          # a torn or empty document raises here
        assert isinstance(value, int), (key, value)
        reads += 1
    if reads % 300 == 0:
        print(reads, flush=True)
"""


@pytest.mark.usefixtures("fork_server")
@pytest.mark.long
def test_kill9_during_transactions_keeps_the_sum(tmp_path: Path):
    root = tmp_path / "store"
    with sos.Dict(root) as db:
        db.update(a=1000, b=0, n=-1)
    kills = 200 if LONG else 15
    reader = forked.start("-c", READER, str(root))  # processes forked warm: tests/forked.py
    try:
        for i in range(kills):
            writer = forked.start("-c", WRITER, str(root))
            writer.wait_for_line("ready")
            time.sleep(0.05 + (i % 7) * 0.03)
            writer.kill()
            assert writer.wait() == -signal.SIGKILL
            with sos.Dict(root) as db:  # opening recovers a record the kill left
                a, b = db["a"], db["b"]
                assert a + b == 1000, f"kill {i}: a={a} b={b}: half a transaction"
            assert reader.poll() is None, reader.stderr
        harness.add_figure("transaction kill -9 kills", kills)
    finally:
        reader.kill()
        reader.wait()
    # A kill mid-write may leave temp files (harmless; repair removes them),
    # never anything worse.
    assert [p for p in sos.check(root) if p.code != "temp-file"] == []
    sos.check(root, repair=True)
    assert sos.check(root) == []


# -- the syncfs path (many files: one flush of the filesystem) ----------------------


@pytest.mark.skipif(_SYNCFS is None, reason="syncfs is Linux-only")
@pytest.mark.parametrize("txn", TXNS, ids=[t.name for t in TXNS])
def test_power_loss_with_syncfs_finishing(
    txn: Txn, fast_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_atomic, "SYNCFS_FROM", 1)  # every finish takes the syncfs path
    states, found = power_loss(txn, fast_dir)
    harness.add_figure("transaction power-loss states (syncfs)", states)
    assert found == []
    assert states >= 5


@pytest.mark.skipif(_SYNCFS is None, reason="syncfs is Linux-only")
def test_power_loss_catches_a_syncfs_that_flushes_nothing(
    fast_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_atomic, "SYNCFS_FROM", 1)

    @contextlib.contextmanager
    def lying_syncfs() -> Iterator[None]:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Recording, "syncfs", lambda self, path: True)
            yield

    _, found = power_loss(TXNS[0], fast_dir, lying_syncfs)
    assert found, "the model saw nothing wrong with a flush that flushed nothing"

"""Batches: buffered writes committed as one group, and what a crash leaves.

The crash tests run the batch in a forked child whose filesystem steps go
through a counting :class:`sos.storage.fileops.FileOps` that ``os._exit``\\ s at step
*k*, for every *k*; the parent then reads the store with a fresh handle.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import snapshot
from lean import in_lean_process
from recording import Recording

import sos
from sos.storage import atomic as _atomic
from sos.storage.fileops import FileOps

# -- helpers ------------------------------------------------------------------


# The one recording FileOps of the tests: records each step's name and path;
# ``CountingOps(k)`` os._exit(77)s just before step k (0-based).
CountingOps = Recording


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Recording:
    ops = Recording()
    monkeypatch.setattr(_atomic, "ops", ops)
    return ops


def names(ops: CountingOps, step: str) -> list[str]:
    return [arg for name, arg in ops.steps if name == step]


def locked_by_someone(directory: Path) -> bool:
    """Ask another process whether it could take the store's writer lock now."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(directory)]).returncode == 3


# -- Dict ---------------------------------------------------------------------


def test_dict_batch_buffers_until_exit_and_reads_see_it(store_path: Path) -> None:
    db = sos.Dict(store_path)
    db.update(a=1, b=2)
    before = snapshot(store_path)
    with db.batch() as same:
        assert same is db
        db["a"] = 10
        db["c"] = 3
        del db["b"]
        assert snapshot(store_path) == before  # nothing written yet
        assert db["a"] == 10 and db["c"] == 3
        assert "b" not in db and "c" in db
        with pytest.raises(KeyError):
            db["b"]
        with pytest.raises(KeyError):
            del db["b"]
        assert sorted(db) == ["a", "c"] and len(db) == 2
        assert dict(db.items()) == {"a": 10, "c": 3}
        assert sorted(sos.Dict(store_path)) == ["a", "b"]  # other handles see the disk
    assert dict(sos.Dict(store_path).items()) == {"a": 10, "c": 3}
    db.close()


def test_dict_batch_discarded_on_exception(store_path: Path) -> None:
    db = sos.Dict(store_path)
    db["a"] = 1
    before = snapshot(store_path)
    with pytest.raises(RuntimeError), db.batch():
        db["a"] = 2
        db["new"] = {"x": 1}
        db.clear()
        raise RuntimeError("boom")
    assert snapshot(store_path) == before
    assert dict(db.items()) == {"a": 1}
    db["b"] = 2  # the handle is usable again, writes go straight to disk
    assert sos.Dict(store_path)["b"] == 2
    db.close()


def test_dict_batch_nested_joins_outer_and_update_inside(store_path: Path) -> None:
    db = sos.Dict(store_path)
    with db.batch():
        db.update({"a": 1}, b=2)
        with db.batch():
            db["c"] = 3
        assert "c" not in sos.Dict(store_path)  # the inner block did not commit
        assert db.pop("a") == 1
        assert db.setdefault("d", 4) == 4
    assert dict(sos.Dict(store_path).items()) == {"b": 2, "c": 3, "d": 4}
    db.close()


def test_dict_batch_is_one_group_commit(store_path: Path, counting: CountingOps) -> None:
    db = sos.Dict(store_path)
    db.update({f"k{i}": 0 for i in range(50)})  # fan-out directories exist
    dirs = {os.path.dirname(db.path_of(f"k{i}")) for i in range(50)}
    counting.steps.clear()
    with db.batch():
        for i in range(50):
            db[f"k{i}"] = i
        del db["k0"]
    assert len(names(counting, "rename")) == 49 + 0  # k0 set then deleted: not written
    assert len(names(counting, "fsync")) == 49
    assert sorted(names(counting, "fsync_dir")) == sorted(dirs)  # once per directory
    assert names(counting, "unlink") == [db.path_of("k0")]
    db.close()


def test_dict_batch_holds_the_writer_lock(store_path: Path) -> None:
    db = sos.Dict(store_path)
    assert not locked_by_someone(store_path)
    with db.batch():
        db["a"] = 1
        assert locked_by_someone(store_path)
    assert not locked_by_someone(store_path)
    db.close()


def test_batch_on_closed_store_raises(store_path: Path) -> None:
    db = sos.Dict(store_path)
    db.close()
    with pytest.raises(sos.ClosedError), db.batch():
        pass


# -- List ---------------------------------------------------------------------


def test_list_batch_buffers_and_writes_manifest_once(
    store_path: Path, counting: CountingOps
) -> None:
    lst = sos.List(store_path)
    lst.extend(["a", "b"])
    before = snapshot(store_path)
    counting.steps.clear()
    with lst.batch():
        lst.append("c")
        lst.insert(0, "z")
        lst[1] = "A"
        assert lst.pop() == "c"  # added and removed inside: never written
        lst += ["d", "e"]
        del lst[-1]
        assert list(lst) == ["z", "A", "b", "d"] and len(lst) == 4
        assert snapshot(store_path) == before
        assert list(sos.List(store_path)) == ["a", "b"]
    assert list(sos.List(store_path)) == ["z", "A", "b", "d"]
    order = os.path.join(store_path, "order.txt")
    assert names(counting, "rename").count(order) == 1
    assert len(names(counting, "rename")) == 4  # z, A (same id as "a"), d, manifest
    items = [n for _, _, files in os.walk(store_path) for n in files if n.endswith(".json")]
    assert len(items) == 1 + 4  # sos.json and exactly the four items: no orphan
    lst.close()


def test_list_batch_discarded_on_exception(store_path: Path) -> None:
    lst = sos.List(store_path)
    lst.extend([1, 2, 3])
    before = snapshot(store_path)
    with pytest.raises(ValueError), lst.batch():
        lst.reverse()
        lst.append(4)
        lst.sort()
        raise ValueError
    assert snapshot(store_path) == before
    assert list(lst) == [1, 2, 3]
    lst.append(4)
    assert list(sos.List(store_path)) == [1, 2, 3, 4]
    lst.close()


# -- crashes ------------------------------------------------------------------

OLD_DICT = {"keep": 0, "change": "old", "gone": [1], "also": {"v": 1}}
NEW_DICT = {"keep": 0, "change": "new", "also": {"v": 2}, "born": True, "fresh": [1, 2]}


def dict_batch(path: Path) -> None:
    db = sos.Dict(path)
    with db.batch():
        db["change"] = "new"
        del db["gone"]
        db["also"] = {"v": 2}
        db["born"] = True
        db["fresh"] = [1, 2]


OLD_LIST = ["a", "b", "c"]
NEW_LIST = ["z", "a", "B", "d", "e"]


def list_batch(path: Path) -> None:
    lst = sos.List(path)
    with lst.batch():
        lst.insert(0, "z")
        lst[2] = "B"
        del lst[3]
        lst.extend(["d", "e"])


def run_dying(path: Path, body, die_at: int) -> int:  # type: ignore[no-untyped-def]
    """Run ``body(path)`` in a forked child that dies at step ``die_at``; its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            _atomic.ops = CountingOps(die_at)
            body(path)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def count_steps(tmp_path: Path, make, body) -> int:  # type: ignore[no-untyped-def]
    path = tmp_path / "probe"
    make(path)
    ops = CountingOps()
    saved, _atomic.ops = _atomic.ops, ops
    try:
        body(path)
    finally:
        _atomic.ops = saved
    return len(ops.steps)


def make_dict(path: Path) -> None:
    with sos.Dict(path) as db:
        db.update(OLD_DICT)


def make_list(path: Path) -> None:
    with sos.List(path) as lst:
        lst.extend(OLD_LIST)


@in_lean_process
def test_dict_batch_crash_at_every_step_leaves_each_key_old_or_new(tmp_path: Path) -> None:
    total = count_steps(tmp_path, make_dict, dict_batch)
    assert total > 15
    seen_mixed = False
    code = 77
    for k in range(2 * total):  # until the batch outlives the crash point
        path = tmp_path / f"d{k}"
        make_dict(path)
        code = run_dying(path, dict_batch, k)
        assert code in (0, 77), k
        with sos.Dict(path) as db:
            now = dict(db.items())
        for key in OLD_DICT.keys() | NEW_DICT.keys():
            assert now.get(key, "<absent>") in (
                OLD_DICT.get(key, "<absent>"),
                NEW_DICT.get(key, "<absent>"),
            ), (k, key, now)
        seen_mixed |= now not in (OLD_DICT, NEW_DICT)
        if k == 0:
            assert now == OLD_DICT
        if code == 0:
            assert now == NEW_DICT
            break
    assert code == 0
    assert seen_mixed  # the promise is per key, and crashes do show mixtures


@in_lean_process
def test_list_batch_crash_at_every_step_leaves_old_or_new_sequence(tmp_path: Path) -> None:
    # Item ids are random, so whether a fan-out directory must be made (two
    # more steps) varies from run to run: go on until the batch completes.
    total = count_steps(tmp_path, make_list, list_batch)
    assert total > 10
    outcomes = set()
    code = 77
    for k in range(2 * total):
        path = tmp_path / f"l{k}"
        make_list(path)
        code = run_dying(path, list_batch, k)
        assert code in (0, 77), k
        with sos.List(path) as lst:
            now = list(lst)  # every item the manifest names can be read
        assert now in (OLD_LIST, NEW_LIST), (k, now)
        outcomes.add(tuple(now))
        if code == 0:
            assert now == NEW_LIST
            break
    assert code == 0
    assert outcomes == {tuple(OLD_LIST), tuple(NEW_LIST)}


KILL_WRITER = """
import sys, sos
db = sos.Dict(sys.argv[1])
n = int(sys.argv[2])
round = 0
print("ready", flush=True)
while True:
    round += 1
    with db.batch():
        for i in range(n):
            db[f"k{i}"] = {"round": round, "pad": "x" * 200}
"""


def test_dict_batch_survives_kill_9_mid_commit(tmp_path: Path) -> None:
    """A real SIGKILL at an arbitrary moment: every key whole, from some round."""
    n = 200
    for attempt in range(3):
        path = tmp_path / f"k{attempt}"
        with sos.Dict(path) as db:
            db.update({f"k{i}": {"round": 0, "pad": "x" * 200} for i in range(n)})
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, str(path), str(n)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3 + 0.2 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        with sos.Dict(path) as db:
            rounds = {key: value["round"] for key, value in db.items()}
            assert all(value["pad"] == "x" * 200 for value in db.values())
        assert sorted(rounds) == sorted(f"k{i}" for i in range(n))
        # A batch that finished is whole: no key is older than the last
        # committed round, which is at least (newest round seen - 1).
        assert max(rounds.values()) - min(rounds.values()) <= 1


def test_unlocked_probe_sees_free_lock(tmp_path: Path) -> None:
    """The lock probe used above can fail: it does see a lock we hold."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert not locked_by_someone(tmp_path)
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert locked_by_someone(tmp_path)
    finally:
        os.close(fd)


class SlowFirstMiss(FileOps):
    """The first open that finds its directory missing waits, so another
    thread creates that directory before the first one looks again."""

    def __init__(self) -> None:
        self.missed = threading.Event()

    def open_temp(self, directory: str) -> tuple[int, str]:
        try:
            return super().open_temp(directory)
        except FileNotFoundError:
            if not self.missed.is_set():
                self.missed.set()
                time.sleep(0.2)
            raise


def test_group_commit_into_a_new_fanout_directory_from_two_threads(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two keys of one batch in a fan-out directory neither has created yet.

    Before the fix, the thread whose open failed first found the directory
    made by the other and gave up with FileNotFoundError.
    """
    db = sos.Dict(store_path)
    first, second = (
        "k0",
        next(
            f"k{i}"
            for i in range(1, 10_000)
            if db.path_of(f"k{i}")[-37:-35] == db.path_of("k0")[-37:-35]
        ),
    )
    ops = SlowFirstMiss()
    monkeypatch.setattr(_atomic, "ops", ops)
    db.update({first: 1, second: 2})
    assert ops.missed.is_set()
    assert dict(sos.Dict(store_path).items()) == {first: 1, second: 2}
    db.close()


def test_close_inside_a_batch_is_refused_and_the_batch_still_commits(store_path: Path) -> None:
    db = sos.Dict(store_path)
    with db.batch():
        db["a"] = 1
        with pytest.raises(sos.Error, match="inside a batch"):
            db.close()
    assert not db.closed
    assert sos.Dict(store_path)["a"] == 1
    db.close()


def test_a_batch_belongs_to_its_thread(store_path: Path) -> None:
    """Another thread sharing the handle neither sees the buffered writes nor
    writes into the buffer: its write waits for the batch to commit."""
    db = sos.Dict(store_path)
    seen: dict[str, object] = {}
    entered = threading.Event()
    release = threading.Event()

    def other() -> None:
        entered.wait(10)
        seen["in"] = "buffered" in db
        seen["len"] = len(db)
        db["theirs"] = 1  # must wait for the lock the batch holds
        seen["after"] = db.get("buffered")

    thread = threading.Thread(target=other)
    thread.start()
    with db.batch():
        db["buffered"] = "x"
        entered.set()
        release.wait(0.5)  # give the other thread time to (wrongly) write into the buffer
        assert "theirs" not in db
    thread.join(10)
    assert seen == {"in": False, "len": 0, "after": "x"}
    assert dict(db) == {"buffered": "x", "theirs": 1}
    db.close()

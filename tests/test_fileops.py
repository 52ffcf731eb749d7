"""The fan-out directories' kept descriptors (sos.storage.fileops).

A handle keeps each fan-out directory's descriptor open from its second
fsync on, so a set's directory fsync is a stat and an fsync instead of open,
fsync and close. The fsync must still reach the directory the rename went
into, whatever replaced it since; the descriptors must stay bounded and be
closed with the store.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import digest_path

import sos
from sos.storage import fileops


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The inode of every file or directory fsynced, in order."""
    inodes: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        inodes.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield inodes


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def in_child(check: Callable[[], bool]) -> None:
    """Fork: the child runs ``check`` and exits 0 only if it returned True
    (an exception's traceback is printed); the parent asserts that."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            code = 0 if check() else 3
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd") or os.name == "nt", reason="Linux: /proc/self/fd"
)


def test_a_set_after_the_directory_was_removed_syncs_the_new_one(
    store_path: Path, synced: list[int]
) -> None:
    """rm -rf of the key's fan-out directory (git does so when a checkout
    empties it): the write makes it again, and that one is fsynced, not the
    removed one the kept descriptor still holds."""
    with sos.Dict(store_path) as db:
        db["k"] = 1
        db["k"] = 2  # the second fsync: the directory's descriptor is kept by now
        directory = digest_path(store_path, "k").parent
        kept = directory.stat().st_ino
        assert synced[-1] == kept
        shutil.rmtree(directory)
        synced.clear()
        db["k"] = 3
        new = directory.stat().st_ino
        assert new != kept  # held open, the old inode cannot be reused
        assert new in synced and kept not in synced
        synced.clear()
        db["k"] = 4  # and again: not the old descriptor either
        assert new in synced and kept not in synced
        assert db["k"] == 4


def test_a_set_after_the_directory_was_replaced_syncs_the_new_one(
    store_path: Path, synced: list[int]
) -> None:
    """The directory removed and made again by someone else, with the file
    in it (a checkout): the stat before the fsync sees another directory."""
    with sos.Dict(store_path) as db:
        db["k"] = 1
        db["k"] = 2
        path = digest_path(store_path, "k")
        kept = path.parent.stat().st_ino
        saved = path.read_bytes()
        shutil.rmtree(path.parent)
        path.parent.mkdir()
        path.write_bytes(saved)
        synced.clear()
        db["k"] = 3
        assert path.parent.stat().st_ino in synced and kept not in synced
        assert sos.Dict(store_path)["k"] == 3


def test_kept_descriptors_are_bounded_and_closed_with_the_store(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synced: list[int]
) -> None:
    before = open_descriptors()
    monkeypatch.setattr(fileops, "HELD_DIRECTORIES", fileops._held_count + 10)
    keys = [f"k{i}" for i in range(200)]
    db = sos.Dict(store_path)
    for key in keys + keys:  # a directory's second fsync keeps its descriptor
        db[key] = 1
    directories = {digest_path(store_path, k).parent for k in keys}
    assert len(directories) > 20
    kept = open_descriptors() - before
    assert 10 <= kept <= 10 + 3  # the store's own directory, a lock, a pin at most
    identity_checks = []
    real_stat = os.stat

    def counting_stat(*args: object, **kwargs: object) -> os.stat_result:
        if kwargs.get("follow_symlinks") is False and "dir_fd" in kwargs:
            identity_checks.append(args[0])
        return real_stat(*args, **kwargs)  # type: ignore[arg-type]

    with sos.Dict(tmp_path / "other") as other:  # over the limit: opened and closed
        other["x"] = 0
        synced.clear()
        monkeypatch.setattr(os, "stat", counting_stat)
        other["x"] = 1
        monkeypatch.setattr(os, "stat", real_stat)
        assert digest_path(tmp_path / "other", "x").parent.stat().st_ino in synced
        assert identity_checks == []  # nothing kept, nothing to check: no extra call
        assert open_descriptors() - before <= kept + 3
    for key in keys:  # every directory still fsynced, kept or not
        synced.clear()
        db[key] = 2
        assert digest_path(store_path, key).parent.stat().st_ino in synced
    db.close()
    assert open_descriptors() == before
    assert fileops._held_count == fileops.HELD_DIRECTORIES - 10


def test_a_forked_child_writes_through_its_own_descriptors(store_path: Path) -> None:
    """A child inherits the parent's kept descriptors; it lets them go and
    keeps its own, and both processes' writes land."""
    with sos.Dict(store_path) as db:
        db["k"] = "parent"
        db["k"] = "parent again"

        def child() -> bool:
            db["k"] = "child"
            db["k"] = "child again"
            return bool(db["k"] == "child again")

        in_child(child)
        assert db["k"] == "child again"
        db["k"] = "parent last"
    assert sos.Dict(store_path)["k"] == "parent last"


def test_close_waits_for_a_set_in_another_thread(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synced: list[int]
) -> None:
    """A close while another thread's set is between its identity stat and
    its fsync: the kept descriptor is not closed under it (its number, taken
    by the next open, would get that fsync), the close waits for the set."""
    db = sos.Dict(store_path)
    db["k"] = 1
    db["k"] = 2  # kept
    directory = digest_path(store_path, "k").parent
    storage = db._storage
    numbers = [a.held for a in storage._dir_ats.values() if a.held >= 0]  # type: ignore[attr-defined]
    numbers.append(storage._lock.descriptor())  # type: ignore[attr-defined]
    in_stat = threading.Event()
    real_stat = os.stat

    def slow_stat(*args: object, **kwargs: object) -> os.stat_result:
        if kwargs.get("follow_symlinks") is False and "dir_fd" in kwargs:
            in_stat.set()
            time.sleep(0.3)
        return real_stat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", slow_stat)
    synced.clear()
    writer = threading.Thread(target=db.__setitem__, args=("k", 3))
    writer.start()
    assert in_stat.wait(10)
    db.close()
    takers = []  # files that take every number the close freed
    try:
        while len(takers) < 2 or takers[-1] < max(numbers):
            takers.append(os.open(tmp_path / f"taker{len(takers)}", os.O_WRONLY | os.O_CREAT))
        writer.join(10)
        assert not writer.is_alive()
        assert directory.stat().st_ino in synced
        assert not {os.fstat(fd).st_ino for fd in takers} & set(synced)
    finally:
        for fd in takers:
            os.close(fd)
    assert sos.Dict(store_path)["k"] == 3


@pytest.mark.parametrize("same_number", [True, False], ids=["same-number", "new-number"])
def test_a_forked_child_that_closed_every_descriptor_uses_none_of_the_parents(
    store_path: Path, tmp_path: Path, same_number: bool
) -> None:
    """A daemon-like child closes every inherited descriptor and opens its
    own files, which take the kept descriptors' numbers: its sets neither
    fsync those files nor close them, whether the store's directory is
    opened again under its old number or under another."""
    with sos.Dict(store_path) as db:
        db["k"] = "parent"
        db["k"] = "parent again"  # kept
        directory = digest_path(store_path, "k").parent
        storage = db._storage
        kept = [a.held for a in storage._dir_ats.values() if a.held >= 0]  # type: ignore[attr-defined]
        root = storage._lock.descriptor()  # type: ignore[attr-defined]
        assert kept

        def child() -> bool:
            os.closerange(3, 4096)
            logs = []
            while len(logs) < 2 or logs[-1] < max([*kept, root]):
                logs.append(os.open(tmp_path / f"log{len(logs)}", os.O_WRONLY | os.O_CREAT))
            if same_number:  # the store's directory opened again under its number
                logs.remove(root)
                os.close(root)
            inodes = [os.fstat(fd).st_ino for fd in logs]
            seen: list[int] = []
            real = os.fsync

            def fsync(fd: int) -> None:
                seen.append(os.fstat(fd).st_ino)
                real(fd)

            os.fsync = fsync
            for value in ("child", "child again", "child last"):
                db["k"] = value
            assert storage._lock.descriptor() == root or not same_number  # type: ignore[attr-defined]
            db.close()
            ok = directory.stat().st_ino in seen and not set(inodes) & set(seen)
            return ok and [os.fstat(fd).st_ino for fd in logs] == inodes  # none closed

        in_child(child)
        assert db["k"] == "child last"
        db["k"] = "parent last"
    assert sos.Dict(store_path)["k"] == "parent last"


def test_a_forked_child_neither_uses_nor_closes_the_parents_pins(
    store_path: Path, tmp_path: Path
) -> None:
    """A List keeps its manifest's descriptor open (a pin); a child that
    closed every descriptor and reused the numbers keeps its own files."""
    with sos.List(store_path) as lst:
        lst.append(1)
        lst.append(2)
        pinned = list(lst._storage._pins.values())  # type: ignore[attr-defined]
        assert pinned

        def child() -> bool:
            os.closerange(3, 4096)
            logs = []
            while len(logs) < 2 or logs[-1] < max(pinned):
                logs.append(os.open(tmp_path / f"log{len(logs)}", os.O_WRONLY | os.O_CREAT))
            inodes = [os.fstat(fd).st_ino for fd in logs]
            lst.append(3)
            lst.append(4)
            lst.close()
            return list(sos.List(store_path)) == [1, 2, 3, 4] and [
                os.fstat(fd).st_ino for fd in logs
            ] == inodes

        in_child(child)
        assert list(lst) == [1, 2, 3, 4]
        lst.append(5)
    assert list(sos.List(store_path)) == [1, 2, 3, 4, 5]

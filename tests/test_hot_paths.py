"""The memories that make reads fast never make them wrong.

A handle remembers key -> path, file name -> key, each fan-out directory's
last listing, and the List's manifest; each test changes the files behind
a warm handle's back and checks it answers from the disk.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import UserString
from pathlib import Path

import pytest
from conftest import crash_after_commit_point, digest_path

import sos
from sos.storage.local import LocalStorage


def same_directory_keys(count: int) -> list[str]:
    """Keys whose files share one fan-out directory."""
    prefix = digest_path(Path("/"), "k0").parent.name
    found = [
        k
        for k in (f"k{i}" for i in range(20_000))
        if digest_path(Path("/"), k).parent.name == prefix
    ]
    assert len(found) >= count
    return found[:count]


def test_warm_iteration_sees_a_swap_within_one_directory(store_path: Path) -> None:
    """Same directory, same number of names, different names: the listing differs."""
    a, b, c = same_directory_keys(3)
    with sos.Dict(store_path) as db, sos.Dict(store_path) as other:
        db.update({a: 1, b: 2})
        assert sorted(db) == sorted([a, b]) and len(db) == 2
        assert sorted(db) == sorted([a, b])  # warm now
        del other[b]
        other[c] = 3
        assert sorted(db) == sorted([a, c])
        assert len(db) == 2
        assert dict(db.items()) == {a: 1, c: 3}


def test_warm_iteration_sees_files_copied_in_and_removed(store_path: Path, tmp_path: Path) -> None:
    with sos.Dict(store_path) as db:
        db.update({f"k{i}": i for i in range(50)})
        list(db)
        source = tmp_path / "elsewhere"
        with sos.Dict(source) as src:
            src["new"] = "copied"
        target = digest_path(store_path, "new")
        target.parent.mkdir(exist_ok=True)
        shutil.copy(digest_path(source, "new"), target)
        os.unlink(digest_path(store_path, "k7"))
        keys = list(db)
        assert "new" in keys and "k7" not in keys and len(keys) == 50 == len(db)


def test_remembered_paths_do_not_hide_a_delete(store_path: Path) -> None:
    with sos.Dict(store_path) as db, sos.Dict(store_path) as other:
        db["k"] = 1
        assert "k" in db and db["k"] == 1
        del other["k"]
        assert "k" not in db
        with pytest.raises(KeyError):
            db["k"]


def test_a_remembered_in_asks_the_disk_every_time(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``in`` remembers the key's path (Storage.probe) and stats it without
    the storage's frames: still the disk's answer, and a batch's own."""
    with sos.Dict(store_path) as db, sos.Dict(store_path) as other:
        db["k"] = 1
        assert "k" in db  # remembered now
        monkeypatch.setattr(db._storage, "exists", None)  # the remembered path only
        del other["k"]
        assert "k" not in db
        other["k"] = 2
        assert "k" in db
        os.unlink(digest_path(store_path, "k"))
        assert "k" not in db
        other["k"] = 3
        monkeypatch.undo()
        with db.batch():
            del db["k"]
            assert "k" not in db  # the batch's delete, though the file is still there
            assert digest_path(store_path, "k").exists()
        assert "k" not in db
        assert [1] not in db and 1 not in db  # type: ignore[comparison-overlap]
        db["k"] = 4
        assert "k" in db and UserString("k") not in db  # equal, but not a str key


def test_a_remembered_in_yields_to_a_transaction_and_to_close(store_path: Path) -> None:
    """The remembered paths are dropped when a transaction begins (its own
    delete is seen though the file is there) and when the handle closes."""
    db = sos.Dict(store_path)
    db["k"] = 1
    assert "k" in db  # remembered now
    with db.transaction():
        del db["k"]
        assert "k" not in db
        assert digest_path(store_path, "k").exists()
    db["k"] = 2
    assert "k" in db
    db.close()
    with pytest.raises(sos.Error, match="closed"):
        "k" in db  # noqa: B015 - the check is what is tested


def test_a_storage_with_its_own_exists_is_asked(tmp_path: Path) -> None:
    """A LocalStorage subclass that overrides exists() gets no remembered stat."""

    class OwnExists(LocalStorage):
        def exists(self, name: str) -> bool:
            return super().exists(name)

    assert LocalStorage(str(tmp_path / "a")).probe() is not None
    assert OwnExists(str(tmp_path / "b")).probe() is None


def test_a_file_holding_another_key_is_corrupt(store_path: Path) -> None:
    with sos.Dict(store_path) as db:
        db.update(a=1, b=2)
        shutil.copy(digest_path(store_path, "b"), digest_path(store_path, "a"))
        with pytest.raises(sos.CorruptError, match="belongs in"):
            db["a"]
        assert db["b"] == 2


def test_large_documents_are_read_whole(store_path: Path) -> None:
    big = "x" * 300_000  # several read() chunks
    with sos.Dict(store_path) as db, sos.List(store_path.parent / "l") as lst:
        db["big"] = big
        lst.append(big)
        assert db["big"] == big and lst[0] == big


def test_list_index_after_another_handle_changes_order(store_path: Path) -> None:
    with sos.List(store_path) as lst, sos.List(store_path) as other:
        lst.extend(["a", "b", "c"])
        assert lst[0] == "a" and lst[-1] == "c"
        other.insert(0, "z")
        assert lst[0] == "z" and lst[-1] == "c" and len(lst) == 4
        other.reverse()
        assert [lst[i] for i in range(4)] == ["c", "b", "a", "z"]


def test_list_index_memory_is_dropped_with_the_order_it_came_from(store_path: Path) -> None:
    """lst[i] remembers index -> item file for one order; outside the
    manifest's racy window that memory is what answers, so a new order
    written by another handle must replace it, for positive and negative
    indexes alike."""
    with sos.List(store_path) as lst, sos.List(store_path) as other:
        lst.extend(["a", "b", "c"])
        time.sleep(0.15)  # past the racy window: the cached order is trusted
        assert [lst[0], lst[1], lst[-1]] == ["a", "b", "c"]
        assert [lst[0], lst[1], lst[-1]] == ["a", "b", "c"]  # from memory now
        other.reverse()
        assert [lst[0], lst[1], lst[-1]] == ["c", "b", "a"]
        time.sleep(0.15)
        assert lst[-3] == "c"
        other[0] = "C"
        assert [lst[0], lst[-3]] == ["C", "C"]
        with pytest.raises(IndexError):
            lst[3]
        with pytest.raises(IndexError):
            lst[-4]


# -- the List keeps the manifest it wrote (issue 21) ------------------------------


def _order_reads(monkeypatch: pytest.MonkeyPatch, order: Path) -> list[str]:
    """Count whole-file reads of ``order`` from now on."""
    from sos.storage import local

    seen: list[str] = []
    real = local._read

    def counting(path: str) -> tuple[bytes, os.stat_result]:
        if os.path.abspath(path) == str(order):
            seen.append(path)
        return real(path)

    monkeypatch.setattr(local, "_read", counting)
    return seen


def test_an_append_does_not_read_back_the_manifest_it_wrote(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sos.List(store_path) as lst:
        lst.append(0)
        reads = _order_reads(monkeypatch, store_path / "order.txt")
        for i in range(1, 6):
            lst.append(i)
        assert lst[-1] == 5 and len(lst) == 6
        assert reads == []


def test_a_kept_manifest_yields_to_another_handles_append(store_path: Path) -> None:
    with sos.List(store_path) as lst, sos.List(store_path) as other:
        lst.append(1)
        other.append(2)
        lst.append(3)
        assert list(lst) == [1, 2, 3] == list(other)


def test_a_kept_manifest_yields_to_an_edit_in_place(store_path: Path) -> None:
    """Same inode, same size, written right after the append (an editor that
    writes in place): the next call reads it."""
    with sos.List(store_path) as lst:
        lst.extend([1, 2])
        lst.append(3)  # the manifest lst keeps is its own write now: one run, 0-2
        order = store_path / "order.txt"
        data = order.read_bytes()
        assert data.endswith(b" 0-2\n")
        inode = order.stat().st_ino
        with open(order, "r+b") as f:  # the same items, reversed, in place
            f.write(data[: -len(b"0-2\n")] + b"2-0\n")
        assert order.stat().st_ino == inode
        assert list(lst) == [3, 2, 1]


def test_a_kept_manifest_keeps_a_chmod(store_path: Path) -> None:
    with sos.List(store_path) as lst:
        lst.append(1)
        order = store_path / "order.txt"
        order.chmod(0o600)
        lst.append(2)
        lst.append(3)
        assert order.stat().st_mode & 0o777 == 0o600
        assert list(lst) == [1, 2, 3]


# -- listing keys reads only the head of each document (issue 21) ----------------------


def _bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counts: list[int] = []
    real = os.read

    def counting(fd: int, n: int) -> bytes:
        data = real(fd, n)
        counts.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    return counts


def test_listing_keys_does_not_read_a_big_value(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sos.Dict(store_path) as db:
        db["big"] = "x" * 5_000_000
        db.update({f"k{i}": i for i in range(20)})
    with sos.Dict(store_path) as db:  # a new handle: no key remembered
        counts = _bytes_read(monkeypatch)
        keys = sorted(db)
        assert keys == sorted(["big", *(f"k{i}" for i in range(20))])
        assert "big" in list(db.keys()) and len(db) == 21
        assert sum(counts) < 200_000, f"{sum(counts)} bytes read to list 21 keys"
        monkeypatch.undo()
        assert len(db["big"]) == 5_000_000  # a value is read when asked for


def test_listing_keys_falls_back_to_the_whole_document(store_path: Path) -> None:
    """A hand-edited layout (value first) and a key longer than the head are
    read whole; a head naming a key of another file is still refused."""
    long_key = "L" * 6000
    with sos.Dict(store_path) as db:
        db.update({"a": 1, long_key: 2})
    path = digest_path(store_path, "a")
    path.write_text('{"value": 1, "key": "a"}\n')
    with sos.Dict(store_path) as db:
        assert sorted(db) == sorted(["a", long_key])
        assert db["a"] == 1
    moved = digest_path(store_path, "elsewhere")
    moved.parent.mkdir(exist_ok=True)
    moved.write_text('{\n  "key": "a",\n  "value": 1\n}\n')
    with sos.Dict(store_path) as db, pytest.raises(sos.CorruptError, match="belongs in"):
        list(db)
    moved.unlink()


def test_len_counts_what_iteration_lists(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """len() counts data files in one pass per directory when their listings
    are not kept: the same answer as iterating, foreign files left out."""
    from sos.format import names

    with sos.Dict(store_path) as db:
        db.update({f"k{i}": i for i in range(300)})
        fanout = digest_path(store_path, "k0").parent
        (fanout / "notes.txt").write_text("a foreign file")
        (fanout / (fanout.name + "0" * 30 + ".json.swp")).write_text("an editor's")
        (fanout / ("x\n" + fanout.name + "0" * 30 + ".json")).write_text("a newline")
        for directory in {p.name for p in store_path.iterdir() if len(p.name) == 2}:
            raw = os.listdir(store_path / directory)
            expected = sum(1 for n in raw if names.is_data_file(directory, n))
            assert names.count_data_files(directory, raw) == expected
        assert len(db) == 300 == len(list(db))
    from sos.core import listing

    monkeypatch.setattr(listing, "NAME_CACHE_LIMIT", 10)  # no listing kept: counted
    with sos.Dict(store_path) as db:
        assert len(db) == 300 == len(list(db)) == len(db)
        assert sum(len(raw) for raw, _ in db._dirs.values()) <= 10


@pytest.mark.disk  # ext4 hands a freed inode to the next new file; tmpfs never reuses one
def test_a_kept_manifest_sees_a_same_size_replace_in_the_same_clock_tick(tmp_path: Path):
    """Where the clock's tick is coarse (kernels before 6.13), another writer's
    replace can leave order.txt with the kept (inode, size, mtime): its second
    temp file takes the inode its first replace freed. The written file is
    kept open, so that inode is never free while the version is trusted."""
    from sos.storage.local import LocalStorage

    root = tmp_path / "s"
    root.mkdir()
    mine, other = LocalStorage(str(root)), LocalStorage(str(root))
    try:
        for trial in range(20):
            kept = mine.write_replacing("order.txt", b"A%04d\n" % trial, None)
            assert kept is not None
            other.write("order.txt", b"B%04d\n" % trial)  # frees nothing still open
            other.write("order.txt", b"C%04d\n" % trial)  # same size as what mine wrote
            path = root / "order.txt"
            os.utime(path, ns=(kept[2], kept[2]))  # the same tick as mine's write
            changed = mine.read_if_changed("order.txt", kept)
            assert changed is not None and changed[0] == b"C%04d\n" % trial, trial
    finally:
        mine.close()
        other.close()


def test_listing_a_fifo_planted_under_a_data_name_says_what_it_is(tmp_path: Path):
    """A head read that shows no key is followed by a whole, checked read:
    a FIFO's (empty) head is not taken for a whole document."""
    root = tmp_path / "s"
    with sos.Dict(root) as db:
        db["a"] = 1
    planted = digest_path(root, "b")
    planted.parent.mkdir(exist_ok=True)
    os.mkfifo(planted)
    with sos.Dict(root) as db, pytest.raises(sos.CorruptError, match="FIFO") as raised:
        list(db)
    assert str(planted) in str(raised.value)


def test_a_warm_handles_set_finishes_a_crashed_transaction_first(store_path: Path) -> None:
    """A record left by a transaction killed after its commit point, in
    another handle, is found by a handle that has written before (its
    set takes the lock without a generator, ``Store._lock_for_write``) and
    finished before its set."""
    writer = sos.Dict(store_path)
    writer["ada"] = "before"  # warm: it has checked for a record before
    crash_after_commit_point(store_path, {"ada": "from the transaction", "linus": 1969})
    writer["ada"] = "after"
    assert not (store_path / ".sos" / "txn.json").exists(), "finished before the set"
    assert writer["ada"] == "after", "the set came after the transaction"
    assert writer["linus"] == 1969
    writer.close()


def test_a_set_whose_record_check_fails_releases_the_lock(tmp_path: Path) -> None:
    """The check for a pending record can fail (a ``.sos`` that is a symlink
    out of the store is refused): the set raises, and the lock it took is
    released, so another handle can still take it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "txn.json").write_text("{}")
    store = tmp_path / "s"
    with sos.Dict(store) as db, sos.Dict(store) as other:
        db["k"] = 1
        shutil.rmtree(store / ".sos", ignore_errors=True)
        (store / ".sos").symlink_to(outside, target_is_directory=True)
        with pytest.raises(sos.CorruptError, match="symbolic link"):
            db["k"] = 2
        assert not db._storage.held()
        assert other._storage.acquire(True, blocking=False), "the flock was left held"
        other._storage.release()

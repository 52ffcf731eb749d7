"""The memories that make reads fast never make them wrong.

A handle remembers key -> path, file name -> key, each fan-out directory's
last listing, and the List's manifest; each test changes the files behind
a warm handle's back and checks it answers from the disk.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import digest_path

import sos


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

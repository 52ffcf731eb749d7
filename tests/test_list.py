"""sos.List behaves exactly like list, and rewrites its manifest as little as it claims."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conformance import check_sequence
from conftest import digest_path, snapshot
from recording import Recording
from test_dict import BAD_VALUES

import sos
from sos.storage import atomic as _atomic


def item_files(store: Path) -> list[str]:
    return sorted(
        name
        for root, _, files in os.walk(store)
        for name in files
        if re.fullmatch(r"[0-9a-f]{32}\.json", name)
    )


def manifest_ids(store: Path) -> list[str]:
    ids = []
    for line in (store / "order.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        prefix, numbers = line.split(" ")
        first, _, last = numbers.partition("-")
        a, b = int(first), int(last or first)
        step = 1 if b >= a else -1
        ids += [f"{prefix}-{n}" for n in range(a, b + step, step)]
    return ids


def test_checker_passes_on_a_plain_list():
    check_sequence([])


def test_sequence_conformance(store_path: Path):
    with sos.List(store_path) as lst:
        check_sequence(lst)
    assert item_files(store_path) == []  # removed items leave no file


def test_sequence_conformance_on_memory_storage(memory_url: str):
    """The same checker on the in-memory storage: List needs nothing but the interface."""
    with sos.List(memory_url) as lst:
        check_sequence(lst)
        lst[:] = ["a", {"b": [1]}]
    with sos.open(memory_url) as lst:  # a second handle sees what the first wrote
        assert isinstance(lst, sos.List)
        assert lst == ["a", {"b": [1]}]


def test_conformance_then_reopen_and_files_match_manifest(store_path: Path):
    with sos.List(store_path) as lst:
        check_sequence(lst)
        lst.extend(["a", {"b": [1]}, None, 2.5])
        lst.insert(1, "x")
        del lst[0]
    with sos.List(store_path) as lst:
        assert lst == ["x", {"b": [1]}, None, 2.5]
    # exactly the files the manifest names, found where the format says
    ids = manifest_ids(store_path)
    assert sorted(digest_path(store_path, i).name for i in ids) == item_files(store_path)


def renamed(ops: Recording) -> list[str]:
    """The base names of the files renamed into place, in order."""
    return [os.path.basename(p) for p in ops.paths("rename")]


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Recording:
    ops = Recording()
    monkeypatch.setattr(_atomic, "ops", ops)
    return ops


@pytest.mark.parametrize(
    ("name", "action", "item_writes"),
    [
        ("extend", lambda x: x.extend(range(10, 20)), 10),
        ("iadd", lambda x: x.__iadd__([1, 2, 3]), 3),
        ("slice-assign", lambda x: x.__setitem__(slice(2, 5), ["a", "b"]), 2),
        ("extended-slice-assign", lambda x: x.__setitem__(slice(None, None, 2), list("abcde")), 5),
        ("slice-delete", lambda x: x.__delitem__(slice(1, None, 3)), 0),
        ("reverse", lambda x: x.reverse(), 0),
        ("sort", lambda x: x.sort(key=lambda v: -v), 0),
        ("clear", lambda x: x.clear(), 0),
        ("append", lambda x: x.append(1), 1),
        ("insert", lambda x: x.insert(3, 1), 1),
        ("pop", lambda x: x.pop(4), 0),
        ("remove", lambda x: x.remove(7), 0),
    ],
)
def test_many_item_operations_rewrite_the_manifest_once(
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    action: Callable[[Any], Any],
    item_writes: int,
):
    model = list(range(10))
    with sos.List(store_path) as lst:
        lst.extend(model)
        counter = Recording()
        monkeypatch.setattr(_atomic, "ops", counter)
        action(lst)
        action(model)
        monkeypatch.undo()
        assert renamed(counter).count("order.txt") == 1, name
        assert len(renamed(counter)) == item_writes + 1
        assert lst == model
        assert len(item_files(store_path)) == len(model)  # removed items' files are gone


def test_setting_one_item_rewrites_only_its_file(store_path: Path, counter: Recording):
    with sos.List(store_path) as lst:
        lst.extend(["a", "b", "c"])
        manifest = (store_path / "order.txt").read_bytes()
        counter.clear()
        lst[1] = {"new": True}
        lst[-1] = "C"
        assert lst == ["a", {"new": True}, "C"]
        assert "order.txt" not in renamed(counter)
        assert len(renamed(counter)) == 2
        assert (store_path / "order.txt").read_bytes() == manifest


def _manifest_after_appends(store: Path, existing_run: str, appends: int) -> tuple[bytes, int]:
    """Append to a list whose manifest holds ``existing_run``; bytes the appends wrote."""
    with sos.List(store) as lst:
        lst.append("seed")
    order = store / "order.txt"
    header = order.read_bytes().splitlines(keepends=True)[0]
    # A hand-made manifest naming many ids (their files are not needed to append).
    order.write_bytes(header + existing_run.encode() + b"\n")
    counter = Recording()
    saved = _atomic.ops
    _atomic.ops = counter
    try:
        with sos.List(store) as lst:
            for n in range(appends):
                lst.append(n)
    finally:
        _atomic.ops = saved
    return order.read_bytes(), counter.bytes_written


def test_append_cost_does_not_grow_with_the_list(tmp_path: Path):
    small, small_bytes = _manifest_after_appends(tmp_path / "small", "0123456789abcdef 0-9", 5)
    big, big_bytes = _manifest_after_appends(tmp_path / "big", "0123456789abcdef 0-99999", 5)
    # Same number of lines; only the digits of the last id differ.
    assert len(big.splitlines()) == len(small.splitlines()) == 3
    assert len(big) - len(small) == len("99999") - len("9")
    assert big_bytes - small_bytes == 5 * (len("99999") - len("9"))
    assert big_bytes < 5 * 1000  # five item files and five short manifests
    with sos.List(tmp_path / "big") as lst:
        assert len(lst) == 100_005
        assert lst[-5:] == [0, 1, 2, 3, 4]


def test_real_appends_keep_one_run_per_handle(store_path: Path):
    with sos.List(store_path) as lst:
        for n in range(30):
            lst.append(n)
        lines = (store_path / "order.txt").read_text().splitlines()
        assert len(lines) == 2  # the header and one run
        lst.reverse()
        assert len((store_path / "order.txt").read_text().splitlines()) == 2
        assert lst == list(range(29, -1, -1))


def test_steps_items_first_then_manifest_then_unlinks(store_path: Path, counter: Recording):
    with sos.List(store_path) as lst:
        lst.extend([1, 2, 3])
        counter.clear()
        lst[0:2] = ["a", "b", "c"]
        assert renamed(counter)[-1] == "order.txt"
        assert len(renamed(counter)) == 4
        assert counter.count("unlink") == 2
        assert lst == ["a", "b", "c", 3]
        assert len(item_files(store_path)) == 4


@pytest.mark.parametrize(("value", "error"), BAD_VALUES)
def test_bad_values_change_nothing(store_path: Path, value: Any, error: type[Exception]):
    with sos.List(store_path) as lst:
        lst.extend([1, 2])
        before = snapshot(store_path)
        for action in (
            lambda: lst.append(value),
            lambda: lst.extend([3, value]),
            lambda: lst.insert(0, value),
            lambda: lst.__setitem__(0, value),
            lambda: lst.__setitem__(slice(0, 1), [value]),
        ):
            with pytest.raises(error):
                action()
        assert snapshot(store_path) == before
        assert lst == [1, 2]


def test_values_are_copies_and_tuples_come_back_as_lists(store_path: Path):
    with sos.List(store_path) as lst:
        lst.append({"langs": ["en"]})
        lst[0]["langs"].append("fr")
        assert lst[0] == {"langs": ["en"]}
        lst.append((1, (2,)))
        assert lst[1] == [1, [2]]


def test_equality_with_lists_and_lists_stores(store_path: Path, tmp_path: Path):
    with sos.List(store_path) as a, sos.List(tmp_path / "b") as b:
        a.extend([1, [2]])
        b.extend([1, [2]])
        assert a == b
        assert a == [1, [2]]
        assert a == [1, [2]]
        assert a != [1, [2], 3]
        assert a != (1, [2])  # like list: a tuple is not equal
        b[0] = 1.5
        assert a != b
        with pytest.raises(TypeError):
            hash(a)


def test_index_errors_match_list(store_path: Path):
    with sos.List(store_path) as lst:
        lst.extend([1, 2])
        for action, message in [
            (lambda x: x[2], "list index out of range"),
            (lambda x: x.__setitem__(-3, 0), "list assignment index out of range"),
            (lambda x: x.__delitem__(2), "list assignment index out of range"),
            (lambda x: x.pop(5), "pop index out of range"),
        ]:
            with pytest.raises(IndexError) as ours:
                action(lst)
            with pytest.raises(IndexError) as theirs:
                action([1, 2])
            assert str(ours.value) == str(theirs.value) == message
        with pytest.raises(ValueError) as ours:
            lst[::2] = [1, 2, 3]
        with pytest.raises(ValueError) as theirs:
            [1, 2][::2] = [1, 2, 3]
        assert str(ours.value) == str(theirs.value)
        assert lst == [1, 2]


# -- corruption stays local ----------------------------------------------------------


def test_missing_item_file_is_corruption_of_that_index_only(store_path: Path):
    with sos.List(store_path) as lst:
        lst.extend(["a", "b", "c"])
        os.unlink(digest_path(store_path, manifest_ids(store_path)[1]))
        with pytest.raises(sos.CorruptError) as info:
            lst[1]
        assert "order.txt" in str(info.value) and "missing" in str(info.value)
        assert lst[0] == "a" and lst[2] == "c"
        assert len(lst) == 3


def test_bad_item_file_and_bad_manifest(store_path: Path):
    with sos.List(store_path) as lst:
        lst.extend(["a", "b"])
        item = digest_path(store_path, manifest_ids(store_path)[0])
        item.write_bytes(b'{"key": "nope", "value": 1}')
        with pytest.raises(sos.CorruptError):
            lst[0]
        assert lst[1] == "b"
        order = store_path / "order.txt"
        good = order.read_bytes()
        order.write_bytes(good + b"<<<<<<< HEAD\n")
        with pytest.raises(sos.CorruptError, match="line 3") as info:
            len(lst)
        assert info.value.path == str(order)
        order.write_bytes(good)
        assert len(lst) == 2


def test_an_id_named_twice_shows_once_at_its_first_place(store_path: Path):
    """What a git union merge leaves when both clones extended a shared run:
    the old and the new version of the line. Each id counts once, where it
    first appears, and the next write stores the manifest without the repeat."""
    with sos.List(store_path) as lst:
        lst.extend(["a", "b"])
        order = store_path / "order.txt"
        header, line = order.read_bytes().splitlines(keepends=True)
        prefix = line.decode().split()[0]
        lst.append("c")  # ours: the run extended to three items
        longer = order.read_bytes().splitlines(keepends=True)[1]
        order.write_bytes(header + longer + line)
        codes = [p.code for p in sos.check(store_path)]
        assert set(codes) == {"duplicate-entry"}  # still reported
        assert lst == ["a", "b", "c"]
        del lst[0]
        assert order.read_bytes().count(prefix.encode()) == 1
        assert lst[:2] == ["b", "c"]
        lst.clear()
        assert item_files(store_path) == []


def test_a_failed_sort_changes_nothing(store_path: Path):
    with sos.List(store_path) as lst:
        lst.extend([3, "str", 1, 2])
        before = snapshot(store_path)
        with pytest.raises(TypeError):
            lst.sort()
        with pytest.raises(ZeroDivisionError):
            lst.sort(key=lambda v: 1 / 0)
        assert snapshot(store_path) == before
        assert lst == [3, "str", 1, 2]

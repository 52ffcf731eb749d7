"""Writeback: values read are kept, changed ones are written back on sync/close.

A model-based test drives a writeback handle with in-place mutation, sync and
close-and-reopen, against two plain models: what the handle shows, and what
the disk must hold (read by an independent, non-writeback handle).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import scratch_dir
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from recording import Recording

import sos
from sos.storage import atomic as _atomic

KEYS = st.sampled_from(["ada", "bob", "cy", "dé", ""])
SCALARS = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.none())
VALUES = st.lists(SCALARS, max_size=3)  # lists, so they can be changed in place


@pytest.fixture
def renames(monkeypatch: pytest.MonkeyPatch) -> Recording:
    """Records the steps; its renames are the files actually written."""
    ops = Recording()
    monkeypatch.setattr(_atomic, "ops", ops)
    return ops


# -- Dict ---------------------------------------------------------------------


def test_dict_in_place_change_written_on_sync(store_path: Path) -> None:
    db = sos.Dict(store_path, writeback=True)
    db["ada"] = {"langs": ["en"]}
    db["ada"]["langs"].append("de")
    assert db["ada"] == {"langs": ["en", "de"]}
    assert sos.Dict(store_path)["ada"] == {"langs": ["en"]}  # not yet on disk
    db.sync()
    assert sos.Dict(store_path)["ada"] == {"langs": ["en", "de"]}
    db.close()


def test_dict_sync_writes_exactly_the_changed_values(store_path: Path, renames: Recording) -> None:
    with sos.Dict(store_path) as plain:
        plain.update({f"k{i}": [i] for i in range(10)})
    db = sos.Dict(store_path, writeback=True)
    values = [db[f"k{i}"] for i in range(10)]  # all read, all kept
    values[3].append("x")
    values[7][0] = 70
    values[5].append(1)
    values[5].pop()  # changed back: same JSON, no write
    renames.clear()
    db.sync()
    assert sorted(renames.paths("rename")) == sorted([db.path_of("k3"), db.path_of("k7")])
    renames.clear()
    db.sync()  # nothing kept any more, nothing changed
    db.close()
    assert renames.paths("rename") == []
    assert sos.Dict(store_path)["k3"] == [3, "x"]


def test_dict_hand_formatted_file_is_not_rewritten(store_path: Path, renames: Recording) -> None:
    with sos.Dict(store_path) as plain:
        plain["a"] = [1, 2]
        path = plain.path_of("a")
    Path(path).write_text('{"key":"a","value":[1,2]}')  # same JSON, other bytes
    with sos.Dict(store_path, writeback=True) as db:
        assert db["a"] == [1, 2]
        renames.clear()
    assert renames.paths("rename") == []
    assert Path(path).read_text() == '{"key":"a","value":[1,2]}'


def test_dict_close_and_with_block_write_back(store_path: Path) -> None:
    with sos.Dict(store_path, writeback=True) as db:
        db["a"] = []
        db["a"].append(1)
    assert sos.Dict(store_path)["a"] == [1]
    db = sos.open(store_path, writeback=True)
    db["a"].append(2)
    db.close()
    assert sos.Dict(store_path)["a"] == [1, 2]


def test_dict_writeback_trade_off_stale_until_sync(store_path: Path) -> None:
    """Documented trade: another handle's change to a kept key is not seen before sync()."""
    db = sos.Dict(store_path, writeback=True)
    db["a"] = 1
    assert db["a"] == 1
    with sos.Dict(store_path) as other:
        other["a"] = 2
    assert db["a"] == 1  # kept
    db.sync()
    assert db["a"] == 2  # the cache was dropped
    db.close()


def test_dict_bad_value_refused_on_sync_and_nothing_written(store_path: Path) -> None:
    db = sos.Dict(store_path, writeback=True)
    db["a"] = [1]
    db["b"] = [2]
    db["a"].append(3)
    db["b"].append(float("nan"))
    with pytest.raises(ValueError):
        db.sync()
    assert dict(sos.Dict(store_path).items()) == {"a": [1], "b": [2]}
    db["b"].pop()
    db.close()
    assert dict(sos.Dict(store_path).items()) == {"a": [1, 3], "b": [2]}


def test_sync_without_writeback_is_a_no_op(store_path: Path, renames: Recording) -> None:
    with sos.Dict(store_path) as db:
        db["a"] = [1]
        renames.clear()
        db["a"].append(2)  # a copy: lost, as documented
        db.sync()
        assert db["a"] == [1]
    assert renames.paths("rename") == []


# -- List ---------------------------------------------------------------------


def test_list_in_place_change_written_back(store_path: Path, renames: Recording) -> None:
    with sos.List(store_path) as plain:
        plain.extend([[0], [1], [2]])
    lst = sos.List(store_path, writeback=True)
    lst[1].append("x")
    assert lst[1] == [1, "x"]
    assert list(sos.List(store_path)) == [[0], [1], [2]]
    renames.clear()
    lst.close()
    assert list(sos.List(store_path)) == [[0], [1, "x"], [2]]
    # One item file and the manifest (the changed item got a fresh id).
    assert len(renames.paths("rename")) == 2
    renames.clear()
    with sos.open(store_path, writeback=True) as again:
        assert [len(v) for v in again] == [1, 2, 1]  # all read, none changed
    assert renames.paths("rename") == []


def test_list_item_removed_elsewhere_is_not_brought_back(store_path: Path) -> None:
    lst = sos.List(store_path, writeback=True)
    lst.extend([[1], [2]])
    lst[0].append(9)
    with sos.List(store_path) as other:
        del other[0]
    lst.sync()
    assert list(sos.List(store_path)) == [[2]]
    lst.close()


# -- the model ----------------------------------------------------------------


class DictWriteback(RuleBasedStateMachine):
    """``shown`` is what the handle must show; ``disk`` what the files must hold."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = scratch_dir()  # tmpfs: the model is about values, not power cuts
        self.path = Path(self.dir) / "store"
        self.db = sos.Dict(self.path, writeback=True)
        self.shown: dict[str, list] = {}
        self.disk: dict[str, list] = {}

    @rule(key=KEYS, value=VALUES)
    def set(self, key: str, value: list) -> None:
        value = list(value)
        self.db[key] = value  # written through, and kept (same object)
        self.shown[key] = value
        self.disk[key] = list(value)

    @precondition(lambda self: self.shown)
    @rule(data=st.data(), item=SCALARS)
    def mutate_in_place(self, data: st.DataObject, item: object) -> None:
        key = data.draw(st.sampled_from(sorted(self.shown)))
        got = self.db[key]
        assert got == self.shown[key]
        got.append(item)
        self.shown[key] = got  # kept by the handle: the next read returns it
        assert self.db[key] is got

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        if key in self.shown:
            del self.db[key]
            del self.shown[key]
            self.disk.pop(key, None)
        else:
            with pytest.raises(KeyError):
                del self.db[key]

    @rule()
    def sync(self) -> None:
        self.db.sync()
        self.disk = {k: list(v) for k, v in self.shown.items()}

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.disk = {k: list(v) for k, v in self.shown.items()}
        self.db = sos.open(self.path, writeback=True)
        self.shown = {k: list(v) for k, v in self.disk.items()}

    @rule(keys=st.lists(KEYS, max_size=3), value=VALUES)
    def batch_of_sets(self, keys: list[str], value: list) -> None:
        with self.db.batch():
            for key in keys:
                self.db[key] = list(value)
                self.shown[key] = list(value)
        # The batch also wrote back every changed kept value.
        self.disk = {k: list(v) for k, v in self.shown.items()}

    @invariant()
    def handle_matches_shown(self) -> None:
        assert dict(self.db.items()) == self.shown
        assert sorted(self.db) == sorted(self.shown)
        assert len(self.db) == len(self.shown)

    @invariant()
    def disk_matches(self) -> None:
        with sos.Dict(self.path) as plain:
            assert dict(plain.items()) == self.disk

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir)


class ListWriteback(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = scratch_dir()  # tmpfs: the model is about values, not power cuts
        self.path = Path(self.dir) / "store"
        self.lst = sos.List(self.path, writeback=True)
        self.shown: list[list] = []
        self.disk: list[list] = []

    def _synced(self) -> None:
        self.disk = [list(v) for v in self.shown]

    @rule(value=VALUES)
    def append(self, value: list) -> None:
        value = list(value)
        self.lst.append(value)
        self.shown.append(value)
        self.disk.append(list(value))

    @rule(index=st.integers(-4, 4), value=VALUES)
    def insert(self, index: int, value: list) -> None:
        value = list(value)
        self.lst.insert(index, value)
        self.shown.insert(index, value)
        self.disk.insert(index, list(value))

    @precondition(lambda self: self.shown)
    @rule(data=st.data(), item=SCALARS)
    def mutate_in_place(self, data: st.DataObject, item: object) -> None:
        index = data.draw(st.integers(0, len(self.shown) - 1))
        got = self.lst[index]
        assert got == self.shown[index]
        got.append(item)
        self.shown[index] = got

    @precondition(lambda self: self.shown)
    @rule(data=st.data())
    def pop(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.shown) - 1))
        assert self.lst.pop(index) == self.shown.pop(index)
        self.disk.pop(index)

    @rule()
    def sync(self) -> None:
        self.lst.sync()
        self._synced()

    @rule()
    def reopen(self) -> None:
        self.lst.close()
        self._synced()
        self.lst = sos.open(self.path, writeback=True)
        self.shown = [list(v) for v in self.disk]

    @rule(values=st.lists(VALUES, max_size=3))
    def batch_extend(self, values: list[list]) -> None:
        with self.lst.batch():
            self.lst.extend(values)
        self.shown.extend(values)
        self._synced()

    @invariant()
    def handle_matches_shown(self) -> None:
        assert list(self.lst) == self.shown
        assert len(self.lst) == len(self.shown)

    @invariant()
    def disk_matches(self) -> None:
        with sos.List(self.path) as plain:
            assert list(plain) == self.disk

    def teardown(self) -> None:
        self.lst.close()
        shutil.rmtree(self.dir)


_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDictWriteback = DictWriteback.TestCase
TestDictWriteback.settings = _SETTINGS
TestListWriteback = ListWriteback.TestCase
TestListWriteback.settings = _SETTINGS

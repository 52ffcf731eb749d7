"""Hypothesis state machines: a plain dict and a plain list judge the stores,
across close-and-reopen and writes made through a second handle."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from strategies import json_values, small_keys

import sos
from sos.storage.memory import forget
from sos.storage.registry import open_storage

# SOS_LONG=1 runs the long form (a soak); the short form runs by default.
_LONG = os.environ.get("SOS_LONG") == "1"
MODEL_SETTINGS = settings(
    max_examples=400 if _LONG else 30, stateful_step_count=50 if _LONG else 30, deadline=None
)
values = json_values
_DATA = re.compile(r"[0-9a-f]{32}\.json")


def data_file_count(root: str) -> int:
    """Data files in the store, counted through its storage (any implementation)."""
    storage = open_storage(root)
    try:
        return sum(1 for name in storage.walk() if _DATA.fullmatch(name.rpartition("/")[2]))
    finally:
        storage.close()


class _Abort(Exception):
    """Raised inside a transaction to roll it back."""


class Location:
    """Where a machine's store lives: a temp directory (the default)."""

    def new_location(self) -> str:
        self.dir = tempfile.mkdtemp(prefix="sos-model-")
        return os.path.join(self.dir, "store")

    def drop_location(self) -> None:
        shutil.rmtree(self.dir)


class InMemory(Location):
    """The same machine on the in-memory storage: the interface is the whole contract."""

    def new_location(self) -> str:
        self.url = f"memory://model-{uuid.uuid4().hex}"
        return self.url

    def drop_location(self) -> None:
        forget(self.url)


def file_order(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def outcome(action: Any) -> tuple[str, Any]:
    try:
        return "ok", action()
    except Exception as exc:
        return "raised", type(exc)


class DictMachine(Location, RuleBasedStateMachine):
    @initialize()
    def open_store(self) -> None:
        self.path = self.new_location()
        self.db = sos.Dict(self.path)
        self.other = sos.Dict(self.path)
        self.model: dict[str, Any] = {}

    def teardown(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
            self.other.close()
            self.drop_location()

    def handle(self, second: bool) -> sos.Dict:
        return self.other if second else self.db

    @rule(key=small_keys, value=values, second=st.booleans())
    def set(self, key: str, value: Any, second: bool) -> None:
        self.handle(second)[key] = value
        self.model[key] = value

    @rule(key=small_keys, second=st.booleans())
    def delete(self, key: str, second: bool) -> None:
        got = outcome(lambda: self.handle(second).__delitem__(key))
        want = outcome(lambda: self.model.__delitem__(key))
        assert got == want

    @rule(key=small_keys, default=st.none() | st.integers())
    def pop(self, key: str, default: Any) -> None:
        assert self.db.pop(key, default) == self.model.pop(key, default)

    @rule(key=small_keys)
    def pop_no_default(self, key: str) -> None:
        assert outcome(lambda: self.db.pop(key)) == outcome(lambda: self.model.pop(key))

    @rule()
    def popitem(self) -> None:
        if not self.model:
            assert outcome(self.db.popitem) == ("raised", KeyError)
            return
        first = min(self.model, key=file_order)  # documented: first in file-name order
        assert self.db.popitem() == (first, self.model.pop(first))

    @rule(key=small_keys, value=values)
    def setdefault(self, key: str, value: Any) -> None:
        assert self.db.setdefault(key, value) == self.model.setdefault(key, value)

    @rule(data=st.dictionaries(small_keys, values, max_size=4), second=st.booleans())
    def update(self, data: dict[str, Any], second: bool) -> None:
        self.handle(second).update(data)
        self.model.update(data)

    @rule(
        changes=st.lists(st.tuples(small_keys, st.none() | values), min_size=1, max_size=4),
        commit=st.booleans(),
        second=st.booleans(),
    )
    def transaction(self, changes: list[tuple[str, Any]], commit: bool, second: bool) -> None:
        """Sets (and deletes, for None) inside a transaction that commits or raises."""
        store = self.handle(second)
        draft = dict(self.model)
        try:
            with store.transaction():
                for key, value in changes:
                    if value is None:
                        assert outcome(lambda k=key: store.__delitem__(k)) == outcome(
                            lambda k=key: draft.__delitem__(k)
                        )
                    else:
                        store[key] = value
                        draft[key] = value
                    assert store == draft  # reads inside see the block's own writes
                if not commit:
                    raise _Abort
        except _Abort:
            return
        self.model = draft

    @rule(key=small_keys)
    def get(self, key: str) -> None:
        assert self.db.get(key, "absent") == self.model.get(key, "absent")
        assert (key in self.db) == (key in self.model)

    @precondition(lambda self: len(self.model) > 3)
    @rule()
    def clear(self) -> None:
        self.db.clear()
        self.model.clear()

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = sos.open(self.path)

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "db"):
            return
        assert len(self.db) == len(self.model)
        assert self.db == self.model
        assert self.other == self.model
        assert list(self.db) == sorted(self.model, key=file_order)
        assert data_file_count(self.path) == len(self.model)


class ListMachine(Location, RuleBasedStateMachine):
    @initialize()
    def open_store(self) -> None:
        self.path = self.new_location()
        self.lst = sos.List(self.path)
        self.other = sos.List(self.path)
        self.model: list[Any] = []

    def teardown(self) -> None:
        if hasattr(self, "lst"):
            self.lst.close()
            self.other.close()
            self.drop_location()

    def handle(self, second: bool) -> sos.List:
        return self.other if second else self.lst

    def same(self, action: Any, second: bool = False) -> None:
        got = outcome(lambda: action(self.handle(second)))
        want = outcome(lambda: action(self.model))
        assert got == want

    @rule(value=values, second=st.booleans())
    def append(self, value: Any, second: bool) -> None:
        self.same(lambda x: x.append(value), second)

    @rule(
        changes=st.lists(
            st.tuples(
                st.sampled_from(["append", "insert", "set", "pop"]), st.integers(-4, 4), values
            ),
            min_size=1,
            max_size=4,
        ),
        commit=st.booleans(),
        second=st.booleans(),
    )
    def transaction(self, changes: list[tuple[str, int, Any]], commit: bool, second: bool) -> None:
        """List changes inside a transaction that commits or raises."""
        store = self.handle(second)
        draft = list(self.model)
        actions = {
            "append": lambda x, i, v: x.append(v),
            "insert": lambda x, i, v: x.insert(i, v),
            "set": lambda x, i, v: x.__setitem__(i, v),
            "pop": lambda x, i, v: x.pop(i),
        }
        try:
            with store.transaction():
                for name, index, value in changes:
                    act = actions[name]
                    got = outcome(lambda a=act, i=index, v=value: a(store, i, v))
                    assert got == outcome(lambda a=act, i=index, v=value: a(draft, i, v))
                    assert list(store) == draft  # reads inside see the block's writes
                if not commit:
                    raise _Abort
        except _Abort:
            return
        self.model = draft

    @rule(items=st.lists(values, max_size=4), second=st.booleans())
    def extend(self, items: list[Any], second: bool) -> None:
        self.same(lambda x: x.extend(items), second)

    @rule(items=st.lists(values, max_size=3))
    def iadd(self, items: list[Any]) -> None:
        self.lst += items
        self.model += items

    @rule(index=st.integers(-8, 8), value=values, second=st.booleans())
    def insert(self, index: int, value: Any, second: bool) -> None:
        self.same(lambda x: x.insert(index, value), second)

    @rule(index=st.integers(-8, 8), value=values, second=st.booleans())
    def set_item(self, index: int, value: Any, second: bool) -> None:
        self.same(lambda x: x.__setitem__(index, value), second)

    @rule(
        start=st.none() | st.integers(-8, 8),
        stop=st.none() | st.integers(-8, 8),
        step=st.none() | st.sampled_from([-2, -1, 1, 2, 3]),
        items=st.lists(values, max_size=4),
    )
    def set_slice(self, start: Any, stop: Any, step: Any, items: list[Any]) -> None:
        self.same(lambda x: x.__setitem__(slice(start, stop, step), items))

    @rule(
        start=st.none() | st.integers(-8, 8),
        stop=st.none() | st.integers(-8, 8),
        step=st.none() | st.sampled_from([-2, -1, 1, 2, 3]),
    )
    def slices(self, start: Any, stop: Any, step: Any) -> None:
        self.same(lambda x: x[start:stop:step])
        self.same(lambda x: x.__delitem__(slice(start, stop, step)))

    @rule(index=st.integers(-8, 8))
    def index_ops(self, index: int) -> None:
        self.same(lambda x: x[index])
        self.same(lambda x: x.pop(index))

    @rule(index=st.integers(-8, 8), second=st.booleans())
    def delete(self, index: int, second: bool) -> None:
        self.same(lambda x: x.__delitem__(index), second)

    @rule()
    def pop_last(self) -> None:
        self.same(lambda x: x.pop())

    @rule(value=values)
    def remove_and_search(self, value: Any) -> None:
        if self.model and value not in self.model:
            value = self.model[len(self.model) // 2]
        self.same(lambda x: x.count(value))
        self.same(lambda x: x.index(value))
        self.same(lambda x: value in x)
        self.same(lambda x: x.remove(value))

    @rule(second=st.booleans())
    def reverse(self, second: bool) -> None:
        self.same(lambda x: x.reverse(), second)

    @rule(reverse=st.booleans())
    def sort(self, reverse: bool) -> None:
        # A total order on any JSON value; stable like list.sort
        self.same(lambda x: x.sort(key=lambda v: json.dumps(v, sort_keys=True), reverse=reverse))

    @rule()
    def sort_plain(self) -> None:
        try:
            sorted(self.model)
        except TypeError:
            before = list(self.model)
            assert outcome(self.lst.sort) == ("raised", TypeError)
            assert self.lst == before
            return
        self.same(lambda x: x.sort())

    @precondition(lambda self: len(self.model) > 6)
    @rule()
    def clear(self) -> None:
        self.same(lambda x: x.clear())

    @rule()
    def reopen(self) -> None:
        self.lst.close()
        self.lst = sos.open(self.path)

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "lst"):
            return
        assert len(self.lst) == len(self.model)
        assert self.lst == self.model
        assert self.other == self.model
        assert list(reversed(self.lst)) == self.model[::-1]
        assert data_file_count(self.path) == len(self.model)  # no orphans on success


DictMachine.TestCase.settings = MODEL_SETTINGS
ListMachine.TestCase.settings = MODEL_SETTINGS
TestDictModel = DictMachine.TestCase
TestListModel = ListMachine.TestCase


class DictMachineInMemory(InMemory, DictMachine):
    pass


class ListMachineInMemory(InMemory, ListMachine):
    pass


DictMachineInMemory.TestCase.settings = MODEL_SETTINGS
ListMachineInMemory.TestCase.settings = MODEL_SETTINGS
TestDictModelInMemory = DictMachineInMemory.TestCase
TestListModelInMemory = ListMachineInMemory.TestCase

"""Every mutating operation of Dict and List, with its expected effect.

Shared by the crash-point and power-loss suites. ``run`` opens the store
afresh (as a new process would) and performs the call; ``model`` computes the
expected content with plain Python objects, independently of sos.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sos

from .harness import digest

DICT_PRE = {"a": 1, "b": {"x": [1, 2]}, "c": "three", "d": None, "é": "e-acute"}
LIST_PRE = [5, "one", {"two": 2}, 3, None, 1]


@dataclass(frozen=True)
class Operation:
    name: str
    kind: str  # "dict" or "list"
    call: Callable[[Any], Any]  # on an open store (or on the path, for "create")
    model: Callable[[Any], Any]  # on a deep copy of the pre content
    creates: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by name (its callables are lambdas): tests/lean.py
        sends it to the helper that runs the test."""
        return (operation, (self.name,))

    @property
    def pre(self) -> Any:
        if self.creates:
            return None
        return copy.deepcopy(DICT_PRE if self.kind == "dict" else LIST_PRE)

    def expected(self) -> Any:
        return self.model(self.pre)

    def run(self, root: str) -> None:
        if self.creates:
            self.call(root).close()
            return
        store = sos.open(root)
        try:
            self.call(store)
        finally:
            store.close()


def _do(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A model from an in-place mutation: apply it, return the object."""

    def model(obj: Any) -> Any:
        fn(obj)
        return obj

    return model


def _set(k: Any, v: Any) -> Callable[[Any], None]:
    def f(o: Any) -> None:
        o[k] = v

    return f


def _warm(then: Callable[[Any], None], key: Any) -> Callable[[Any], None]:
    """``then`` on a warm handle: ``key`` rewritten with its own value first, so
    that ``then``'s set is sos.storage.plain's one-frame write, not a first write's."""

    def f(o: Any) -> None:
        o[key] = o[key]
        then(o)

    return f


def _popitem_model(d: dict) -> dict:
    del d[min(d, key=digest)]  # the format's iteration order: hash order
    return d


def _slice_set(o: Any) -> None:
    o[1:3] = ["s1", "s2", "s3"]


def _slice_del(o: Any) -> None:
    del o[::2]


def _index_del(o: Any) -> None:
    del o[2]


OPERATIONS = [
    Operation("dict create", "dict", sos.Dict, lambda _: {}, creates=True),
    Operation("list create", "list", sos.List, lambda _: [], creates=True),
    Operation("dict set new key", "dict", _set("new key", [1, 2]), _do(_set("new key", [1, 2]))),
    Operation("dict overwrite", "dict", _set("a", {"n": 2}), _do(_set("a", {"n": 2}))),
    Operation(
        "dict overwrite, warm handle",
        "dict",
        _warm(_set("a", {"n": 2}), "c"),
        _do(_set("a", {"n": 2})),
    ),
    Operation(
        "dict set new key, warm handle",
        "dict",
        _warm(_set("new key", [1, 2]), "c"),
        _do(_set("new key", [1, 2])),
    ),
    Operation(
        "dict delete", "dict", lambda d: d.__delitem__("b"), _do(lambda d: d.__delitem__("b"))
    ),
    Operation("dict pop", "dict", lambda d: d.pop("c"), _do(lambda d: d.pop("c"))),
    Operation("dict popitem", "dict", lambda d: d.popitem(), _popitem_model),
    Operation(
        "dict setdefault",
        "dict",
        lambda d: d.setdefault("sd", 7),
        _do(lambda d: d.setdefault("sd", 7)),
    ),
    Operation(
        "dict update",
        "dict",
        lambda d: d.update({"a": 10, "u1": "x", "u2": [None]}, u3=3),
        _do(lambda d: d.update({"a": 10, "u1": "x", "u2": [None]}, u3=3)),
    ),
    Operation("dict clear", "dict", lambda d: d.clear(), _do(lambda d: d.clear())),
    Operation("list append", "list", lambda s: s.append("z"), _do(lambda s: s.append("z"))),
    Operation("list insert", "list", lambda s: s.insert(2, "i"), _do(lambda s: s.insert(2, "i"))),
    Operation("list set index", "list", _set(1, "w"), _do(_set(1, "w"))),
    Operation("list set slice", "list", _slice_set, _do(_slice_set)),
    Operation("list delete index", "list", _index_del, _do(_index_del)),
    Operation("list delete slice", "list", _slice_del, _do(_slice_del)),
    Operation(
        "list extend", "list", lambda s: s.extend([7, 8, 9]), _do(lambda s: s.extend([7, 8, 9]))
    ),
    Operation("list pop", "list", lambda s: s.pop(1), _do(lambda s: s.pop(1))),
    Operation("list remove", "list", lambda s: s.remove(3), _do(lambda s: s.remove(3))),
    Operation("list reverse", "list", lambda s: s.reverse(), _do(lambda s: s.reverse())),
    Operation(
        "list sort",
        "list",
        lambda s: s.sort(key=str),
        _do(lambda s: s.sort(key=str)),
    ),
    Operation("list clear", "list", lambda s: s.clear(), _do(lambda s: s.clear())),
]


def operation(name: str) -> Operation:
    """The operation called ``name``."""
    return next(op for op in OPERATIONS if op.name == name)

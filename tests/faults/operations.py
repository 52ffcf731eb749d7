"""The mutating operations the fault suite attacks, each with a model of its effect.

A model is plain Python on a plain dict or list: given the old content it
returns the new content and what the call returns, so the judge knows both
ends of every operation without asking sos.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sos

DICT0 = {"a": 1, "b": [1, 2], "c": {"x": "y"}, "d": "text"}
LIST0 = ["job3", "job1", "job2", "job4"]
LOAD_INPUT = ["l1", "l2", "l3"]
# check --repair's store also holds what it must repair: an orphan item and a temp file.
ORPHAN_ID = "0000000000000000-7"
PLANTED_TEMP = "ab/.sos-tmp-00000000deadbeef"

Model = Callable[[Any], tuple[Any, Any]]


@dataclass(frozen=True)
class Op:
    name: str
    kind: str  # "dict" or "list"
    model: Model  # old content -> (new content, the value the call returns)
    code: str | None = None  # library: Python run with the open store as ``s``
    cli: tuple[str, ...] | None = None  # or the sos command's arguments ({root}, {input})
    hands_back: bool = False  # pop, popitem: a value it destroys must come back
    per_key: bool = False  # a Dict change whose keys commit one by one
    plant: bool = False  # the store also holds an orphan item and a temp file

    def spec(self, root: Path, workdir: Path) -> dict[str, Any]:
        if self.cli is None:
            return {"root": str(root), "code": self.code}
        names = {"root": str(root), "input": str(workdir / "input.json")}
        return {"root": str(root), "cli": [a.format(**names) for a in self.cli]}

    def expected(self, old: Any) -> tuple[Any, Any]:
        new, returned = self.model(copy.deepcopy(old))
        return _plain(new), _plain(returned)


def _plain(value: Any) -> Any:
    """As JSON gives it back (tuples become lists)."""
    return json.loads(json.dumps(value))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _apply(statement: Callable[[Any], Any]) -> Model:
    def model(content: Any) -> tuple[Any, Any]:
        return content, statement(content)

    return model


def _setitem(k: Any, v: Any) -> Model:
    return _apply(lambda c: c.__setitem__(k, v))


def _delitem(k: Any) -> Model:
    return _apply(lambda c: c.__delitem__(k))


def _popitem(d: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    key = min(d, key=digest)  # a Dict iterates in hash order
    return d, (key, d.pop(key))


def _dict_batch(d: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    d["a"] = 5
    del d["c"]
    d["h"] = 1
    return d, None


def _list_batch(lst: list[Any]) -> tuple[list[Any], Any]:
    lst.append("b1")
    lst.pop(0)
    lst[0] = "b0"
    return lst, None


OPS = [
    Op("dict-set-new", "dict", _setitem("e", {"new": True}), 's["e"] = {"new": True}'),
    Op("dict-set-existing", "dict", _setitem("a", 2), 's["a"] = 2'),
    Op("dict-del", "dict", _delitem("b"), 'del s["b"]'),
    Op("dict-pop", "dict", _apply(lambda d: d.pop("b")), 'result = s.pop("b")', hands_back=True),
    Op("dict-popitem", "dict", _popitem, "result = s.popitem()", hands_back=True),
    Op(
        "dict-setdefault",
        "dict",
        _apply(lambda d: d.setdefault("e", [1])),
        'result = s.setdefault("e", [1])',
    ),
    Op(
        "dict-update",
        "dict",
        _apply(lambda d: d.update({"a": 10, "f": "x", "g": None})),
        's.update({"a": 10, "f": "x", "g": None})',
        per_key=True,
    ),
    Op("dict-clear", "dict", _apply(lambda d: d.clear()), "s.clear()", per_key=True),
    Op(
        "dict-batch",
        "dict",
        _dict_batch,
        'with s.batch():\n    s["a"] = 5\n    del s["c"]\n    s["h"] = 1',
        per_key=True,
    ),
    Op("list-append", "list", _apply(lambda x: x.append("job5")), 's.append("job5")'),
    Op("list-extend", "list", _apply(lambda x: x.extend(["x", "y"])), 's.extend(["x", "y"])'),
    Op("list-insert", "list", _apply(lambda x: x.insert(1, "ins")), 's.insert(1, "ins")'),
    Op("list-setitem", "list", _setitem(2, "set"), 's[2] = "set"'),
    Op("list-del-slice", "list", _delitem(slice(1, 3)), "del s[1:3]"),
    Op("list-pop-first", "list", _apply(lambda x: x.pop(0)), "result = s.pop(0)", hands_back=True),
    Op("list-pop-last", "list", _apply(lambda x: x.pop()), "result = s.pop()", hands_back=True),
    Op("list-remove", "list", _apply(lambda x: x.remove("job2")), 's.remove("job2")'),
    Op("list-clear", "list", _apply(lambda x: x.clear()), "s.clear()"),
    Op("list-sort", "list", _apply(lambda x: x.sort()), "s.sort()"),
    Op("list-reverse", "list", _apply(lambda x: x.reverse()), "s.reverse()"),
    Op(
        "list-batch",
        "list",
        _list_batch,
        'with s.batch():\n    s.append("b1")\n    s.pop(0)\n    s[0] = "b0"',
    ),
    Op("cli-set", "dict", _setitem("a", 42), cli=("set", "{root}", "a", "42")),
    Op("cli-del", "dict", _delitem("b"), cli=("del", "{root}", "b")),
    Op("cli-append", "list", _apply(lambda x: x.append(5)), cli=("append", "{root}", "5")),
    Op(
        "cli-load",
        "list",
        _apply(lambda x: x.extend(LOAD_INPUT)),
        cli=("load", "{root}", "{input}"),
    ),
    Op(
        "cli-check-repair",
        "list",
        _apply(lambda x: None),
        cli=("check", "--repair", "{root}"),
        plant=True,
    ),
]


def initial(op: Op) -> Any:
    return copy.deepcopy(DICT0 if op.kind == "dict" else LIST0)


def make(op: Op, root: Path, workdir: Path) -> None:
    """The store ``op`` starts from (and the input file of ``sos load``)."""
    store = sos.Dict(root) if op.kind == "dict" else sos.List(root)
    with store:
        if op.kind == "dict":
            store.update(DICT0)
        else:
            store.extend(LIST0)
    (workdir / "input.json").write_text(json.dumps(LOAD_INPUT))
    if op.plant:
        name = digest(ORPHAN_ID)
        (root / name[:2]).mkdir(exist_ok=True)
        doc = json.dumps({"key": ORPHAN_ID, "value": "orphan"}, indent=2) + "\n"
        (root / name[:2] / f"{name}.json").write_text(doc)
        (root / PLANTED_TEMP).parent.mkdir(exist_ok=True)
        (root / PLANTED_TEMP).write_text("half a wri")

"""Crash points of the command line's writers: ``sos load`` and ``sos check --repair``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from lean import in_lean_process

import sos
from sos import cli
from sos import format as _format
from sos.storage import atomic as _atomic

from . import harness
from .operations import DICT_PRE, LIST_PRE

LOADS = {
    # name: (kind, pre-state or None, input text, expected content after)
    "load into a new dict store": (
        "dict",
        None,
        json.dumps({"a": 1, "b": [2], "c": {"d": None}}),
        {"a": 1, "b": [2], "c": {"d": None}},
    ),
    "load into a dict store": (
        "dict",
        DICT_PRE,
        json.dumps({"a": 5, "new1": 1, "new2": [2]}),
        {**DICT_PRE, "a": 5, "new1": 1, "new2": [2]},
    ),
    "load JSON Lines into a list store": (
        "list",
        LIST_PRE,
        '7\n"eight"\n{"nine": 9}\n',
        [*LIST_PRE, 7, "eight", {"nine": 9}],
    ),
}


@pytest.mark.parametrize("name", list(LOADS))
@in_lean_process
def test_crash_at_every_step_of_load(name: str, fast_dir: Path):
    kind, pre_content, text, expected = LOADS[name]
    pre = fast_dir / "pre" / "store"
    work = fast_dir / "work" / "store"
    work.parent.mkdir(parents=True)
    source = fast_dir / "input.json"
    source.write_text(text)
    if pre_content is not None:
        harness.make_store(pre, kind, pre_content)

    def reset() -> None:
        shutil.rmtree(work, ignore_errors=True)
        if pre_content is not None:
            shutil.copytree(pre, work)

    def run() -> None:
        if cli.main(["load", str(work), str(source)]) != 0:
            os._exit(3)

    def verify(done: bool) -> list[str]:
        found = harness.violations(str(work), kind, pre_content, expected, done=done, repair=False)
        return found or harness.check_problems(str(work), kind)

    tried, found = harness.crash_loop(f"sos {name}", reset, run, verify, state=work)
    harness.add_figure("crash points (CLI)", tried)
    assert found == []
    assert tried >= 3


def _damaged_dict(path: Path) -> None:
    harness.make_store(path, "dict", DICT_PRE)
    (path / ".sos-tmp-0123456789abcdef").write_bytes(b"half a wri")
    # a hand-made document in the wrong file: repair moves it where it belongs
    wrong = path / "00" / ("0" * 32 + ".json")
    wrong.parent.mkdir(exist_ok=True)
    wrong.write_bytes(_format.encode_document("moved", {"x": 1}))


def _damaged_list(path: Path) -> None:
    harness.make_store(path, "list", LIST_PRE)
    with sos.List(path) as lst:
        ids = lst._order().ids()
    orphan = "feedfacefeedface-0"
    (path / _format.key_relpath(orphan)).parent.mkdir(exist_ok=True)
    (path / _format.key_relpath(orphan)).write_bytes(_format.encode_document(orphan, "orphan"))
    missing = "deadbeefdeadbeef-0"
    # the manifest names a missing item and one item twice (a union merge)
    order = "".join(f"{i.split('-')[0]} {i.split('-')[1]}\n" for i in [*ids, missing, ids[0]])
    (path / "order.txt").write_bytes(b"# sos list order\n" + order.encode())
    (path / _format.key_relpath(ids[1])).parent.joinpath(".sos-tmp-00000000deadbeef").write_bytes(
        b""
    )


def _documents(path: Path) -> dict[str, Any]:
    docs = {}
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                ok, doc = harness.valid_document(f.read(), name)
            if ok:
                docs[doc[0]] = doc[1]
    return docs


@pytest.mark.parametrize("kind", ["dict", "list"])
@in_lean_process
def test_crash_at_every_step_of_check_repair(kind: str, fast_dir: Path):
    pre = fast_dir / "pre" / "store"
    work = fast_dir / "work" / "store"
    work.parent.mkdir(parents=True)
    (_damaged_dict if kind == "dict" else _damaged_list)(pre)
    assert sos.check(pre) != []
    reference = fast_dir / "reference"
    shutil.copytree(pre, reference)
    sos.check(reference, repair=True)
    assert sos.check(reference) == []
    _, expected = harness.store_state(str(reference))
    valid_before = _documents(pre)

    def reset() -> None:
        harness.replace_tree(pre, work)

    def run() -> None:
        cli.main(["check", "--repair", str(work)])

    def verify(done: bool) -> list[str]:
        out = []
        now = _documents(work)  # lost+found included
        out += [f"repair lost valid document {k!r}" for k in valid_before if k not in now]
        try:
            sos.check(work, repair=True)
            left = sos.check(work)
        except sos.Error as exc:
            return [*out, f"check after the crash raised {exc}"]
        out += [f"a second repair leaves {p.code}: {p}" for p in left]
        _, content = harness.store_state(str(work))
        if content != expected:
            out.append(f"repaired store holds {content!r:.200}, expected {expected!r:.200}")
        return out

    tried, found = harness.crash_loop(
        f"sos check --repair ({kind})", reset, run, verify, state=work
    )
    harness.add_figure("crash points (CLI)", tried)
    assert found == []
    assert tried >= 3


@in_lean_process
def test_crash_points_catch_a_repair_that_deletes_before_copying(fast_dir: Path):
    """A repair that unlinks a misplaced document before writing it where it
    belongs loses it when killed in between: the same loop goes red."""
    pre = fast_dir / "pre" / "store"
    work = fast_dir / "work" / "store"
    work.parent.mkdir(parents=True)
    _damaged_dict(pre)

    def reset() -> None:
        harness.replace_tree(pre, work)

    def broken_repair() -> None:
        src = work / "00" / ("0" * 32 + ".json")
        data = src.read_bytes()
        _atomic.remove_files([str(src)])
        _atomic.write_file(str(work / _format.key_relpath("moved")), data)

    def verify(done: bool) -> list[str]:
        return [] if "moved" in _documents(work) else ["the document 'moved' is lost"]

    _, found = harness.crash_loop("broken repair", reset, broken_repair, verify, state=work)
    assert any("lost" in f for f in found)

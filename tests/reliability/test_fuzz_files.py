"""Fuzzed files: seeded random damage to data, item, metadata and manifest
files. An oracle written from docs/format.md (harness.valid_document,
harness.manifest_ids), not from sos, says whether the damaged file is still
valid; if not, reading it must raise CorruptError naming that file, every
other key must still read, ``sos.check`` must report it, and ``--repair``
must never remove a valid document.

40 damaged files in the default run; the soak (``-m slow``, run by
``.ci/run``) does 150, and 3,000 with ``SOS_LONG=1``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sos
from sos import format as _format

from . import harness

CASES = 3_000 if os.environ.get("SOS_LONG") == "1" else 150
DICT_CONTENT = {
    f"key-{i}": v
    for i, v in enumerate(
        [1, -2.5, "text", 'é\n"quoted"', None, True, [1, [2, [3]]], {"a": {"b": []}}, 10**30, ""]
    )
}
LIST_CONTENT = [0, "one", [2], {"three": 3}, None, 5.5]


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))] if data else data


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _conflict(rng: random.Random, data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    cut = rng.randrange(len(lines) + 1)
    theirs = _flip(rng, b"".join(lines[cut:]))
    return (
        b"".join(lines[:cut])
        + b"<<<<<<< HEAD\n"
        + b"".join(lines[cut:])
        + b"=======\n"
        + theirs
        + b">>>>>>> theirs\n"
    )


def _wrong_type(rng: random.Random, data: bytes) -> bytes:
    return rng.choice(
        [
            b"[1, 2]\n",
            b'"just a string"\n',
            b"42\n",
            b"null\n",
            b'{"key": 5, "value": 1}\n',
            b'{"value": 1}\n',
            b'{"key": "k", "value": 1, "extra": 2}\n',
            b'{"key": "some other key", "value": 1}\n',
            b'{"key": "k", "value": NaN}\n',
            b'{"format": "1", "kind": "dict"}\n',
            b'{"format": 1, "kind": ["list"]}\n',
            b"ab 1-\n",
        ]
    )


def _empty(rng: random.Random, data: bytes) -> bytes:
    return b""


def _garbage(rng: random.Random, data: bytes) -> bytes:
    return rng.randbytes(rng.randint(1, 200))


def _bom(rng: random.Random, data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data


DAMAGE: list[Callable[[random.Random, bytes], bytes]] = [
    _truncate,
    _flip,
    _conflict,
    _wrong_type,
    _empty,
    _garbage,
    _bom,
]


def _named(exc: BaseException, path: Path) -> bool:
    return isinstance(exc, sos.Error) and exc.path is not None and Path(exc.path) == path


def _reads(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return fn(), None
    except Exception as exc:
        return None, exc


def _reported(path: Path, target: Path) -> bool:
    return any(Path(p.path) == target for p in sos.check(path))


def _after_repair(store: Path) -> None:
    sos.check(store, repair=True)


def fuzz_one(pristine: Path, work: Path, rng: random.Random) -> tuple[str, list[str]]:
    """Damage one file of a copy of ``pristine``; (what was done, violations)."""
    harness.replace_tree(pristine, work)
    kind = rng.choice(["dict", "list"])
    store = work / kind
    target_kind = rng.choice(["data", "data", "data", "metadata", "manifest"])
    if target_kind == "manifest" and kind == "dict":
        target_kind = "data"
    if target_kind == "metadata":
        target = store / "sos.json"
    elif target_kind == "manifest":
        target = store / "order.txt"
    else:
        files = sorted(store.glob("??/*.json"))
        target = files[rng.randrange(len(files))]
    damage = rng.choice(DAMAGE)
    before = target.read_bytes()
    after = damage(rng, before)
    if after == before:
        after = b""
    target.write_bytes(after)
    what = f"{damage.__name__[1:]} of {kind} {target_kind} {target.name}"
    out: list[str] = []
    if target_kind == "data":
        out = _check_data(store, kind, target, after)
    elif target_kind == "metadata":
        got, exc = _reads(lambda: sos.open(store).close())
        out = _verdict("metadata", _valid_metadata(after, kind), got, exc, store, target)
    else:
        out = _check_manifest(store, target, after)
    if not out:
        out += _repair_keeps_valid_documents(store)
    return what, out


def _valid_metadata(data: bytes, kind: str) -> bool:
    try:
        meta = json.loads(data.decode("utf-8"), parse_constant=lambda c: 1 / 0)
    except (ValueError, ZeroDivisionError):
        return False
    return (
        isinstance(meta, dict)
        and meta.get("kind") == kind
        and type(meta.get("format")) is int
        and meta["format"] == 1
    )


def _check_data(store: Path, kind: str, target: Path, data: bytes) -> list[str]:
    out = []
    ok, doc = harness.valid_document(data, target.name)
    if kind == "dict":
        with sos.Dict(store, create=False) as db:
            for key, value in DICT_CONTENT.items():
                got, exc = _reads(lambda key=key: db[key])
                if harness.digest(key) + ".json" != target.name:
                    if exc is not None or got != value:
                        out.append(f"undamaged key {key!r} reads {exc or got!r}")
                elif ok and (exc is not None or got != doc[1]):
                    out.append(f"still-valid document for {key!r} reads {exc or got!r}")
                elif not ok and (exc is None or not _named(exc, target)):
                    out.append(f"damaged {key!r} gave {exc or got!r}, not a CorruptError naming it")
    else:
        with sos.List(store, create=False) as lst:
            ids = lst._order().ids()
            for index, value in enumerate(LIST_CONTENT):
                got, exc = _reads(lambda index=index: lst[index])
                if harness.digest(ids[index]) + ".json" != target.name:
                    if exc is not None or got != value:
                        out.append(f"undamaged item {index} reads {exc or got!r}")
                elif ok and (exc is not None or got != doc[1]):
                    out.append(f"still-valid item {index} reads {exc or got!r}")
                elif not ok and (exc is None or not _named(exc, target)):
                    out.append(f"damaged item {index} gave {exc or got!r}, not a CorruptError")
    if not ok and not _reported(store, target):
        out.append("sos.check does not report the damaged file")
    return out


def _check_manifest(store: Path, target: Path, data: bytes) -> list[str]:
    ids = harness.manifest_ids(data)
    present = {
        doc[1][0]
        for f in store.glob("??/*.json")
        if (doc := harness.valid_document(f.read_bytes(), f.name))[0]
    }
    ok = ids is not None and all(i in present for i in ids)
    with sos.List(store, create=False) as lst:
        got, exc = _reads(lambda: list(lst))
    return _verdict("manifest", ok, got, exc, store, target)


def _verdict(
    what: str, ok: bool, got: Any, exc: BaseException | None, store: Path, target: Path
) -> list[str]:
    """A whole-store file (metadata, manifest) read back: a valid one must be
    accepted; a damaged one must raise an error naming it, and check report it."""
    out = []
    if ok and exc is not None:
        out.append(f"valid {what} refused: {exc}")
    if not ok and (exc is None or not _named(exc, target)):
        out.append(f"damaged {what} gave {exc or got!r:.100}, not a CorruptError naming it")
    if not ok and not _reported(store, target):
        out.append(f"sos.check does not report the damaged {what}")
    return out


def _valid_documents(store: Path) -> dict[str, Any]:
    docs = {}
    for f in store.rglob("*.json"):
        ok, doc = harness.valid_document(f.read_bytes(), f.name)
        if ok:
            docs[doc[0]] = doc[1]
    return docs


def _repair_keeps_valid_documents(store: Path) -> list[str]:
    """Every valid document before repair is still somewhere in the store
    (in place or in lost+found) with the same key and value."""
    before = _valid_documents(store)
    _after_repair(store)
    after = _valid_documents(store)
    lost = [k for k in before if after.get(k, harness.ABSENT) != before[k]]
    return [f"check --repair lost the valid document {k!r}" for k in lost]


def fuzz(base: Path, cases: int, seed: int) -> tuple[int, list[str]]:
    pristine = base / "pristine"
    harness.make_store(pristine / "dict", "dict", DICT_CONTENT)
    harness.make_store(pristine / "list", "list", LIST_CONTENT)
    rng = random.Random(seed)
    found = []
    for n in range(cases):
        what, problems = fuzz_one(pristine, base / "work", rng)
        found += [f"case {n} ({what}): {p}" for p in problems]
    shutil.rmtree(base / "work", ignore_errors=True)
    return cases, found


@pytest.mark.parametrize(
    "count", [pytest.param(40, id="short"), pytest.param(CASES, marks=pytest.mark.slow, id="soak")]
)
def test_fuzzed_files(fast_dir: Path, count: int):
    cases, found = fuzz(fast_dir, count, seed=2024)
    harness.add_figure("fuzzed files", cases)
    assert found == []


def test_fuzz_catches_a_salvaging_reader(fast_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A reader that salvages what it can of a damaged file (accepts bad UTF-8
    and NaN, and returns the key with a null value when the JSON is broken)
    hands out wrong values silently: the suite goes red."""

    def salvage(data: bytes, path: str, what: str = "document") -> Any:
        text = data.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            key = re.search(r'"key": ("(?:[^"\\]|\\.)*")', text)
            try:
                return {"key": json.loads(key.group(1), strict=False), "value": None}
            except (AttributeError, ValueError):
                return {"key": "?", "value": None}

    monkeypatch.setattr(_format, "parse_json", salvage)
    monkeypatch.setattr(_format.documents, "parse_json", salvage)
    _, found = fuzz(fast_dir, 60, seed=2024)
    assert any("not a CorruptError" in f for f in found), found

"""Ways a person or a tool leaves an unreadable or unseen data file in a store,
for the rule "``sos check`` never reports clean while a data file is
unreadable", asserted the same way on every storage (tests/test_check.py,
tests/s3/test_s3_check.py).

Each case writes through the storage interface (so it reaches a directory,
``memory://`` and a bucket alike) and names the file a finding must name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import sos
from sos.format.names import key_relpath
from sos.storage.registry import open_storage, scheme_of

__all__ = ["CASES", "assert_never_clean", "build", "doc", "where"]

_BOM = b"\xef\xbb\xbf"


def doc(key: str, value: object) -> bytes:
    return (json.dumps({"key": key, "value": value}, indent=2) + "\n").encode()


def _wrong_fanout(key: str) -> str:
    """A data file's name in a fan-out directory that is not its own."""
    rel = key_relpath(key)
    other = "00" if not rel.startswith("00") else "01"
    return f"{other}/{rel[3:]}"


# case id -> (the store-relative name to write, given the key aimed at; its bytes)
CASES: dict[str, tuple[Callable[[str], str], Callable[[str], bytes]]] = {
    # a data file damaged in place
    "typo": (key_relpath, lambda k: doc(k, {"born": 1906})[:-3] + b",}\n"),
    "bom": (key_relpath, lambda k: _BOM + doc(k, 1)),
    "empty": (key_relpath, lambda k: b""),
    "truncated": (key_relpath, lambda k: doc(k, "a long value")[:20]),
    "not-a-document": (key_relpath, lambda k: b'["just", "a", "list"]\n'),
    "conflict-markers": (
        key_relpath,
        lambda k: b"<<<<<<< HEAD\n" + doc(k, 1) + b"=======\n" + doc(k, 2) + b">>>>>>> b\n",
    ),
    "bad-utf8": (key_relpath, lambda k: doc(k, "x").replace(b'"x"', b'"\xff"')),
    # a document dropped in by hand: at the top, in a fan-out directory, badly named
    "dropped-typo": (lambda k: "grace.json", lambda k: doc(k, {"born": 1906})[:-3] + b",}\n"),
    "dropped-bom": (lambda k: "grace.json", lambda k: _BOM + doc(k, 1)),
    "dropped-valid": (lambda k: "grace.json", lambda k: doc(k, 1)),
    "dropped-not-a-document": (lambda k: "grace.json", lambda k: b'{"name": "grace"}\n'),
    "dropped-upper-case": (lambda k: "GRACE.JSON", lambda k: doc(k, 1)[:-4]),
    "dropped-in-fanout": (lambda k: key_relpath(k)[:3] + "grace.json", lambda k: b"{,}"),
    "wrong-fanout-typo": (_wrong_fanout, lambda k: doc(k, 1)[:-3] + b",}\n"),
    "wrong-fanout-valid": (_wrong_fanout, lambda k: doc(k, 1)),
}


def build(url: str, kind: str) -> str:
    """A store at ``url`` with a few values; returns the key (item id) damage aims at."""
    if kind == "dict":
        with sos.Dict(url) as db:
            db.update({"ada": {"born": 1815}, "alan": 1912, "grace": [1, 2]})
        return "grace"
    with sos.List(url) as lst:
        lst.extend(["milk", "eggs", "jam"])
        return json.loads(open_storage_read(url, lst.path_of(2)))["key"]


def open_storage_read(url: str, path: str) -> bytes:
    """The bytes of a store file given the path or URL a handle reports."""
    storage = open_storage(url)
    try:
        rel = path[len(url) :].lstrip("/" + os.sep).replace(os.sep, "/")
        return storage.read(rel)
    finally:
        storage.close()


def where(url: str, name: str) -> str:
    """What a finding calls ``name``: a local path, or the URL."""
    if scheme_of(url) is None:
        return os.path.join(url, *name.split("/"))
    return f"{url.rstrip('/')}/{name}"


def assert_never_clean(url: str, kind: str, case: str) -> list[sos.Problem]:
    """Damage the store at ``url`` as ``case`` says; check must name the file."""
    key = build(url, kind)
    name_of, data_of = CASES[case]
    name = name_of(key)
    storage = open_storage(url)
    try:
        storage.write(name, data_of(key))
    finally:
        storage.close()
    problems = sos.check(url)
    assert where(url, name) in [p.path for p in problems], (case, name, problems)
    return problems

"""Every refusal is ours (issue 24): an integer too long for Python, nesting
too deep, bytes that are not UTF-8, a byte order mark, a lone surrogate in a
key. Each is a ``sos.Error`` naming the key or the file and saying what to
do, through the Python API and through the command line, and nothing is
written (no store is created for a refused value either)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import sos
from conftest import digest_path

import sos as sos_api

BIG = 10**5000  # more digits than Python converts to text by default


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    with sos_api.Dict(path) as db:
        db["k"] = "old"
    return path


# -- the Python API --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("k", BIG, ["key 'k'", "more than 4300 digits", "store it as a string"]),
        ("k", {"a": [BIG]}, ["key 'k'", "value['a'][0]", "sys.set_int_max_str_digits"]),
        ("k", nested(600), ["key 'k'", "deeper than 500 levels", "flatten it"]),
        ("\ud800", 1, ["'\\ud800'", "lone surrogate", "decode them properly first"]),
        ("k", {"\udcff": 1}, ["key 'k'", "lone surrogate", "surrogateescape"]),
    ],
    ids=["int", "int-inside", "deep", "surrogate-key", "surrogate-member"],
)
def test_the_api_refuses_with_our_error(store: Path, key: str, value, says: list[str]):
    before = snapshot(store)
    with sos_api.Dict(store) as db:
        for write in (db.__setitem__, lambda k, v: db.update({"a": 1, k: v})):
            with pytest.raises(sos_api.UnwritableError) as caught:
                write(key, value)
            assert isinstance(caught.value, (sos_api.Error, ValueError))
            for part in says:
                assert part in str(caught.value), str(caught.value)
            assert "Exceeds the limit" not in str(caught.value)  # not Python's text
    with sos_api.List(store.parent / "todo") as lst, pytest.raises(sos_api.UnwritableError):
        lst.append(value if key == "k" else key)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"key": "k", "value": "\xff"}', ["not UTF-8 (byte 23)", "save it as UTF-8"]),
        (b'\xef\xbb\xbf{"key": "k", "value": 1}', ["byte order mark", "remove the first 3 bytes"]),
        (b'{"key": "k", "value": ' + b"1" * 5000 + b"}", ["4300", "write it as a string"]),
        (b'{"key": "k", "value": ' + b"[" * 3000 + b"]" * 3000 + b"}", ["nested too deeply"]),
    ],
    ids=["bad-utf8", "bom", "int", "deep"],
)
def test_a_damaged_file_is_named_through_api_and_cli(store: Path, data: bytes, says: list[str]):
    doc = digest_path(store, "k")
    doc.write_bytes(data)
    with sos_api.Dict(store) as db, pytest.raises(sos_api.CorruptError) as caught:
        db["k"]
    assert str(doc) in str(caught.value)
    for part in says:
        assert part in str(caught.value), str(caught.value)
    proc = sos("get", store, "k", expect=1)
    assert str(doc) in proc.stderr and says[0] in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert doc.read_bytes() == data


# -- the command line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "status", "says"),
    [
        (["set", "S", "k", "1" * 5000], 2, ["VALUE", "4300", "write it as a string"]),
        (["set", "S", "k", "[" * 2000 + "]" * 2000], 2, ["VALUE", "nested too deeply"]),
        (["set", "S", "k", "[" * 600 + "]" * 600], 1, ["key 'k'", "flatten it", "nothing written"]),
        (["append", "S", "[" * 600 + "]" * 600], 1, ["deeper than 500", "nothing written"]),
        (["set", "S", "k", "\ufeff1"], 2, ["VALUE", "byte order mark"]),
        (["set", "S", '"\\ud800"', "1"], 1, ["'\\ud800'", "lone surrogate", "decode them"]),
        (["set", "S", "a\udcff", "1"], 2, ["KEY b'a\\xff' is not UTF-8 (byte 1)", "terminal"]),
        (["set", "S", "k", '"\udcff"'], 2, ["VALUE", "not UTF-8"]),
        (["get", "S", "a\udcff"], 2, ["is not UTF-8"]),
    ],
    ids=["int", "deep-json", "deep", "deep-append", "bom", "surrogate", "key-bytes",
         "value-bytes", "get-key-bytes"],
)  # fmt: skip
def test_the_cli_refuses_with_our_error_and_creates_nothing(
    tmp_path: Path, store: Path, argv: list[str], status: int, says: list[str]
):
    for target in (tmp_path / "new", store):  # a store that is not there, and one that is
        if argv[0] == "get" and target != store:
            continue  # no store: that is what get says first
        before = snapshot(store)
        proc = sos(*[str(target) if a == "S" else a for a in argv], expect=status)
        if status == 1 or target == store:
            assert len(proc.stderr.splitlines()) == 1, proc.stderr
        for part in says:
            assert part in proc.stderr, proc.stderr
        assert "quotes" not in proc.stderr  # no "a string needs JSON quotes" for bad bytes
        assert "Exceeds the limit" not in proc.stderr
        assert "maximum recursion depth exceeded" not in proc.stderr
        assert not (tmp_path / "new").exists(), "a refused value creates no store"
        assert snapshot(store) == before


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"a": "\xff"}', ["not UTF-8 (byte 7)", "convert it"]),
        (b'\xef\xbb\xbf{"a": 1}', ["byte order mark", "remove the first 3 bytes"]),
        (b'{"a": ' + b"1" * 5000 + b"}", ["4300", "write it as a string"]),
        (b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}", ["nested too deeply", "flatten it"]),
        (b'{"\\ud800": 1}', ["entry 1 (key '\\ud800')", "lone surrogate"]),
        (b'{"a": ' + b"[" * 600 + b"]" * 600 + b"}", ["entry 1 (key 'a')", "flatten it"]),
    ],
    ids=["bad-utf8", "bom", "int", "deep-json", "surrogate-key", "deep"],
)
def test_load_names_the_file_or_entry_and_loads_nothing(
    tmp_path: Path, store: Path, data: bytes, says: list[str]
):
    source = tmp_path / "in.json"
    source.write_bytes(data)
    for target in (tmp_path / "new", store):
        before = snapshot(store)
        proc = sos("load", target, source, expect=1)
        for part in says:
            assert part in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "Exceeds the limit" not in proc.stderr
        assert not (tmp_path / "new").exists()
        assert snapshot(store) == before

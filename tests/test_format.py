"""Golden bytes: what docs/format.md promises, byte for byte, written out literally."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import digest_path

import sos
from sos import format as _format
from sos.format.order import HEADER, Order, Run

GOLDEN_KEY = "café"
GOLDEN_VALUE = {
    "name": "Zoë 日本",
    "nested": {"z": 1, "a": {"deep": []}},
    "pi": 3.14,
    "big": 12345678901234567890123,
    "empty": {},
    "list": [],
    "neg": -0.5,
    "t": True,
    "n": None,
    "e": 1e100,
    "esc": 'tab\t"q"\\\x00',
}
# Written by hand from docs/format.md: key first, two-space indent, members in
# the order given (not sorted), UTF-8 as itself, control characters escaped,
# one trailing newline.
GOLDEN_BYTES = """\
{
  "key": "café",
  "value": {
    "name": "Zoë 日本",
    "nested": {
      "z": 1,
      "a": {
        "deep": []
      }
    },
    "pi": 3.14,
    "big": 12345678901234567890123,
    "empty": {},
    "list": [],
    "neg": -0.5,
    "t": true,
    "n": null,
    "e": 1e+100,
    "esc": "tab\\t\\"q\\"\\\\\\u0000"
  }
}
""".encode()


def test_document_golden_bytes():
    assert _format.encode_document(GOLDEN_KEY, GOLDEN_VALUE) == GOLDEN_BYTES


def test_store_writes_golden_bytes_at_the_hashed_path(store_path: Path):
    with sos.Dict(store_path) as db:
        db[GOLDEN_KEY] = GOLDEN_VALUE
        assert db[GOLDEN_KEY] == GOLDEN_VALUE
    path = digest_path(store_path, GOLDEN_KEY)
    assert path.read_bytes() == GOLDEN_BYTES
    # the name is the first 32 hex digits of SHA-256 of the UTF-8 key
    assert path.name == hashlib.sha256("café".encode()).hexdigest()[:32] + ".json"
    assert path.parent.name == path.name[:2]


def test_scalar_and_empty_documents():
    assert _format.encode_document("", None) == b'{\n  "key": "",\n  "value": null\n}\n'
    assert _format.encode_document("k", []) == b'{\n  "key": "k",\n  "value": []\n}\n'
    assert _format.encode_document("k", {}) == b'{\n  "key": "k",\n  "value": {}\n}\n'
    assert _format.encode_document("a\nb", "x") == b'{\n  "key": "a\\nb",\n  "value": "x"\n}\n'
    # tuples are written as lists (and so come back as lists)
    assert _format.encode_document("k", (1,)) == _format.encode_document("k", [1])


def test_member_order_is_kept_not_sorted():
    ba = _format.encode_document("k", {"b": 1, "a": 2})
    ab = _format.encode_document("k", {"a": 2, "b": 1})
    assert ba.index(b'"b"') < ba.index(b'"a"')
    assert ab.index(b'"a"') < ab.index(b'"b"')
    assert ba != ab


def test_known_digests():
    # Fixed values, so any change of hash or truncation is caught.
    assert _format.key_digest("") == "e3b0c44298fc1c149afbf4c8996fb924"
    assert _format.key_digest("ada") == hashlib.sha256(b"ada").hexdigest()[:32]
    assert _format.key_relpath("abc") == "ba/ba7816bf8f01cfea414140de5dae2223.json"
    assert _format.key_digest("\u00e9") != _format.key_digest("e\u0301")
    assert _format.key_digest("A") != _format.key_digest("a")
    for key in ["A", "Z", "\u00c9"]:
        digest = _format.key_digest(key)
        assert digest == digest.lower() and len(digest) == 32


def test_names_and_bytes_same_in_another_interpreter(tmp_path: Path):
    """Never Python's hash(): another process with another hash seed agrees."""
    keys = ["ada", "café", "", "\x00", "e\u0301"]
    script = (
        "import sys, json; from sos import format as _format\n"
        "keys = json.loads(sys.argv[1])\n"
        "print(json.dumps([[_format.key_relpath(k), _format.encode_document(k, {'b': 1, 'a': [k]})"
        ".decode()] for k in keys]))\n"
    )
    import json

    outputs = set()
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run(
            [sys.executable, "-c", script, json.dumps(keys)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    here = [
        [_format.key_relpath(k), _format.encode_document(k, {"b": 1, "a": [k]}).decode()]
        for k in keys
    ]
    assert json.loads(outputs.pop()) == here


def test_metadata_and_support_files_golden(store_path: Path, tmp_path: Path):
    sos.Dict(store_path).close()
    assert (store_path / "sos.json").read_bytes() == b'{\n  "format": 1,\n  "kind": "dict"\n}\n'
    assert (store_path / ".gitignore").read_bytes() == (
        b"# sos: temporary files and the reserved .sos/ (transaction records, locks)\n"
        b"# are never data (see docs/format.md)\n.sos-tmp-*\n.sos/\n"
    )
    assert (store_path / ".gitattributes").read_bytes() == b"* -text\norder.txt merge=union\n"
    assert (store_path / ".rsync-filter").read_bytes() == b"- .sos-tmp-*\n- .sos/\n"
    assert sorted(os.listdir(store_path)) == [
        ".gitattributes",
        ".gitignore",
        ".rsync-filter",
        "sos.json",
    ]
    lst_path = tmp_path / "list"
    sos.List(lst_path).close()
    assert (lst_path / "sos.json").read_bytes() == b'{\n  "format": 1,\n  "kind": "list"\n}\n'
    assert (lst_path / "order.txt").read_bytes() == (
        b"# sos list order: one run of item ids per line (PREFIX FIRST-LAST)\n"
    )


def test_manifest_golden_bytes():
    order = Order([Run("3f9c", 0, 99999), Run("a1b2", 7, 7), Run("3f9c", 100002, 100000)])
    assert order.encode() == (
        b"# sos list order: one run of item ids per line (PREFIX FIRST-LAST)\n"
        b"3f9c 0-99999\n"
        b"a1b2 7\n"
        b"3f9c 100002-100000\n"
    )
    assert Order.decode(order.encode(), "order.txt") == order
    assert HEADER.startswith(b"#")


def test_list_store_layout(store_path: Path):
    """Item files are documents whose key is the id the manifest names."""
    with sos.List(store_path) as lst:
        lst.extend(["a", {"b": 2}, 3])
    lines = (store_path / "order.txt").read_text().splitlines()
    assert lines[0].startswith("#")
    [run] = lines[1:]
    prefix, numbers = run.split(" ")
    assert numbers == "0-2"
    for number, value in zip(range(3), ["a", {"b": 2}, 3], strict=True):
        item_id = f"{prefix}-{number}"
        path = digest_path(store_path, item_id)
        assert path.read_bytes() == _format.encode_document(item_id, value)


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b'{\n  "key": "k",\n  "value": [1,\n}\n', 4, 1),
        (b'{"key": "k" "value": 1}', 1, 13),
        (b"", 1, 1),
    ],
)
def test_bad_json_reports_line_and_column(data: bytes, line: int, column: int):
    with pytest.raises(sos.CorruptError) as info:
        _format.decode_document(data, "/some/file.json")
    assert (info.value.line, info.value.column) == (line, column)
    assert "/some/file.json" in str(info.value)
    assert f"line {line}" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        b'{"key": "k", "value": NaN}',
        b'{"key": "k", "value": Infinity}',
        b'{"key": "k", "value": -Infinity}',
        b'{"key": "k"}',
        b'{"key": "k", "value": 1, "extra": 2}',
        b'{"value": 1, "key": 5}',
        b'["k", 1]',
        b'"just a string"',
        b'\xff{"key": "k", "value": 1}',
    ],
)
def test_documents_that_break_a_rule_are_corrupt(data: bytes):
    with pytest.raises(sos.CorruptError) as info:
        _format.decode_document(data, "/x/y.json")
    assert info.value.path == "/x/y.json"
    assert isinstance(info.value, ValueError)


def test_decode_accepts_other_writers_whitespace():
    """A reader in another language may write compact JSON; sos reads it."""
    assert _format.decode_document(b'{"key":"k","value":[1,{"a":null}]}', "p") == (
        "k",
        [1, {"a": None}],
    )
    assert _format.decode_document(b'{"value": 2, "key": "k"}', "p") == ("k", 2)


def test_metadata_rules():
    assert _format.decode_metadata(_format.encode_metadata("list"), "m") == "list"
    # format 2: a store that may hold a transaction record
    assert _format.decode_metadata(b'{"format": 2, "kind": "dict"}', "m") == "dict"
    # format 3: a store that may hold a schema.json (typed stores)
    assert _format.decode_metadata(b'{"format": 3, "kind": "dict"}', "m") == "dict"
    with pytest.raises(sos.Error, match="newer"):
        _format.decode_metadata(b'{"format": 4, "kind": "dict"}', "m")
    for bad in [b'{"format": 1, "kind": "set"}', b'{"kind": "dict"}', b"[]", b'{"format": 1}']:
        with pytest.raises(sos.CorruptError):
            _format.decode_metadata(bad, "m")


def test_errors_pickle_with_their_details():
    """They cross process boundaries (multiprocessing) intact."""
    import pickle

    error = sos.CorruptError("/s/x.json: bad", "/s/x.json", 3, 7)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is sos.CorruptError
    assert (again.path, again.line, again.column, str(again)) == ("/s/x.json", 3, 7, str(error))
    closed = pickle.loads(pickle.dumps(sos.ClosedError("closed", "/s")))
    assert type(closed) is sos.ClosedError and closed.path == "/s"
    assert issubclass(sos.ClosedError, ValueError) and issubclass(sos.ClosedError, sos.Error)
    assert issubclass(sos.CorruptError, ValueError) and issubclass(sos.CorruptError, sos.Error)


def test_public_surface():
    assert set(sos.__all__) >= {"Dict", "List", "open", "Error", "CorruptError", "ClosedError"}
    for name in sos.__all__:
        assert hasattr(sos, name)

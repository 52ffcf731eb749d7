"""A typed get parses a document once, as the type (``Typed.read``): it must
give what the exact way gives (``sos.format.decode_document``, then
``Typed.decode``) for every document, above all the hand edits where
pydantic's JSON parser is laxer than the format (NaN, Infinity, numbers
beyond a float, over-long integers, extra or repeated names)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import sos
from sos import format as _format


@dataclasses.dataclass
class Reading:
    name: str
    born: int
    level: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


GOOD = {"name": "a", "born": 1815, "level": 1.5, "extra": {}}

# Document bodies (the key is "k") a person might leave behind.
EDITS = {
    "ordinary": b'{"key": "k", "value": {"name": "a", "born": 1, "level": 2.5}}',
    "canonical": _format.encode_document("k", GOOD),
    "NaN in a float field": b'{"key": "k", "value": {"name": "a", "born": 1, "level": NaN}}',
    "Infinity in Any": b'{"key": "k", "value": {"name": "a", "born": 1, "level": 1.0, '
    b'"extra": {"x": -Infinity}}}',
    "NaN in an unknown field": b'{"key": "k", "value": {"name": "a", "born": 1, "level": 1.0, '
    b'"note": NaN}}',
    "a float beyond 1.8e308": b'{"key": "k", "value": {"name": "a", "born": 1, "level": 1e400}}',
    "beyond, as digits": b'{"key": "k", "value": {"name": "a", "born": 1, "level": '
    + b"9" * 320
    + b".0}}",
    "beyond, in an unknown field": b'{"key": "k", "value": {"name": "a", "born": 1, '
    b'"level": 1.0, "note": 2E+999}}',
    "an integer past int()'s digits": b'{"key": "k", "value": {"name": "a", "born": '
    + b"7" * 5000
    + b', "level": 1.0}}',
    "an exponent that fits": b'{"key": "k", "value": {"name": "a", "born": 1, "level": 1e300}}',
    "a string that looks like a number": b'{"key": "k", "value": {"name": "1e400 NaN", '
    b'"born": 1, "level": 0.5}}',
    "an extra name beside key and value": b'{"key": "k", "value": {"name": "a", "born": 1, '
    b'"level": 1.0}, "x": 1}',
    "value twice": b'{"key": "k", "value": 1, "value": {"name": "a", "born": 1, "level": 1.0}}',
    "key twice": b'{"key": "other", "key": "k", "value": {"name": "a", "born": 1, "level": 1.0}}',
    "another key": b'{"key": "other", "value": {"name": "a", "born": 1, "level": 1.0}}',
    "a lone surrogate": b'{"key": "k", "value": {"name": "\\ud800", "born": 1, "level": 1.0}}',
    "a byte order mark": b'\xef\xbb\xbf{"key": "k", "value": {"name": "a", "born": 1, "level": 1}}',
    "bad UTF-8": b'{"key": "k", "value": {"name": "\xff", "born": 1, "level": 1.0}}',
    "trailing spaces": b'{"key": "k", "value": {"name": "a", "born": 1, "level": 1.0}}  \n\n',
    "trailing data": b'{"key": "k", "value": {"name": "a", "born": 1, "level": 1.0}} 1',
    "a string for an int": b'{"key": "k", "value": {"name": "a", "born": "1815", "level": 1.0}}',
    "a float for an int": b'{"key": "k", "value": {"name": "a", "born": 1815.0, "level": 1.0}}',
    "an int for a float": b'{"key": "k", "value": {"name": "a", "born": 1815, "level": 1}}',
    "missing field": b'{"key": "k", "value": {"name": "a", "level": 1.0}}',
}


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "value", fn()
    except sos.Error as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_typed_get_reads_every_document_as_the_exact_way_does(tmp_path: Path, edit: str) -> None:
    with sos.Dict(tmp_path / "s", value_type=Reading) as db:
        db["k"] = Reading(**GOOD)
        name = db._name("k")
        path = Path(db.path_of("k"))
        data = EDITS[edit]
        path.write_bytes(data)
        where = db._where(name)

        def exact() -> Any:
            key, raw = _format.decode_document(data, where)
            if key != "k":
                _format.check_document_name(key, where, name.rpartition("/")[2])
            assert db._typed is not None
            return db._typed.decode(data, "k", raw, where)

        expected = _outcome(exact)
        got = _outcome(lambda: db["k"])
        if edit == "another key":  # a misplaced file: the exact way says so before the type
            assert got[0] == "CorruptError" and "other" in got[1]
            return
        assert got[0] == expected[0], (got, expected)
        if got[0] == "value":
            assert got[1] == expected[1]
            assert type(got[1]) is Reading
        else:
            assert got[1] == expected[1]


def test_the_edits_cover_both_outcomes() -> None:
    """The table above has documents read fine and documents refused on each
    side of the fast path's guard (not a table of one kind only)."""
    typed = sos.core.schema.Typed(Reading)
    slow = [e for e, d in EDITS.items() if typed.read(d, "k") is sos.core.schema.SLOW]
    fast = [e for e in EDITS if e not in slow]
    assert {"NaN in an unknown field", "a float beyond 1.8e308", "beyond, as digits"} <= set(slow)
    assert {"ordinary", "canonical", "trailing spaces"} <= set(fast)

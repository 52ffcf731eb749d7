"""Numbers a file can hold but Python cannot read faithfully, and byte order marks.

Each is a CorruptError naming the file, never a bare ValueError traceback
and never a value the format forbids (infinity); numbers at the edge that
Python does represent read back as themselves.
"""

from __future__ import annotations

import math

import pytest

import sos
from sos.format.documents import decode_document, decode_metadata, parse_json

BIG = "9" * 5000


@pytest.mark.parametrize(
    "number,words",
    [
        ("1e999", "beyond a 64-bit float"),
        ("-1e999", "beyond a 64-bit float"),
        ("1.8e308", "beyond a 64-bit float"),
        ("1" + "0" * 400 + ".5", "beyond a 64-bit float"),
        (BIG, "more digits than Python reads"),
        ("-" + BIG, "more digits than Python reads"),
    ],
    ids=["1e999", "-1e999", "1.8e308", "400-digit-float", "5000-digit-int", "-5000-digit-int"],
)
def test_unrepresentable_numbers_are_corrupt(number: str, words: str):
    for data, decode in [
        (f'{{"key": "a", "value": [1, {number}]}}', decode_document),
        (f'{{"format": 1, "kind": "dict", "x": {number}}}', decode_metadata),
    ]:
        with pytest.raises(sos.CorruptError) as info:
            decode(data.encode(), "/s/ab/file.json")
        assert "/s/ab/file.json" in str(info.value) and words in str(info.value)
        assert info.value.path == "/s/ab/file.json"


@pytest.mark.parametrize(
    "number,value",
    [
        ("-0", 0),
        ("-0.0", -0.0),
        ("1e-999", 0.0),
        ("1.7976931348623157e308", 1.7976931348623157e308),
        ("1e308", 1e308),
        ("9" * 4000, int("9" * 4000)),
        ('"1e999"', "1e999"),
    ],
)
def test_numbers_python_holds_read_back(number: str, value: object):
    got = parse_json(f'{{"v": {number}}}'.encode(), "f")["v"]
    assert got == value and type(got) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, got) == math.copysign(1, value)


@pytest.mark.parametrize("what", ["document", "metadata"])
def test_a_byte_order_mark_is_named(what: str):
    with pytest.raises(sos.CorruptError) as info:
        parse_json(b'\xef\xbb\xbf{"key": "a", "value": 1}', "/s/f.json", what)
    assert "byte order mark (BOM)" in str(info.value) and "/s/f.json" in str(info.value)
    assert (info.value.line, info.value.column) == (1, 1)

"""The one-pass encoder must write exactly what json.dumps(indent=2) writes,
and refuse exactly what the precise checker refuses."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import json_values

from sos import format as _format
from sos.format import encoder as _json

DEPTH = _format.MAX_DEPTH


def dumps(value: Any, level: int = 0) -> str:
    """What json writes for ``value`` nested ``level`` deep in a document."""
    text = json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False)
    return text.replace("\n", "\n" + "  " * level)


class Colour(enum.IntEnum):
    RED = 7


class Tag(str):
    pass


class Ratio(float):
    pass


ODD_VALUES = [
    0.0,
    -0.0,
    1e16,
    1e-7,
    5e-324,
    1.7976931348623157e308,
    0.1 + 0.2,
    -(10**40),
    Colour.RED,
    Tag("sub\nclass"),
    Ratio(2.5),
    '\x00\x1f\x7f\u2028\u2029"\\/é\U0001f600',
    (1, (2, 3), []),
    OrderedDict([("z", 1), ("a", {})]),
    {"": [], "nested": {"empty": {}, "list": [[], [[]]]}},
    [[[[[[[["deep"]]]]]]]],
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_odd_values_match_json(value: Any):
    for level in (0, 1, 3):
        assert _json.encode_indented(value, level, DEPTH) == dumps(value, level)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=3))
def test_generated_values_match_json(value: Any, level: int):
    assert _json.encode_indented(value, level, DEPTH) == dumps(value, level)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), json_values)
def test_documents_are_json_dumps_of_key_and_value(key: str, value: Any):
    try:
        expected = json.dumps({"key": key, "value": value}, ensure_ascii=False, indent=2)
        expected_bytes = expected.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate in the key
        with pytest.raises(ValueError):
            _format.encode_document(key, value)
        return
    assert _format.encode_document(key, value) == expected_bytes


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def cyclic() -> Any:
    a: list[Any] = []
    a.append({"again": a})
    return a


BAD_VALUES = [
    math.nan,
    math.inf,
    -math.inf,
    {1: "int key"},
    {"ok": {None: "deep non-str key"}},
    {"ok": [{(1, 2): "tuple key"}]},
    {"s"},
    b"bytes",
    object(),
    [1, 2, {"x": [3, complex(1, 2)]}],
    nested(DEPTH + 1),
    cyclic(),
]


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_refusals_match_the_checker(value: Any):
    with pytest.raises(_json.Unwritable):
        _json.encode_indented(value, 1, DEPTH)
    with pytest.raises((TypeError, ValueError)) as checked:
        _format.validate_value(value)
    with pytest.raises(type(checked.value)) as encoded:
        _format.encode_document("k", value)
    # the precise message, saying where, and which key
    assert str(encoded.value) == f"key 'k': {checked.value}"


def test_deepest_allowed_nesting_is_written():
    value = nested(DEPTH)
    assert _json.encode_indented(value, 0, DEPTH) == dumps(value)


def test_lone_surrogate_in_a_value_gets_the_checkers_message():
    with pytest.raises(ValueError, match="lone surrogate"):
        _format.encode_document("k", {"text": "a\ud800b"})

"""One pass that checks a value and writes it as our documents spell JSON.

The bytes must be exactly ``json.dumps(value, indent=2, ensure_ascii=False)``
(docs/format.md, pinned by golden-byte tests). The json module builds that
with its pure-Python encoder (the C one does no indent), and sos used to walk
the value once more beforehand to refuse what JSON cannot hold. Both passes
were most of the CPU a durable set costs, so this module does them at once:
it appends the pieces to one list instead of chaining generators, and it
only *detects* a bad value. Explaining it (which key, which index) is left to
the slower :func:`sos.format.validate_value`, run only after a refusal.
"""

from __future__ import annotations

from json.encoder import encode_basestring  # the function json.dumps uses here
from typing import Any

__all__ = ["Unwritable", "encode_indented", "int_repr"]

_INF = float("inf")
_int_repr = int.__repr__  # as json: an IntEnum writes its number
int_repr = _int_repr  # for the checker: the same call refuses the same ints
_float_repr = float.__repr__


class Unwritable(Exception):
    """The value holds something JSON cannot hold faithfully (not said what)."""


def encode_indented(value: Any, level: int, max_depth: int) -> str:
    """``value`` as json.dumps(indent=2, ensure_ascii=False) writes it at ``level``.

    Raises :class:`Unwritable` for a non-str dict key, NaN or an infinity, a
    type JSON has no spelling for, or nesting past ``max_depth`` (which is
    also how a cycle ends). Lone surrogates are left for the UTF-8 encode.
    """
    out: list[str] = []
    _append(value, "\n" + "  " * level, out, max_depth)
    return "".join(out)


def _append(value: Any, newline: str, out: list[str], depth_left: int) -> None:
    # Same order of tests as json.encoder._make_iterencode: str before int
    # (a str subclass is a str), True/False before int (bool is an int).
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(_int_repr(value))
    elif isinstance(value, float):
        if value != value or value == _INF or value == -_INF:
            raise Unwritable
        out.append(_float_repr(value))
    elif depth_left <= 0:
        raise Unwritable
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            out.append(separator)
            separator = "," + inner
            _append(item, inner, out, depth_left - 1)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unwritable
            out.append(separator)
            separator = "," + inner
            out.append(encode_basestring(key))
            out.append(": ")
            _append(item, inner, out, depth_left - 1)
        out.append(newline + "}")
    else:
        raise Unwritable

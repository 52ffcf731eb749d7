"""JSON Pointer (RFC 6901) and three operations of JSON Patch (RFC 6902) on one value.

``sos get/set/del --at`` address a place inside a key's value. Written here
rather than taken from ``jsonpointer``/``jsonpatch``: the part used is some
sixty lines, and every message must be ours, naming the pointer and the
place that is missing (those libraries put the whole document's repr in
theirs). Pure functions on parsed JSON: no store, no I/O.

The rules are the RFCs': ``""`` is the whole value, ``/a~1b`` is the member
``a/b`` (``~0`` is ``~``), an array index is ``0`` or a number without a
leading zero, and ``-`` (only for ``add``) is the position after the last
item. ``replace`` and ``remove`` need their target to exist; ``add`` needs
its parent to, sets an object member whether or not it exists, and inserts
into an array (an index up to its length).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PointerError", "TargetError", "add", "parse", "remove", "replace", "resolve"]

_INDEX = re.compile(r"0|[1-9][0-9]*")


class PointerError(ValueError):
    """The pointer itself is not RFC 6901 (a usage error)."""


class TargetError(LookupError):
    """The pointer is well formed but the value has no such place."""


def parse(text: str) -> list[str]:
    """The reference tokens of ``text``, unescaped."""
    if text == "":
        return []
    if not text.startswith("/"):
        raise PointerError(
            f"JSON Pointer {text!r} must be empty (the whole value) or start with '/' "
            f"(did you mean '/{text}'?)"
        )
    tokens = []
    for raw in text[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise PointerError(f"JSON Pointer {text!r}: '~' must be followed by 0 ('~') or 1 ('/')")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _spell(tokens: list[str]) -> str:
    """``tokens`` as a pointer again, for messages."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _index(container: list[Any], token: str, tokens: list[str], *, end_ok: bool) -> int:
    """The array index ``token`` names; ``len`` for ``-`` (or an index equal
    to it) where ``end_ok``."""
    if token == "-" and end_ok:
        return len(container)
    if not _INDEX.fullmatch(token):
        raise TargetError(
            f"{_spell(tokens) or '/'}: {token!r} is not an array index "
            "(0, 1, ...; '-' only with --add, to append)"
        )
    index = int(token)
    if index > len(container) or (index == len(container) and not end_ok):
        raise TargetError(
            f"{_spell(tokens)}: no index {index} (the array has {len(container)} items)"
        )
    return index


def _step(value: Any, token: str, tokens: list[str]) -> Any:
    """The child ``token`` of ``value``; ``tokens`` is the path so far, with it."""
    if isinstance(value, dict):
        if token not in value:
            raise TargetError(f"{_spell(tokens)}: no member {token!r}")
        return value[token]
    if isinstance(value, list):
        return value[_index(value, token, tokens, end_ok=False)]
    raise TargetError(
        f"{_spell(tokens)}: {_spell(tokens[:-1]) or 'the value'} is {_kind(value)}, "
        "not an object or array"
    )


def _kind(value: Any) -> str:
    """JSON's name for a scalar's type, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a string" if isinstance(value, str) else "a number"


def resolve(value: Any, tokens: list[str]) -> Any:
    """The part of ``value`` that ``tokens`` points at."""
    for depth, token in enumerate(tokens):
        value = _step(value, token, tokens[: depth + 1])
    return value


def _parent(value: Any, tokens: list[str]) -> Any:
    parent = resolve(value, tokens[:-1])
    if not isinstance(parent, (dict, list)):
        _step(parent, tokens[-1], tokens)  # raises: says what the parent is
    return parent


def replace(value: Any, tokens: list[str], new: Any) -> Any:
    """``value`` with the existing place ``tokens`` set to ``new`` (RFC 6902 replace)."""
    if not tokens:
        return new
    parent = _parent(value, tokens)
    if isinstance(parent, dict):
        _step(parent, tokens[-1], tokens)  # must exist
        parent[tokens[-1]] = new
    else:
        parent[_index(parent, tokens[-1], tokens, end_ok=False)] = new
    return value


def add(value: Any, tokens: list[str], new: Any) -> Any:
    """``value`` with ``new`` added at ``tokens`` (RFC 6902 add: an object's
    member set, an array's item inserted, ``-`` appended)."""
    if not tokens:
        return new
    parent = _parent(value, tokens)
    if isinstance(parent, dict):
        parent[tokens[-1]] = new
    else:
        parent.insert(_index(parent, tokens[-1], tokens, end_ok=True), new)
    return value


def remove(value: Any, tokens: list[str]) -> Any:
    """``value`` without the existing place ``tokens`` (RFC 6902 remove)."""
    if not tokens:
        raise TargetError("'' is the whole value: use sos del STORE KEY to remove the key")
    parent = _parent(value, tokens)
    if isinstance(parent, dict):
        _step(parent, tokens[-1], tokens)
        del parent[tokens[-1]]
    else:
        del parent[_index(parent, tokens[-1], tokens, end_ok=False)]
    return value

"""Bytes in, bytes out: key hashing, documents, metadata. No I/O here.

Everything a reader in another language needs is decided in this module and
written down in docs/format.md; keep the two in step.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from sos.errors import CorruptError, Error, UnwritableError
from sos.format import encoder as _json
from sos.format.conflicts import conflict_line
from sos.format.names import (
    BASE_FORMAT,
    FORMAT_VERSION,
    KINDS,
    METADATA_NAME,
    document_name,
    text_of,
    validate_key,
)

# Python's json reader recurses once per nesting level; refuse to write what it
# could not read back under the default recursion limit (1000).
MAX_DEPTH = 500


# JSON files a store may hold beside its documents that are not documents:
# its metadata, and the schema of a typed store (reserved for it now, so that
# sos check never reports one as a foreign file).
RESERVED_JSON = frozenset({METADATA_NAME, "schema.json"})


def is_reserved_json(relpath: str) -> bool:
    """True for a store-relative ``*.json`` name that is the store's own, not data."""
    return relpath in RESERVED_JSON


def validate_value(value: Any) -> None:
    """Raise ``TypeError``/``ValueError`` unless JSON holds ``value`` faithfully.

    The json module would silently turn ``{1: 2}`` into ``{"1": 2}`` and write
    ``NaN`` that other readers reject, so we check before anything is written.
    """
    _check(value, 0, set(), "value")


def _check(value: Any, depth: int, active: set[int], where: str) -> None:
    if value is None or value is True or value is False:
        return
    if isinstance(value, str):
        _check_text(value, where)
        return
    if isinstance(value, int):
        _check_int(value, where)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnwritableError(
                f"{_at(where)} is {value!r}: JSON holds only finite numbers "
                "(store None, or the text as a string)"
            )
        return
    if depth >= MAX_DEPTH:
        raise UnwritableError(
            f"{_at(where)} is nested deeper than {MAX_DEPTH} levels (JSON readers "
            "stop near there): flatten it, or split it across keys"
        )
    if isinstance(value, dict):
        if id(value) in active:
            raise UnwritableError(f"{_at(where)} contains itself (a circular reference)")
        active.add(id(value))
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{_at(where)} has {_a(type(key).__name__)} dict key {key!r:.80}; "
                    "JSON object keys must be str"
                )
            _check_text(key, f"{where} key {key!r:.40}")
            _check(item, depth + 1, active, f"{where}[{key!r:.40}]")
        active.discard(id(value))
        return
    if isinstance(value, (list, tuple)):
        if id(value) in active:
            raise UnwritableError(f"{_at(where)} contains itself (a circular reference)")
        active.add(id(value))
        for index, item in enumerate(value):
            _check(item, depth + 1, active, f"{where}[{index}]")
        active.discard(id(value))
        return
    raise TypeError(
        f"{_at(where)} is {_a(type(value).__name__)}, which JSON cannot hold "
        "(use dict, list, str, int, float, bool or None)"
    )


def _a(noun: str) -> str:
    """``noun`` with its article: "an object", "a set"."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _at(where: str, limit: int = 120) -> str:
    """A value path short enough to read: a 500-deep one keeps its two ends."""
    if len(where) <= limit:
        return where
    depth = where.count("[")
    return f"{where[:50]}…{where[-50:]} ({depth} levels down)"


def _check_int(value: int, where: str) -> None:
    """An int Python refuses to print (``sys.set_int_max_str_digits``) cannot be written."""
    try:
        _json.int_repr(value)
    except ValueError:
        limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
        raise UnwritableError(
            f"{_at(where)} is an integer of more than {limit} digits, which Python "
            "will not convert to text (nor read back); store it as a string, or raise "
            "the limit with sys.set_int_max_str_digits() in every program that reads it"
        ) from None


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnwritableError(
            f"{_at(where)} has a lone surrogate at index {exc.start}; it cannot be written "
            "as UTF-8 (text decoded with errors='surrogateescape' keeps bytes that were "
            "not UTF-8 this way: decode them properly first)"
        ) from None


def encode_document(key: str, value: Any) -> bytes:
    """The bytes of the file holding ``key``: indented UTF-8 JSON, key first.

    Deterministic: the same key and value (objects in the same order) always
    give the same bytes. Object key order is kept, not sorted. Exactly
    ``json.dumps({"key": key, "value": value}, indent=2, ensure_ascii=False)``
    and a newline.
    """
    validate_key(key)
    try:
        return document(key, encode_value(value))
    except (TypeError, ValueError) as exc:  # say which key: a store holds many
        raise type(exc)(f"key {key!r:.80}: {exc}") from None


def encode_value(value: Any) -> bytes:
    """``value`` checked and encoded as it sits in a document (one level in).

    One pass (:mod:`sos.format.encoder`) that also refuses what JSON cannot hold; on a
    refusal the value is walked again, by :func:`validate_value`, to raise a
    ``TypeError``/``ValueError`` that says where. A caller that must check a
    value before it knows the key (a List, before it takes its lock) keeps
    these bytes for :func:`document`.
    """
    try:
        return _json.encode_indented(value, 1, MAX_DEPTH).encode("utf-8")
    except (_json.Unwritable, UnicodeEncodeError, ValueError):  # ValueError: a huge int
        validate_value(value)
    # Not reached for any value we know of; if ever, the json module decides.
    text = json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False)
    return text.replace("\n", "\n  ").encode("utf-8")


def document(key: str, encoded_value: bytes) -> bytes:
    """The document for a valid ``key`` around a value from :func:`encode_value`."""
    head = f'{{\n  "key": {encode_basestring(key)},\n  "value": '.encode()
    return head + encoded_value + b"\n}\n"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Unrepresentable(ValueError):
    """A number JSON holds but Python cannot: it would read as infinity."""


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Unrepresentable(
            f"the number {text[:40]} is beyond a 64-bit float (it would read as "
            "infinity, which the format does not allow)"
        )
    return value


# One decoder for every read (json.loads with an option builds a new one per
# call). Each float is checked as it is parsed: a literal beyond a 64-bit float
# reads as infinity, which the format does not allow. A document without floats
# pays nothing for the check; one with floats pays less than a scan of its bytes.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def parse_json(data: bytes, path: str, what: str = "document") -> Any:
    """Parse strict JSON (no NaN/Infinity), raising CorruptError with line and column.

    Numbers Python cannot hold faithfully (a float beyond 1.8e308, which would
    read as infinity; an integer of more digits than ``int()`` converts) make
    the file corrupt too, as does a leading byte order mark.
    """
    text = text_of(data, path, what)
    try:
        # The scanner itself: a canonical file is one value from its first
        # byte and ends in one newline. Anything else (leading or trailing
        # whitespace, extra data, no value) goes through decode(), which
        # accepts or words the error as json always does.
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:
            end = -1
        if end >= 0 and (end == len(text) or text[end:] == "\n"):
            return value
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        _raise_if_conflicted(data, path)
        raise CorruptError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            path,
            exc.lineno,
            exc.colno,
        ) from None
    except _Unrepresentable as exc:
        raise CorruptError(f"{path}: {what} holds {exc}", path) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise CorruptError(
                f"{path}: {what} holds an integer of more digits than Python reads "
                f"({getattr(sys, 'get_int_max_str_digits', lambda: 4300)()}); write it "
                "as a string, or raise the limit with sys.set_int_max_str_digits()",
                path,
            ) from None
        raise CorruptError(f"{path}: invalid JSON: {exc}", path) from None
    except RecursionError:
        raise CorruptError(
            f"{path}: {what} is nested too deeply for Python's JSON reader (its "
            f"recursion limit, {sys.getrecursionlimit()}); sos writes at most {MAX_DEPTH} "
            "levels: flatten it",
            path,
        ) from None


def _raise_if_conflicted(data: bytes, path: str) -> None:
    """Name the damage a person can fix at once, instead of "invalid JSON":
    git conflict markers, the likeliest bad JSON (a byte-order mark is
    refused before parsing)."""
    line = conflict_line(data)
    if line is not None:
        raise CorruptError(
            f"{path}: git conflict markers at line {line}; resolve the conflict "
            "(sos edit, or sos resolve --ours/--theirs)",
            path,
            line,
            1,
        )


def decode_document(data: bytes, path: str) -> tuple[str, Any]:
    """Return ``(key, value)`` from a document's bytes, or raise CorruptError."""
    # parse_json's fast path inline (every get): anything it does not take
    # (not UTF-8, a BOM, bad JSON, a number out of range) is parsed again by
    # parse_json, which words the error.
    try:
        text = data.decode("utf-8")
        doc, end = _SCAN(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        end = -1
    if end < 0 or (end != len(text) and text[end:] != "\n"):
        doc = parse_json(data, path)
    if not isinstance(doc, dict) or len(doc) != 2 or "key" not in doc or "value" not in doc:
        shape = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise CorruptError(
            f'{path}: a document must be a JSON object with exactly "key" and "value", '
            f"found {shape}",
            path,
        )
    key = doc["key"]
    if not isinstance(key, str):
        raise CorruptError(f'{path}: "key" must be a string, found {key!r:.80}', path)
    return key, doc["value"]


# Listing keys reads this much of each document: the key comes first in the
# canonical format (:func:`document`), so the value need not be read.
HEAD_SIZE = 4096
_KEY_LINE = b'{\n  "key": '
_VALUE_LINE = b',\n  "value": '


def key_of_head(head: bytes) -> str | None:
    """The key of a canonical document from its first bytes, or None when
    they do not show it plainly (a hand-edited layout, a key longer than the
    head): then the whole document is parsed. A JSON string holds no raw
    newline, so the key is exactly what lies between the two lines' marks."""
    if not head.startswith(_KEY_LINE):
        return None
    end = head.find(_VALUE_LINE, len(_KEY_LINE))
    if end < 0:
        return None
    raw = head[len(_KEY_LINE) : end]
    if b"\n" in raw:
        return None
    try:
        key = json.loads(raw)
    except ValueError:  # not one JSON string (UnicodeDecodeError is one too)
        return None
    return key if isinstance(key, str) else None


def check_document_name(key: str, path: str, name: str) -> None:
    """Raise CorruptError unless ``key`` hashes to the file name ``name``."""
    expected = document_name(key)  # cached: the reader has usually just hashed it
    if name != expected:
        raise CorruptError(
            f"{path}: holds key {key!r:.80}, which belongs in {expected[:2]}/{expected} "
            "(a renamed or hand-made file; sos check --repair moves it)",
            path,
        )


def encode_metadata(kind: str, version: int = BASE_FORMAT) -> bytes:
    if kind not in KINDS:
        raise ValueError(f"unknown store kind {kind!r}")
    return (json.dumps({"format": version, "kind": kind}, indent=2) + "\n").encode()


def decode_metadata(data: bytes, path: str) -> str:
    """Return the kind named by a metadata file, or raise."""
    meta = parse_json(data, path, "metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise CorruptError(f'{path}: metadata must be a JSON object with a "kind"', path)
    fmt = meta.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise CorruptError(f'{path}: metadata "format" must be an integer, found {fmt!r}', path)
    if fmt > FORMAT_VERSION:
        raise Error(
            f"{path}: store format {fmt} is newer than this sos reads "
            f"({FORMAT_VERSION}); upgrade sos",
            path,
        )
    if fmt < 1:
        raise CorruptError(f"{path}: unknown store format {fmt}", path)
    if meta["kind"] not in KINDS:
        raise CorruptError(f"{path}: unknown store kind {meta['kind']!r}", path)
    kind: str = meta["kind"]
    return kind


def describe_metadata(data: bytes, path: str) -> tuple[str, int]:
    """``(kind, format version)`` of a metadata file, checked as every reader checks it."""
    kind = decode_metadata(data, path)
    return kind, int(parse_json(data, path, "metadata")["format"])

"""Bytes in, bytes out: key hashing, documents, metadata. No I/O here.

Everything a reader in another language needs is decided in this module and
written down in docs/format.md; keep the two in step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import sys
from collections.abc import Container
from json.encoder import encode_basestring
from typing import Any

from . import _json
from ._errors import CorruptError, Error

__all__ = [
    "DATA_SUFFIX",
    "FORMAT_VERSION",
    "GITATTRIBUTES",
    "GITIGNORE",
    "KINDS",
    "MAX_DEPTH",
    "METADATA_NAME",
    "ORDER_NAME",
    "RESERVED_JSON",
    "RSYNC_FILTER",
    "SUPPORT_FILES",
    "check_document_name",
    "conflict_line",
    "decode_document",
    "decode_metadata",
    "describe_metadata",
    "document",
    "document_name",
    "encode_document",
    "encode_metadata",
    "encode_value",
    "is_conflict_marker",
    "is_data_file",
    "is_data_name",
    "is_data_path",
    "is_fanout_name",
    "is_metadata_name",
    "is_reserved_json",
    "key_digest",
    "key_relpath",
    "parse_json",
    "split_conflict",
    "validate_key",
    "validate_value",
]

# The newest format this sos reads. A store is created at BASE_FORMAT (so an
# older sos can open it) and raised to TRANSACTION_FORMAT before its first
# transaction: an older sos, which knows nothing of .sos/txn.json, must not
# open a store that may hold a pending transaction record.
FORMAT_VERSION = 2
BASE_FORMAT = 1
TRANSACTION_FORMAT = 2
KINDS = ("dict", "list")
METADATA_NAME = "sos.json"
ORDER_NAME = "order.txt"
# Python's json reader recurses once per nesting level; refuse to write what it
# could not read back under the default recursion limit (1000).
MAX_DEPTH = 500

GITIGNORE = b"""\
# sos: temporary files and the reserved .sos/ (transaction records, locks)
# are never data (see docs/format.md)
.sos-tmp-*
.sos/
"""
# -text: git must never rewrite line endings (a document's bytes are its value).
# merge=union: two clones that both append merge into both runs; sos check
# --repair drops any run named twice.
GITATTRIBUTES = b"""\
* -text
order.txt merge=union
"""
# For rsync -F: never copy a half-written temporary file.
RSYNC_FILTER = b"""\
- .sos-tmp-*
- .sos/
"""
SUPPORT_FILES = {
    ".gitignore": GITIGNORE,
    ".gitattributes": GITATTRIBUTES,
    ".rsync-filter": RSYNC_FILTER,
}

_DIGEST_CHARS = 32  # 128 bits of SHA-256: no collision in any real store
_DATA_NAME = re.compile(rf"[0-9a-f]{{{_DIGEST_CHARS}}}\.json\Z")
_FANOUT_NAME = re.compile(r"[0-9a-f]{2}\Z")
DATA_SUFFIX = ".json"

# Git's conflict markers, one rule for documents, the manifest and the metadata:
# a line that is exactly "=======", or starts with "<<<<<<<", "|||||||" (the
# diff3/zdiff3 base) or ">>>>>>>" followed by the end of the line or a space
# and a label. No valid document or manifest line can look like one (JSON
# strings hold no raw newline; a document's lines are indented or braces).
_MARKER_LINE = r"(?:(?:<{7}|\|{7}|>{7})(?: [^\r\n]*)?|={7})\r?"
_CONFLICT_MARKER = re.compile(rb"^" + _MARKER_LINE.encode() + rb"$", re.MULTILINE)
_MARKER_TEXT = re.compile(_MARKER_LINE + r"\Z")


def validate_key(key: object) -> str:
    """Return ``key`` if it can be a key: any ``str`` that UTF-8 can encode."""
    if not isinstance(key, str):
        raise TypeError(f"sos keys must be str, not {type(key).__name__}: {key!r:.80}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"key {key!r:.80} has a lone surrogate at index {exc.start}; "
            "it cannot be written as UTF-8"
        ) from None
    return key


def key_digest(key: str) -> str:
    """The lowercase hex name of ``key``: SHA-256 of its UTF-8 bytes, first 32 digits."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]


@functools.lru_cache(maxsize=4096)  # pure, and on every read's path
def key_relpath(key: str) -> str:
    """Where ``key`` lives inside a store: ``ab/ab…(32 hex).json``."""
    digest = key_digest(key)
    return f"{digest[:2]}/{digest}.json"


def is_data_name(name: str) -> bool:
    """True if ``name`` (no directory) has a document's shape: ``<32 hex>.json``."""
    return _DATA_NAME.match(name) is not None


def is_data_file(directory: str, name: str, known: Container[str] = ()) -> bool:
    """The one answer to "is this a data file?": ``name`` listed in the store
    directory ``directory`` is ``ab…(32 hex).json`` inside ``ab``.

    Readers, iteration, ``len``, watch and ``sos check`` all ask this, so a
    file one of them reads is a file all of them see. ``known``: names found
    to be data files before (a listing's cache), not matched again.
    """
    return (
        len(directory) == 2
        and name.startswith(directory)
        and (name in known or _DATA_NAME.match(name) is not None)
    )


def is_data_path(relpath: str) -> bool:
    """:func:`is_data_file` for a store-relative path ``ab/ab….json``."""
    directory, _, name = relpath.partition("/")
    return is_data_file(directory, name)


# JSON files a store may hold beside its documents that are not documents:
# its metadata, and the schema of a typed store (reserved for it now, so that
# sos check never reports one as a foreign file).
RESERVED_JSON = frozenset({METADATA_NAME, "schema.json"})


def is_reserved_json(relpath: str) -> bool:
    """True for a store-relative ``*.json`` name that is the store's own, not data."""
    return relpath in RESERVED_JSON


def document_name(key: str) -> str:
    """The file name (no directory) of ``key``'s document: ``ab01…ef.json``."""
    return key_relpath(key)[3:]


def is_fanout_name(name: str) -> bool:
    return _FANOUT_NAME.match(name) is not None


def is_metadata_name(relpath: str) -> bool:
    """True for a store file that is not a document: metadata, manifest,
    support files, and anything in the reserved ``.sos/`` name space."""
    return (
        relpath in (METADATA_NAME, ORDER_NAME)
        or relpath in SUPPORT_FILES
        or relpath == ".sos"
        or relpath.startswith(".sos/")
    )


# -- git conflict markers ------------------------------------------------------


def is_conflict_marker(line: str | bytes) -> bool:
    """True if ``line`` (without or with its newline) is a git conflict marker."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return _MARKER_TEXT.match(text.rstrip("\n")) is not None


def conflict_line(data: bytes) -> int | None:
    """The 1-based line of the first git conflict marker in ``data``, or None.

    The one test every reader, ``sos check`` and the command line use, well
    nested or not: a file with any marker line is "conflicted".
    """
    marker = _CONFLICT_MARKER.search(data)
    if marker is None:
        return None
    return data[: marker.start()].count(b"\n") + 1


def split_conflict(data: bytes) -> tuple[bytes, bytes] | None:
    """``(ours, theirs)`` of a file git left with conflict markers, or None.

    Handles the default and the ``diff3``/``zdiff3`` styles (the base section
    between ``|||||||`` and ``=======`` is dropped). None if there are no
    markers or they are not well nested (then only a person can settle it).
    """
    ours: list[bytes] = []
    theirs: list[bytes] = []
    state = "common"
    seen = False
    for line in data.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if not is_conflict_marker(bare):
            if state in ("common", "ours"):
                ours.append(line)
            if state in ("common", "theirs"):
                theirs.append(line)
            continue
        head = bare[:1]
        if state == "common" and head == b"<":
            state, seen = "ours", True
        elif state == "ours" and head == b"|":
            state = "base"
        elif state in ("ours", "base") and head == b"=":
            state = "theirs"
        elif state == "theirs" and head == b">":
            state = "common"
        else:
            return None  # a marker out of place: not well nested
    if not seen or state != "common":
        return None
    return b"".join(ours), b"".join(theirs)


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
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{_at(where)} is {value!r}: JSON holds only finite numbers")
        return
    if depth >= MAX_DEPTH:
        raise ValueError(f"{_at(where)} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if id(value) in active:
            raise ValueError(f"{_at(where)} contains itself (a circular reference)")
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
            raise ValueError(f"{_at(where)} contains itself (a circular reference)")
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


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{_at(where)} has a lone surrogate at index {exc.start}; it cannot be written as UTF-8"
        ) from None


def encode_document(key: str, value: Any) -> bytes:
    """The bytes of the file holding ``key``: indented UTF-8 JSON, key first.

    Deterministic: the same key and value (objects in the same order) always
    give the same bytes. Object key order is kept, not sorted. Exactly
    ``json.dumps({"key": key, "value": value}, indent=2, ensure_ascii=False)``
    and a newline.
    """
    validate_key(key)
    return document(key, encode_value(value))


def encode_value(value: Any) -> bytes:
    """``value`` checked and encoded as it sits in a document (one level in).

    One pass (:mod:`sos._json`) that also refuses what JSON cannot hold; on a
    refusal the value is walked again, by :func:`validate_value`, to raise a
    ``TypeError``/``ValueError`` that says where. A caller that must check a
    value before it knows the key (a List, before it takes its lock) keeps
    these bytes for :func:`document`.
    """
    try:
        return _json.encode_indented(value, 1, MAX_DEPTH).encode("utf-8")
    except (_json.Unwritable, UnicodeEncodeError):
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


# One decoder for every read: json.loads with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# A float literal overflows only with a 3-digit exponent or 309+ digits; only
# then is the slower decoder that checks each float used.
_CHECKED = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_BIG_NUMBER = re.compile(rb"[eE][+-]?[0-9]{3}|[0-9]{309}")
_BOM = b"\xef\xbb\xbf"


def parse_json(data: bytes, path: str, what: str = "document") -> Any:
    """Parse strict JSON (no NaN/Infinity), raising CorruptError with line and column.

    Numbers Python cannot hold faithfully (a float beyond 1.8e308, which would
    read as infinity; an integer of more digits than ``int()`` converts) make
    the file corrupt too, as does a leading byte order mark.
    """
    if data.startswith(_BOM):
        raise CorruptError(
            f"{path}: {what} starts with a UTF-8 byte order mark (BOM), which sos "
            "files never have (an editor added it: remove the first 3 bytes)",
            path,
            1,
            1,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptError(f"{path}: {what} is not UTF-8 (byte {exc.start})", path) from None
    try:
        return (_CHECKED if _BIG_NUMBER.search(data) else _DECODER).decode(text)
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
                f"({getattr(sys, 'get_int_max_str_digits', lambda: 4300)()}; "
                "see sys.set_int_max_str_digits)",
                path,
            ) from None
        raise CorruptError(f"{path}: invalid JSON: {exc}", path) from None
    except RecursionError as exc:
        raise CorruptError(f"{path}: invalid JSON: {exc}", path) from None


def _raise_if_conflicted(data: bytes, path: str) -> None:
    """Name the damage a person can fix at once, instead of "invalid JSON":
    git conflict markers (the likeliest bad JSON) and a byte-order mark."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise CorruptError(
            f"{path}: starts with a UTF-8 byte-order mark (3 bytes EF BB BF), which JSON "
            "does not allow; save the file as UTF-8 without a BOM",
            path,
            1,
            1,
        )
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
    doc = parse_json(data, path)
    if not isinstance(doc, dict) or set(doc) != {"key", "value"}:
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

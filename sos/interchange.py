"""What ``sos dump`` writes and ``sos load`` reads: JSON, JSON Lines, pysos files.

A JSON dump is an object (a Dict) or an array (a List), so its shape says its
kind. A JSON Lines dump starts with one marker line,
``{"sos-dump": {"kind": "dict", "dump-format": 1}}``, because a Dict's
``{"key": ..., "value": ...}`` lines look just like a List of such objects.
Input without a marker keeps the plain rules: an object is a Dict, an array or
JSON Lines a List.

``dump-format`` is the version of this dump format, not of a store's files
(``sos.json``'s ``format``, which ``sos info`` shows as ``store_format``):
the two were both called ``format`` and were read as one. sos 0.2 wrote the
marker's version as ``"format": 1``; it is the same dump format 1, and read
as such.

pysos, sos's single-file ancestor, keeps a dict or a list in one text file:
an optional header line (``# FILE-DICT v1`` or ``# FILE-LIST v1``), then one
entry per line, the key as JSON, a tab, the value as JSON. Lines starting
with ``#`` are deleted entries or free space, blank lines padding. A key
written twice (an update interrupted before the old line was commented out)
counts at its last line, as pysos itself reads it. A pysos list is a dict
with int keys whose order is the keys sorted.

Pure: text or bytes in, entries out; bad input is a CorruptError naming the
source and line.
"""

from __future__ import annotations

from typing import Any

from sos import format as _format
from sos.errors import CorruptError

__all__ = ["MARKER", "as_pairs", "marker", "parse", "parse_pysos"]

MARKER = "sos-dump"
DUMP_FORMAT = 1  # the newest dump format this sos reads, and the one it writes
_VERSION_NAMES = ("dump-format", "format")  # the name since 0.3, the one before


def marker(kind: str) -> dict[str, Any]:
    """The first line of a JSON Lines dump of a ``kind`` store."""
    return {MARKER: {"kind": kind, "dump-format": DUMP_FORMAT}}


def parse(text: str, source: str) -> tuple[str, list[Any], str | None]:
    """``(shape, entries, kind)`` from JSON, a JSON array, or JSON Lines.

    ``shape`` is ``"object"`` (entries are pairs) or ``"lines"`` (values);
    ``kind`` is what a ``sos dump --jsonl`` marker line says, else None.
    """
    try:
        whole = _format.parse_json(text.encode("utf-8", "surrogateescape"), source, "input")
    except CorruptError as first:
        values = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                values.append(_format.parse_json(line.encode("utf-8", "surrogateescape"), source))
            except CorruptError as exc:
                if number == 1 or exc.line is None:
                    # Line 1 not JSON either: neither JSON nor JSON Lines, report the JSON error.
                    raise first from None
                raise CorruptError(
                    f"{source}: invalid JSON at line {number}, column {exc.column}"
                    + exc.message.partition(f"column {exc.column}")[2],
                    source,
                    number,
                    exc.column,
                ) from None
        kind = _marked_kind(values[0], source) if values else None
        return "lines", values[1:] if kind else values, kind
    if isinstance(whole, dict) and list(whole) == [MARKER]:  # the dump of an empty store
        return "lines", [], _marked_kind(whole, source)
    if isinstance(whole, dict):
        return "object", list(whole.items()), None
    if isinstance(whole, list):
        return "lines", whole, None
    raise CorruptError(f"{source}: expected a JSON object, a JSON array or JSON Lines", source)


def _marked_kind(first: Any, source: str) -> str | None:
    """The kind a ``sos dump --jsonl`` marker line names, or None if ``first`` is data."""
    if not (isinstance(first, dict) and list(first) == [MARKER]):
        return None
    marker = first[MARKER]
    kind = marker.get("kind") if isinstance(marker, dict) else None
    if kind not in _format.KINDS:
        raise CorruptError(
            f"{source}: line 1: a sos dump marker naming no known kind: {marker!r:.80}", source
        )
    version = next((marker[n] for n in _VERSION_NAMES if n in marker), DUMP_FORMAT)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptError(f"{source}: line 1: unknown dump format {version!r:.40}", source)
    if version > DUMP_FORMAT:
        raise CorruptError(
            f"{source}: line 1: dump format {version} is newer than this sos reads "
            f"({DUMP_FORMAT}); load it with a newer sos",
            source,
        )
    return str(kind)


def as_pairs(values: list[Any], source: str) -> list[tuple[str, Any]]:
    """A dict's entries from ``{"key": ..., "value": ...}`` objects."""
    pairs = []
    for n, doc in enumerate(values, 1):
        if not (isinstance(doc, dict) and set(doc) == {"key", "value"}):
            raise CorruptError(
                f'{source}: entry {n} is not {{"key": ..., "value": ...}}; a dict store '
                "loads a JSON object or such entries",
                source,
            )
        pairs.append((doc["key"], doc["value"]))
    return pairs


_LIST_HEADER = b"# FILE-LIST v1"


def parse_pysos(data: bytes, source: str) -> tuple[str, list[Any]]:
    """``("dict", [(key, value), …])`` or ``("list", [value, …])`` from a pysos file."""
    entries: dict[Any, Any] = {}
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip() or line.startswith(b"#"):
            continue
        left, tab, right = line.partition(b"\t")
        where = f"{source}: line {number}"
        if not tab:
            raise CorruptError(f"{where}: not a pysos entry (KEY<TAB>VALUE)", source, number, 1)
        key = _format.parse_json(left, where, "pysos key")
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise CorruptError(
                f"{where}: a pysos key is a string or an int, not {key!r:.40}", source
            )
        entries[key] = _format.parse_json(right, where, "pysos value")
    kinds = {type(k) for k in entries}
    if kinds == {int} or (not entries and data.startswith(_LIST_HEADER)):
        return "list", [entries[k] for k in sorted(entries)]
    if kinds <= {str}:
        return "dict", list(entries.items())
    raise CorruptError(f"{source}: a pysos file with both string and int keys", source)

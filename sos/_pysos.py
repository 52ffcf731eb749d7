"""Read a file written by pysos, sos's single-file ancestor, for ``sos load --pysos``.

pysos keeps a dict or a list in one text file: an optional header line
(``# FILE-DICT v1`` or ``# FILE-LIST v1``), then one entry per line, the key
as JSON, a tab, the value as JSON. Lines starting with ``#`` are deleted
entries or free space, blank lines are padding. A key written again (an update
interrupted before the old line was commented out) counts at its last line, as
pysos itself reads it. A pysos list is a dict with int keys whose order is the
keys sorted. Pure: bytes in, entries out.
"""

from __future__ import annotations

from typing import Any

from . import _format
from ._errors import CorruptError

__all__ = ["parse"]

_LIST_HEADER = b"# FILE-LIST v1"


def parse(data: bytes, source: str) -> tuple[str, list[Any]]:
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

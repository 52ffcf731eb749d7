"""The intent record's format: its names, its entries, the List mark.

docs/format.md, "Transactions".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sos.errors import CorruptError
from sos.format.names import RESERVED_DIR, TXN_RECORD

# The standard library's string encoder for ensure_ascii=False (C where built).
_string = json.encoder.encode_basestring

__all__ = [
    "DONE",
    "MARK",
    "PART_LIMIT",
    "PART_PREFIX",
    "PART_SUFFIX",
    "RECORD",
    "TXN_FORMAT",
    "UNSET",
    "digest",
    "entries",
    "entry",
    "is_part_name",
    "marked",
    "unmarked",
]

RECORD = TXN_RECORD
# One line naming the last finished transaction, so that watchers can tell
# that a transaction came and went.
DONE = f"{RESERVED_DIR}/txn.done"
PART_PREFIX = f"{RESERVED_DIR}/txn-"
PART_SUFFIX = ".part"
# Entries kept in memory before they are written out as a part file.
PART_LIMIT = 4 << 20
TXN_FORMAT = 1
# Where appends take no lock (object storage), a transaction that changes a
# List's order first adds this comment line (and its id) to order.txt by a
# compare-and-swap, before its commit point: an appender sees it in the
# manifest it reads anyway, and lets the transaction finish (under the
# lease) instead of swapping in an order the transaction's apply would then
# overwrite or be refused by. Readers skip it: it is a comment.
MARK = b"# pending transaction "


def is_part_name(name: str) -> bool:
    """True for a part file's store-relative name (``.sos/txn-<id>-<n>.part``)."""
    return name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)


def marked(data: bytes) -> bool:
    """True if a manifest holds a pending transaction's mark."""
    return data.startswith(MARK) or b"\n" + MARK in data


def unmarked(data: bytes) -> bytes:
    """A manifest without its marks (those of a transaction that died before
    its commit point: the caller holds the lease and no record is pending)."""
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(MARK))


def digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def entry(name: str, before: str | None, after: bytes | None) -> bytes:
    """One line of the record: ``json.dumps({"name": ..., "before": ...,
    "after": ...}, ensure_ascii=False)``, byte for byte, built from the three
    strings' JSON forms without the encoder's dict walk (one per key of a
    transaction: ~2 µs less each)."""
    text = "null" if after is None else _string(after.decode("utf-8"))
    old = "null" if before is None else _string(before)
    return f'{{"name": {_string(name)}, "before": {old}, "after": {text}}}\n'.encode()


#: A sentinel: "not looked up yet", where None means "absent".
UNSET: Any = object()


def entries(data: bytes, where: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise CorruptError(f"{where}: line {number} is not JSON", where) from None
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CorruptError(f"{where}: line {number} is not a transaction entry", where)
        yield entry

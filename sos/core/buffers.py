"""What a handle keeps between calls (batch buffers, bounded caches) and the small storage helpers
its blocks share.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sos.errors import NotDurableError
from sos.format.names import NAME_MEMORY
from sos.storage.base import Storage, Version
from sos.txn import Journal

if TYPE_CHECKING:

    pass


K = TypeVar("K")


V = TypeVar("V")


# Memories keyed by name or index are emptied when they reach this size:
# bounded memory on any store (the one limit of sos.format.names).
CACHE_LIMIT = NAME_MEMORY


class Bounded(dict[K, V], Generic[K, V]):
    """A dict that forgets everything when full: the one policy of every memory
    the stores keep (they are all re-derivable, so forgetting is always safe)."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: K, value: V) -> V:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


class _Kept:
    """Writeback memory of one key: the value handed out, and the bytes it was
    read from (or last written as), to tell later whether it changed."""

    __slots__ = ("data", "value")

    def __init__(self, value: Any, data: bytes) -> None:
        self.value = value
        self.data = data


# A buffered write whose bytes are in the transaction's journal, not in memory.
_JOURNALED = b""


class _Buffer:
    """The uncommitted changes of one batch or transaction, owned by the
    thread that opened it. A transaction's bytes live in its journal (on
    disk past a few MiB), a batch's in memory."""

    __slots__ = ("base", "journal", "kept", "keys", "order", "owner", "removed", "writes")

    def __init__(self, journal: Journal | None = None) -> None:
        self.owner = threading.get_ident()
        self.journal = journal
        # file name -> its new bytes, or None where the batch removes it
        self.writes: dict[str, bytes | None] = {}
        # file name -> the key it holds, for names the batch writes
        self.keys: dict[str, str] = {}
        # writeback memory of what the batch touched (merged on commit)
        self.kept: dict[str, _Kept] = {}
        # List: the order on disk when the batch began, the order it leaves,
        # and the ids it removed from the order
        self.base: Any = None
        self.order: Any = None
        self.removed: list[str] = []

    def put(self, name: str, key: str, data: bytes | None) -> None:
        """Buffer ``name``'s new bytes (None: removed)."""
        if self.journal is not None:
            self.journal.add(name, data)
            self.writes[name] = None if data is None else _JOURNALED
        else:
            self.writes[name] = data
        self.keys[name] = key

    def data(self, name: str) -> bytes | None:
        """The buffered bytes of ``name`` (None: removed); ``name`` is buffered."""
        data = self.writes[name]
        if data is _JOURNALED:
            assert self.journal is not None
            return self.journal.get(name)
        return data


class _Cached:
    """A whole file as last read: its version, its bytes and what they parse to."""

    __slots__ = ("data", "parsed", "version")

    def __init__(self, version: Version, data: bytes, parsed: Any) -> None:
        self.version = version
        self.data = data
        self.parsed = parsed


def _read_or_none(storage: Storage, name: str) -> bytes | None:
    try:
        return storage.read(name)
    except FileNotFoundError:
        return None


def hand_back(exc: NotDurableError, result: Any) -> NotDurableError:
    """Attach what a call removed to the error that reports its commit."""
    exc.result = result
    return exc


def cleanup(storage: Storage, names: Iterable[str]) -> None:
    """Remove files after a commit point: failure leaves harmless orphans
    (``sos check --repair`` moves them), never an error for a change made."""
    with contextlib.suppress(OSError):
        storage.remove(names)

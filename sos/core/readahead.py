"""Reading many values ahead, in order, through the storage's bounded pool."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from sos.core.buffers import _Buffer
from sos.storage.base import Storage

#: What :meth:`ReadAhead._read_ahead` gives for a file that is not there.
GONE: Any = object()


class ReadAhead:
    """A mixin of :class:`~sos.core.store.Store`, which supplies what is declared here."""

    _storage: Storage
    _writeback: bool

    if TYPE_CHECKING:

        def _active(self) -> _Buffer | None: ...

        def _name(self, key: str) -> str: ...

        def _fetch(self, key: str, name: str) -> Any: ...

        def _decode(self, data: bytes, name: str, key: str) -> Any: ...

    def _read_ahead(self, keys: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """(key, value) of each of ``keys`` from storage, :data:`GONE` for a
        missing file, read ahead through the storage's bounded pool
        (:meth:`~sos.storage.base.Storage.read_many`): on object storage a
        long read is many requests in flight, not one round trip after another."""
        if self._writeback or self._active() is not None:  # the batch's writes, kept values
            for key in keys:
                try:
                    yield key, self._fetch(key, self._name(key))
                except FileNotFoundError:
                    yield key, GONE
            return
        asked: collections.deque[str] = collections.deque()  # keys read ahead, in order

        def names() -> Iterator[str]:
            for key in keys:
                asked.append(key)
                yield self._name(key)

        for name, data in self._storage.read_many(names()):
            key = asked.popleft()
            yield key, GONE if data is None else self._decode(data, name, key)

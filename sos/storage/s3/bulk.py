"""Many objects at once: reads, listings and lazy writes through a bounded pool.

Each request to object storage is a round trip; a store's iteration, ``len``,
``check`` and ``dump`` make one per fan-out directory and one per document.
These methods keep :attr:`ObjectRequests._pool` of them in flight
(:func:`sos.storage.s3.pool.ordered`), results in the order asked, memory
bounded by the pool rather than the store.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from sos.storage.pool import ordered
from sos.storage.s3.objects import ObjectRequests


class BulkRequests(ObjectRequests):
    """The many-at-once capabilities of :class:`~sos.storage.base.Storage`
    for :class:`~sos.storage.s3.storage.S3Storage`."""

    if TYPE_CHECKING:  # supplied by S3Storage

        def list(self, directory: str = "") -> builtins.list[str]: ...

        def write_many(self, entries: Sequence[tuple[str, bytes]]) -> None: ...

    def parallelism(self) -> int:
        """The pool size: the ``pool`` storage option, else ``SOS_S3_POOL``, else 16."""
        return self._pool

    def _read_or_none(self, name: str) -> tuple[str, bytes | None]:
        response = self.get_object(name)
        return name, None if response is None else response["Data"]

    def read_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        """GETs, :meth:`parallelism` in flight, in the order of ``names``."""
        return ordered(self._read_or_none, names, self._pool)

    def _list_one(self, directory: str) -> tuple[str, builtins.list[str]]:
        return directory, self.list(directory)

    def list_many(self, directories: Iterable[str]) -> Iterator[tuple[str, builtins.list[str]]]:
        """Delimited LISTs of each directory, :meth:`parallelism` in flight, in order."""
        return ordered(self._list_one, directories, self._pool)

    def write_many_lazy(self, entries: Sequence[tuple[str, bytes]]) -> None:
        """Every PUT is durable when acknowledged: this is :meth:`write_many`, in parallel."""
        self.write_many(entries)

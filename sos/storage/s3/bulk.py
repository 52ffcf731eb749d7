"""Many objects at once: reads, listings and lazy writes through a bounded pool.

Each request to object storage is a round trip; a store's iteration, ``len``,
``check`` and ``dump`` list its fan-out directories (one flat LIST page for a
store of up to 1,000 objects) and make one request per document. These
methods keep :attr:`ObjectRequests._pool` of them in flight
(:func:`sos.storage.pool.ordered`), results in the order asked, memory
bounded by the pool rather than the store.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from sos.storage.pool import ordered
from sos.storage.s3.objects import PAGE_SIZE, ObjectRequests

#: Keys in the flat LIST page that :meth:`BulkRequests.list_many` asks for first.
FIRST_PAGE = PAGE_SIZE


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
        """Each directory's entries, in order. Top-level directories come
        first from one flat LIST page of the whole store, which holds all of
        them when the store has at most 1,000 objects: ``len`` of a 100-key
        Dict is 2 requests, not the ~84 of the root's LIST and a delimited
        LIST per fan-out directory (~83 of the 256 hold its keys). Those
        the page does not finish are listed one by one, :meth:`parallelism`
        in flight. A sub-directory holding only its marker may be missing
        (SeaweedFS leaves markers out of flat listings): the callers look
        for files."""
        directories = builtins.list(directories)
        if len(directories) < 2 or any(not d or "/" in d for d in directories):
            yield from ordered(self._list_one, directories, self._pool)
            return
        for directory in directories:
            self._dir_prefix(directory)  # a bad name ("..") is refused, as by list()
        done = self._finished_by_first_page(directories)
        rest = ordered(self._list_one, [d for d in directories if d not in done], self._pool)
        for directory in directories:
            yield (directory, done[directory]) if directory in done else next(rest)

    def _finished_by_first_page(self, directories: Sequence[str]) -> dict[str, builtins.list[str]]:
        """The entries of each of ``directories`` (top-level names) that the
        first page of a flat LIST of the store lists in full. A truncated
        page finishes a directory only if it is behind the page's last key
        in both orders a server may list in: the keys' byte order (S3) and
        a depth-first walk of names (SeaweedFS), which differ when a name
        extends another with a character below "/"."""
        root = self._root
        page = self._call(
            "list",
            None,
            lambda: self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=root, MaxKeys=FIRST_PAGE
            ),
        )
        found: dict[str, set[str]] = {directory: set() for directory in directories}
        last = root
        for item in page.get("Contents", ()):
            last = item["Key"]
            top, _, below = last[len(root) :].partition("/")
            names = found.get(top)
            if names is not None and below:
                names.add(below.partition("/")[0])
        if page.get("IsTruncated"):
            last_top = last[len(root) :].partition("/")[0]
            for directory in directories:
                prefix = f"{root}{directory}/"
                if not (directory < last_top and prefix < last and not last.startswith(prefix)):
                    found.pop(directory, None)  # (a directory may be asked for twice)
        return {directory: builtins.list(names) for directory, names in found.items()}

    def write_many_lazy(self, entries: Sequence[tuple[str, bytes]]) -> None:
        """Every PUT is durable when acknowledged: this is :meth:`write_many`, in parallel."""
        self.write_many(entries)

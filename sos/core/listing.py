"""Listing a Dict's keys: which files hold keys, and which key each holds.

A mixin of :class:`~sos.core.dict.Dict`. A file's name is its key's hash,
checked on every read, so remembering which key a name holds is always
right and iteration need not reopen files. What is remembered is bounded, so
memory stays flat on huge stores: the name memory and the listings kept
beside it hold at most NAME_MEMORY names each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sos import format as _format
from sos.core.buffers import Bounded
from sos.format.names import NAME_MEMORY
from sos.storage.base import Storage

__all__ = ["NAME_CACHE_LIMIT", "Listing"]

NAME_CACHE_LIMIT = NAME_MEMORY


class Listing:
    """The keys on disk of a Dict, listed and read ahead; see the module's docstring."""

    _storage: Storage

    if TYPE_CHECKING:

        def _where(self, name: str) -> str: ...

        def _parse_doc(self, name: str, data: bytes, typed: bool = False) -> tuple[str, Any]: ...

    def _init_listing(self) -> None:
        self._name_to_key: Bounded[str, str] = Bounded(NAME_CACHE_LIMIT)
        # Fan-out directory -> (its last raw listing, the data names in it, sorted).
        # An identical listing (compared in C) needs no filtering or sorting again.
        self._dirs: dict[str, tuple[list[str], list[str]]] = {}
        self._listed = 0  # names in _dirs' listings: at most NAME_MEMORY
        # Data names -> their keys, for the name lists _dirs hands out.
        self._dir_keys: dict[str, tuple[list[str], list[str]]] = {}

    def _keys_on_disk(self) -> Iterator[str]:
        """Each key, in listing order. Files whose key is not remembered are
        read in groups that span fan-out directories: on object storage a
        group is its GETs in flight at once, not a round trip per directory."""
        known = self._name_to_key
        dir_keys = self._dir_keys
        window = 2 * self._storage.parallelism()
        group: list[tuple[str, list[str], list[str | None]]] = []
        unknown = 0
        for directory, names in self._listing():
            cached = dir_keys.get(directory)
            if cached is not None and cached[0] is names:
                keys: list[str | None] = cached[1]  # type: ignore[assignment]
                missing = 0
            else:
                keys = list(map(known.get, names))
                missing = keys.count(None)
                if not missing and self._dirs.get(directory, (None, None))[1] is names:
                    dir_keys[directory] = (names, keys)  # type: ignore[assignment]
            if not group and not missing:
                yield from keys  # type: ignore[misc]
                continue
            group.append((directory, names, keys))
            unknown += missing
            if unknown >= window:
                yield from self._read_keys(group)
                group, unknown = [], 0
        if group:
            yield from self._read_keys(group)

    def _read_keys(self, group: list[tuple[str, list[str], list[str | None]]]) -> list[str]:
        """The keys of each (directory, names, keys known or None) of
        ``group``, in order, the unknown ones read from their files through
        one bounded pool; a file deleted meanwhile is left out."""
        unknown = [
            f"{directory}/{file}"
            for directory, names, keys in group
            for file, key in zip(names, keys, strict=True)
            if key is None
        ]
        found: dict[str, str] = {}
        for name, head in self._storage.read_heads(unknown, _format.HEAD_SIZE):
            key = None if head is None else self._key_of(name, head)
            if key is not None:
                found[name] = self._name_to_key.remember(name.rpartition("/")[2], key)
        result = []
        for directory, names, keys in group:
            for file, key in zip(names, keys, strict=True):
                if key is None:
                    key = found.get(f"{directory}/{file}")
                if key is not None:
                    result.append(key)
        return result

    def _key_of(self, name: str, head: bytes) -> str | None:
        """The key of the document ``name`` from its first bytes, checked
        against its file name; the whole document read and parsed where they
        do not show it (None: deleted meanwhile). A value is not read to
        list its key: a 50 MB value costs a listing nothing."""
        key = _format.key_of_head(head)
        if key is not None:
            _format.check_document_name(key, self._where(name), name.rpartition("/")[2])
            return key
        try:  # whole and checked: a short head may be a FIFO's bytes, not a file's
            data = self._storage.read(name)
        except FileNotFoundError:
            return None
        return self._parse_doc(name, data)[0]

    def _listing(self) -> Iterator[tuple[str, list[str]]]:
        """(fan-out directory, sorted data file names) for each, in order.

        Only names that can hold a key are listed: foreign files (editor swap
        files, rsync temporaries, a README) and our own temporaries are not.
        A remembered name was checked when first seen: no pattern match again.
        """
        for prefix, raw in self._raw_listings():
            cached = self._dirs.get(prefix)
            if cached is not None and cached[0] == raw:
                names = cached[1]
            else:
                names = self._data_names(prefix, raw)
            if names:
                yield prefix, names

    def _raw_listings(self) -> Iterator[tuple[str, list[str]]]:
        """(fan-out directory, its listing as the storage gives it), in order."""
        storage = self._storage
        prefixes = sorted(n for n in storage.list("") if _format.is_fanout_name(n))
        return storage.list_many(prefixes)  # in parallel on object storage

    def _data_names(self, prefix: str, raw: list[str]) -> list[str]:
        """The data file names of a directory's listing, sorted, and kept with it."""
        known = self._name_to_key
        names = [n for n in raw if _format.is_data_file(prefix, n, known)]
        names.sort()
        self._remember_listing(prefix, raw, names)
        return names

    def _remember_listing(self, prefix: str, raw: list[str], names: list[str]) -> None:
        """Keep a directory's listing while the listings kept hold at most
        NAME_MEMORY names (a store larger than that is listed afresh)."""
        old = self._dirs.pop(prefix, None)
        self._dir_keys.pop(prefix, None)
        if old is not None:
            self._listed -= len(old[0])
        if self._listed + len(raw) <= NAME_CACHE_LIMIT:
            self._dirs[prefix] = (raw, names)
            self._listed += len(raw)

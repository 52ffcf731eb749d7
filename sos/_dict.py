"""sos.Dict: a MutableMapping of str keys to JSON values, one file per key."""

from __future__ import annotations

import os
from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any

from . import _atomic, _format
from ._store import Store, StrPath, read_document, read_value

__all__ = ["Dict"]

_MISSING: Any = object()
# Remembering which key a file name holds is always right (the name is the
# key's hash, checked on every read), so iteration need not reopen files.
# Bounded, so memory stays flat on huge stores.
_NAME_CACHE_LIMIT = 1 << 18


class Dict(Store, MutableMapping[str, Any]):
    """A persistent dict: each key is one readable JSON file in a directory.

    Every write is on disk (fsynced, atomically renamed) when the call
    returns; every read goes to the disk, so changes made by other processes,
    ``git checkout`` or a text editor are seen at once.

    Values are copies, as with :mod:`shelve`: ``db["k"].append(1)`` changes a
    copy and nothing on disk. Write the value back (``v = db["k"];
    v.append(1); db["k"] = v``), or open with ``writeback=True``: values read
    are kept, and ``sync()``/``close()`` write back those whose JSON changed
    (another process's change to a kept key is then not seen until
    ``sync()``). ``with db.batch():`` commits many writes as one group; see
    :meth:`Store.batch` and docs/performance.md.

    Iteration order is the order of the file names (the keys' hashes): the
    same on every machine, but not insertion order; use ``sorted(db)`` for key
    order. Keys must be ``str``; reading a non-str key behaves as a dict of
    str keys does (``5 in db`` is False, ``db[5]`` raises KeyError), writing
    one raises TypeError.
    """

    _kind = "dict"

    def __init__(self, path: StrPath, *, create: bool = True, writeback: bool = False) -> None:
        super().__init__(path, create=create, writeback=writeback)
        self._name_to_key: dict[str, str] = {}
        # Fan-out directory -> (its last raw listing, the data names in it, sorted).
        # An identical listing (compared in C) needs no filtering or sorting again.
        self._dirs: dict[str, tuple[list[str], list[str]]] = {}
        # Data names -> their keys, for the name lists _dirs hands out.
        self._dir_keys: dict[str, tuple[list[str], list[str]]] = {}
        # Writeback: key -> [the value handed out, the bytes its file held].
        self._kept: dict[str, list[Any]] = {}
        # Inside a batch: file path -> (key, new bytes, or None for a delete).
        self._pending: dict[str, tuple[str, bytes | None]] = {}

    # -- paths ----------------------------------------------------------------

    def _readable_path(self, key: object) -> str | None:
        """The file of ``key``, or None if no file can hold it (not a str, not UTF-8)."""
        if isinstance(key, str):
            path = self._paths.get(key)
            if path is not None:
                return path
        if not self._readable_key(key):
            return None
        return self._document_path(key)  # type: ignore[arg-type]

    def _readable_key(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            _format.key_relpath(key)
        except UnicodeEncodeError:
            return False
        return True

    # -- reads ----------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self._check_open()
        path = self._readable_path(key)
        if path is None:
            raise KeyError(key)
        if self._writeback:
            return self._get_kept(key)
        if self._pending and self._in_batch:
            entry = self._pending.get(path)
            if entry is not None:
                if entry[1] is None:
                    raise KeyError(key)
                return _format.decode_document(entry[1], path)[1]
        try:
            _, value = read_value(path, key)
        except FileNotFoundError:
            raise KeyError(key) from None
        return value

    def _get_kept(self, key: str) -> Any:
        """Writeback read: the value handed out before, or read and kept now."""
        kept = self._kept.get(key)
        if kept is not None:
            return kept[0]
        path = self._document_path(key)
        entry = self._pending.get(path)
        if entry is not None:
            if entry[1] is None:
                raise KeyError(key)
            data = entry[1]
            value = _format.decode_document(data, path)[1]
        else:
            try:
                data, value = read_value(path, key)
            except FileNotFoundError:
                raise KeyError(key) from None
        self._kept[key] = [value, data]
        return value

    def __contains__(self, key: object) -> bool:
        self._check_open()
        path = self._readable_path(key)
        if path is None:
            return False
        if self._kept and key in self._kept:
            return True
        if self._pending and self._in_batch:
            entry = self._pending.get(path)
            if entry is not None:
                return entry[1] is not None
        try:
            os.stat(path)
        except FileNotFoundError:
            return False
        return True

    def __len__(self) -> int:
        self._check_open()
        if self._pending and self._in_batch:
            return sum(1 for _ in self)
        return sum(len(names) for _, names in self._listing())

    def __iter__(self) -> Iterator[str]:
        self._check_open()
        pending = self._pending if self._in_batch else {}
        if not pending:  # the common case, kept tight: a listing and dict lookups
            known = self._name_to_key
            dir_keys = self._dir_keys
            for directory, names in self._listing():
                cached = dir_keys.get(directory)
                if cached is not None and cached[0] is names:
                    yield from cached[1]
                    continue
                keys = list(map(known.get, names))
                if None not in keys:
                    if len(known) < _NAME_CACHE_LIMIT:  # bounded with the name memory
                        dir_keys[directory] = (names, keys)
                else:
                    keys = [
                        self._read_key(directory, name) if key is None else key
                        for key, name in zip(keys, names, strict=True)
                    ]
                    keys = [key for key in keys if key is not None]
                yield from keys
            return
        seen: set[str] = set()
        for directory, names in self._listing():
            for name in names:
                key = self._name_to_key.get(name)
                if key is None:
                    try:
                        key, _ = read_document(os.path.join(directory, name))
                    except FileNotFoundError:
                        continue  # deleted while we iterate
                    self._remember(name, key)
                if pending:
                    path = os.path.join(directory, name)
                    entry = pending.get(path)
                    if entry is not None:
                        seen.add(path)
                        if entry[1] is None:
                            continue
                yield key
        if pending:  # keys the batch adds, after those on disk
            for path, (key, data) in list(pending.items()):
                if data is not None and path not in seen:
                    yield key

    def _iter_documents(self) -> Iterator[tuple[str, Any]]:
        """Each (key, value), one read per file, skipping files deleted meanwhile."""
        self._check_open()
        if (self._pending and self._in_batch) or self._writeback:  # buffered or kept first
            for key in self:
                try:
                    yield key, self[key]
                except KeyError:
                    continue
            return
        for directory, names in self._listing():
            for name in names:
                try:
                    key, value = read_document(os.path.join(directory, name))
                except FileNotFoundError:
                    continue
                self._remember(name, key)
                yield key, value

    def _read_key(self, directory: str, name: str) -> str | None:
        """The key a file holds (remembered), or None if it was deleted meanwhile."""
        try:
            key, _ = read_document(os.path.join(directory, name))
        except FileNotFoundError:
            return None
        self._remember(name, key)
        return key

    def _remember(self, name: str, key: str) -> None:
        if len(self._name_to_key) < _NAME_CACHE_LIMIT:
            self._name_to_key[name] = key

    def _listing(self) -> Iterator[tuple[str, list[str]]]:
        """(directory, sorted data file names) for each fan-out directory, in order.

        Only names that can hold a key are listed: foreign files (editor swap
        files, rsync temporaries, a README) and our own temporaries are not.
        A remembered name was checked when first seen: no pattern match again.
        """
        known = self._name_to_key
        try:
            top = sorted(n for n in os.listdir(self._root) if _format.is_fanout_name(n))
        except FileNotFoundError:
            return
        for prefix in top:
            directory = os.path.join(self._root, prefix)
            try:
                raw = os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                continue
            cached = self._dirs.get(directory)
            if cached is not None and cached[0] == raw:
                names = cached[1]
            else:
                names = [
                    n
                    for n in raw
                    if n.startswith(prefix) and (n in known or _format.is_data_name(n))
                ]
                names.sort()
                if len(known) < _NAME_CACHE_LIMIT:
                    self._dirs[directory] = (raw, names)
            if names:
                yield directory, names

    def items(self) -> ItemsView[str, Any]:
        return _ItemsView(self)

    def values(self) -> ValuesView[Any]:
        return _ValuesView(self)

    # -- writes ---------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_open()
        data = _format.encode_document(key, value)  # checks before touching the disk
        if self._in_batch:
            self._pending[self._document_path(key)] = (key, data)
        else:
            with self._lock:
                _atomic.write_file(self._document_path(key), data)
        if self._writeback:
            self._kept[key] = [value, data]

    def __delitem__(self, key: str) -> None:
        self._check_open()
        if not self._readable_key(key):
            raise KeyError(key)
        if self._in_batch:
            if key not in self:
                raise KeyError(key)
            self._kept.pop(key, None)
            self._pending[self._document_path(key)] = (key, None)
            return
        with self._lock:
            self._kept.pop(key, None)
            if not _atomic.remove_files([self._document_path(key)]):
                raise KeyError(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value, under the store's lock."""
        self._check_open()
        with self._lock:
            try:
                value = self[key]
            except KeyError:
                if default is _MISSING:
                    raise
                return default
            del self[key]
            return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the first (key, value) in iteration order (hash order)."""
        self._check_open()
        with self._lock:
            for key, value in self._iter_documents():
                del self[key]
                return key, value
            raise KeyError("popitem(): dictionary is empty")

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._check_open()
        with self._lock:
            try:
                return self[key]
            except KeyError:
                self[key] = default
                return default

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Write many keys with the cost shared (group commit).

        Every value is checked before anything is written. When it returns,
        every key is on disk; after a crash each key holds its old or its new
        value (the update as a whole is not atomic).
        """
        self._check_open()
        pending: dict[str, tuple[str, Any, bytes]] = {}
        for key, value in _pairs(other, kwargs):
            path = self._document_path(_format.validate_key(key))
            pending[path] = (key, value, _format.encode_document(key, value))
        if self._in_batch:
            self._pending.update((path, (k, data)) for path, (k, _, data) in pending.items())
        else:
            with self._lock:
                _atomic.write_files([(path, data) for path, (_, _, data) in pending.items()])
        if self._writeback:
            self._kept.update((k, [v, data]) for k, v, data in pending.values())

    def clear(self) -> None:
        """Remove every key: one unlink per file, one directory fsync per fan-out directory."""
        self._check_open()
        if self._in_batch:
            for key in list(self):
                del self[key]
            return
        with self._lock:
            self._kept.clear()
            paths = [os.path.join(d, n) for d, names in self._listing() for n in names]
            _atomic.remove_files(paths)

    # -- batches and writeback (see Store.batch and Store.sync) -----------------

    def _batch_begin(self) -> None:
        self._pending = {}

    def _batch_discard(self) -> None:
        for key, _ in self._pending.values():  # kept values the batch set are void
            self._kept.pop(key, None)
        self._pending = {}

    def _batch_commit(self) -> None:
        """Buffered writes and changed kept values in one group commit, then deletes."""
        writes = {path: data for path, (_, data) in self._pending.items() if data is not None}
        dirty = self._dirty()
        writes.update((path, data) for _, path, data in dirty)
        _atomic.write_files(list(writes.items()))
        _atomic.remove_files(p for p, (_, data) in self._pending.items() if data is None)
        for key, _, data in dirty:
            self._kept[key][1] = data
        self._pending = {}

    def _dirty(self) -> list[tuple[str, str, bytes]]:
        """(key, path, new bytes) of each kept value whose JSON changed since it was read."""
        dirty = []
        for key, (value, old) in self._kept.items():
            new = _format.encode_document(key, value)
            if new == old:
                continue
            path = self._document_path(key)
            # A hand-formatted file holds the same JSON in other bytes: not a change.
            if _format.encode_document(key, _format.decode_document(old, path)[1]) != new:
                dirty.append((key, path, new))
        return dirty

    def _drop_cache(self) -> None:
        self._kept.clear()

    def path_of(self, key: str) -> str:
        """The file that holds (or would hold) ``key``, for editors and grep."""
        return self._document_path(_format.validate_key(key))


def _pairs(other: Any, kwargs: dict[str, Any]) -> Iterable[tuple[Any, Any]]:
    if isinstance(other, Mapping) or hasattr(other, "keys"):
        # keys(), as dict.update does: an object with keys() need not iterate them
        yield from ((k, other[k]) for k in other.keys())  # noqa: SIM118
    else:
        for pair in other:
            key, value = pair
            yield key, value
    yield from kwargs.items()


class _ItemsView(ItemsView[str, Any]):
    """Reads each file once, and skips keys deleted while iterating."""

    _mapping: Dict

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._mapping._iter_documents()


class _ValuesView(ValuesView[Any]):
    _mapping: Dict

    def __iter__(self) -> Iterator[Any]:
        return (value for _, value in self._mapping._iter_documents())

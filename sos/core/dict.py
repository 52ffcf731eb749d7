"""sos.Dict: a MutableMapping of str keys to JSON values, one file per key."""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any, TypeVar, overload

from sos import format as _format
from sos.core import listing as _listing
from sos.core.buffers import _Buffer, hand_back
from sos.core.kinds import StrPath
from sos.core.listing import Listing
from sos.core.store import Store
from sos.errors import CorruptError, NotDurableError

__all__ = ["Dict"]

V = TypeVar("V")

_MISSING: Any = object()


class Dict(Store, Listing, MutableMapping[str, V]):
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

    ``value_type`` (a dataclass, TypedDict, pydantic model or any annotation
    pydantic takes) makes a typed store, a ``Dict[T]``: values are validated
    (strictly) on every write and read and converted to and from plain JSON,
    and the store keeps the type's JSON Schema in ``schema.json``, which then
    binds every writer. ``update_schema=True`` adopts a changed type after
    checking every document. See docs/typed.md.
    """

    _kind = "dict"

    @overload
    def __init__(
        self: Dict[Any],
        path: StrPath,
        *,
        create: bool = ...,
        writeback: bool = ...,
        storage_options: dict[str, Any] | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: Dict[V],
        path: StrPath,
        *,
        value_type: type[V],
        create: bool = ...,
        writeback: bool = ...,
        update_schema: bool = ...,
        storage_options: dict[str, Any] | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: Dict[V],
        path: StrPath,
        *,
        value_type: Any,
        create: bool = ...,
        writeback: bool = ...,
        update_schema: bool = ...,
        storage_options: dict[str, Any] | None = ...,
    ) -> None: ...

    def __init__(
        self,
        path: StrPath,
        *,
        create: bool = True,
        writeback: bool = False,
        value_type: Any = None,
        update_schema: bool = False,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            path,
            create=create,
            writeback=writeback,
            value_type=value_type,
            update_schema=update_schema,
            storage_options=storage_options,
        )
        self._init_listing()
        # key -> path for `in`, where the storage's exists is one call (Storage.probe);
        # elsewhere the memory stays empty and _probe is never called.
        probe = self._storage.probe()
        self._probing = probe is not None
        self._probe = probe[0] if probe else self._storage.exists
        self._probed: dict[str, str] = probe[1] if probe else {}

    # -- names ----------------------------------------------------------------

    def _readable_name(self, key: object) -> str | None:
        """The file of ``key``, or None if no file can hold it (not a str, not UTF-8)."""
        if isinstance(key, str):
            name = self._names.get(key)
            if name is not None:
                return name
            try:
                return self._name(key)
            except UnicodeEncodeError:
                return None
        return None

    # -- reads ----------------------------------------------------------------

    def __getitem__(self, key: str) -> V:
        if self._closed:
            self._check_open()
        name = self._names.get(key) if key.__class__ is str else None  # inline: every get
        if name is None:
            name = self._readable_name(key)
            if name is None:
                raise KeyError(key)
        try:
            if self._writeback or self._buffer is not None:
                return self._fetch(key, name)  # type: ignore[no-any-return]
            data = self._storage.read(name)
        except FileNotFoundError:
            raise KeyError(key) from None
        if self._typed is None:  # _decode's common case inline: every get
            try:
                found, value = _format.decode_document(data, name)
            except CorruptError:
                pass  # _decode words it, naming the file in full
            else:
                if found == key:
                    return value  # type: ignore[no-any-return]
        return self._decode(data, name, key)  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        path = self._probed.get(key) if key.__class__ is str else None
        # Empty while a batch or transaction is open and once closed, never filled
        # with writeback on (see the filling below): those answer as below.
        if path is not None:
            try:  # the storage's exists, without its frames: every `in`
                self._probe(path)
            except FileNotFoundError:
                return False
            return True
        if self._closed:
            self._check_open()
        name = self._names.get(key) if key.__class__ is str else None
        if name is None:
            name = self._readable_name(key)
            if name is None:
                return False
        if self._writeback or self._buffer is not None:
            return self._has(key, name)  # type: ignore[arg-type]
        found = self._storage.exists(name)
        if self._probing and key.__class__ is str:
            path = self._storage.probe_path(name)
            if path is not None:
                if len(self._probed) >= _listing.NAME_CACHE_LIMIT:
                    self._probed.clear()
                self._probed[key] = path
                if self._buffer is not None or self._closed:  # begun meanwhile
                    self._probed.clear()  # (either that block's clear came after ours)
        return found

    def _forget_probes(self) -> None:
        self._probed.clear()

    def __len__(self) -> int:
        self._check_open()
        if self._active() is not None:
            return sum(1 for _ in self)
        total = 0
        dirs = self._dirs
        for prefix, raw in self._raw_listings():  # kept listings, or one count per directory
            cached = dirs.get(prefix)
            if cached is not None and cached[0] == raw:
                total += len(cached[1])
            elif self._listed + len(raw) <= _listing.NAME_CACHE_LIMIT:  # room to keep it
                total += len(self._data_names(prefix, raw))
            else:
                total += _format.count_data_files(prefix, raw)
        return total

    def __iter__(self) -> Iterator[str]:
        self._check_open()
        buf = self._active()
        if buf is None:  # the common case, kept tight: a listing and dict lookups
            yield from self._keys_on_disk()
            return
        seen: set[str] = set()
        for key in self._keys_on_disk():  # unknown keys read ahead, as without a batch
            name = self._name(key)
            if name in buf.writes:
                seen.add(name)
                if buf.writes[name] is None:
                    continue
            yield key
        for name, data in list(buf.writes.items()):  # keys the batch adds
            if data is not None and name not in seen:
                yield buf.keys[name]

    def _iter_documents(self) -> Iterator[tuple[str, V]]:
        """Each (key, value), one read per file, skipping files deleted meanwhile."""
        self._check_open()
        if self._writeback or self._active() is not None:  # buffered or kept first
            for key in self:
                try:
                    yield key, self[key]
                except KeyError:
                    continue
            return
        names = (f"{directory}/{file}" for directory, files in self._listing() for file in files)
        for name, data in self._storage.read_many(names):  # a bounded pool on object storage
            if data is None:
                continue  # deleted while we iterate
            key, value = self._parse_doc(name, data, True)
            self._name_to_key.remember(name.rpartition("/")[2], key)
            yield key, value

    def items(self) -> ItemsView[str, V]:
        return _ItemsView(self)

    def values(self) -> ValuesView[V]:
        return _ValuesView(self)

    # -- writes ---------------------------------------------------------------

    def __setitem__(self, key: str, value: V) -> None:
        if self._closed:
            self._check_open()
        if self._guard is None:
            data = _format.encode_document(key, value)  # checks before touching the disk
        else:
            data = self._encode_document(key, value)
        name = self._names.get(key) or self._name(key)  # inline: every set
        self._put([(key, name, value, data)])

    def __delitem__(self, key: str) -> None:
        self._check_open()
        name = self._readable_name(key)
        if name is None:
            raise KeyError(key)
        buf = self._active()
        if buf is not None:
            if not self._has(key, name):
                raise KeyError(key)
            self._forget(key)
            buf.put(name, key, None)
            return
        with self._writing(exclusive=False):
            self._kept.pop(key, None)
            if not self._storage.remove([name]):
                raise KeyError(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value, under the store's lock.

        The unlink is the commit: once it is done the value is returned, and
        if the directory fsync that makes it durable fails, the
        :class:`~sos.NotDurableError` raised carries the value as ``result``.
        """
        self._check_open()
        with self._writing():
            try:
                value = self[key]
            except KeyError:
                if default is _MISSING:
                    raise
                return default
            try:
                del self[key]
            except NotDurableError as exc:
                raise hand_back(exc, value) from exc.__cause__
            return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the first (key, value) in iteration order (hash order)."""
        self._check_open()
        with self._writing():
            for key, value in self._iter_documents():
                try:
                    del self[key]
                except NotDurableError as exc:
                    raise hand_back(exc, (key, value)) from exc.__cause__
                return key, value
            raise KeyError("popitem(): dictionary is empty")

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._check_open()
        with self._writing():
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
        entries: dict[str, tuple[str, str, Any, bytes]] = {}
        for key, value in _pairs(other, kwargs):
            name = self._name(_format.validate_key(key))
            data = self._encode_document(key, value)  # names the key it refuses
            entries[name] = (key, name, value, data)
        if entries:
            self._put(list(entries.values()))

    def clear(self) -> None:
        """Remove every key: one unlink per file, one directory fsync per fan-out directory."""
        self._check_open()
        if self._active() is not None:
            for key in list(self):
                del self[key]
            return
        with self._writing():
            self._kept.clear()
            self._storage.remove([f"{d}/{n}" for d, names in self._listing() for n in names])

    # -- batches and writeback (see Store.batch and Store.sync) -----------------

    def _apply(self, buf: _Buffer) -> None:
        """Buffered writes and changed kept values in one group commit, then deletes."""
        writes = {name: data for name, data in buf.writes.items() if data is not None}
        changed = self._changed(self._all_kept(buf)) if self._writeback else []
        writes.update((self._name(key), data) for key, data in changed)
        if writes:
            self._storage.write_many(list(writes.items()))
        removed = [name for name, data in buf.writes.items() if data is None]
        if removed:
            self._storage.remove(removed)
        for key, data in changed:
            entry = buf.kept.get(key) or self._kept.get(key)
            if entry is not None:
                entry.data = data

    def _stored_names(self) -> Iterator[str]:
        return (f"{d}/{n}" for d, names in list(self._listing()) for n in names)

    def path_of(self, key: str) -> str:
        """The file that holds (or would hold) ``key``, for editors and grep."""
        return self._where(self._name(_format.validate_key(key)))


def _pairs(other: Any, kwargs: dict[str, Any]) -> Iterable[tuple[Any, Any]]:
    if isinstance(other, Mapping) or hasattr(other, "keys"):
        # keys(), as dict.update does: an object with keys() need not iterate them
        yield from ((k, other[k]) for k in other.keys())  # noqa: SIM118
    else:
        for pair in other:
            key, value = pair
            yield key, value
    yield from kwargs.items()


class _ItemsView(ItemsView[str, V]):
    """Reads each file once, and skips keys deleted while iterating."""

    _mapping: Dict[V]

    def __iter__(self) -> Iterator[tuple[str, V]]:
        return self._mapping._iter_documents()


class _ValuesView(ValuesView[V]):
    _mapping: Dict[V]

    def __iter__(self) -> Iterator[V]:
        return (value for _, value in self._mapping._iter_documents())

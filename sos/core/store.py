"""What Dict and List share: the store's storage, its one write path, its caches.

``Store`` owns everything about writing that is not about keys or order:

- the **buffer** of a batch: one object, owned by the thread that opened the batch
  and seen by no other thread, handle or process until it commits;
- the **writeback memory** (:class:`_Kept`: the value handed out and the bytes it
  was read from) and the one comparison that says whether a kept value changed;
- the **cache policy**: memories keyed by name are bounded (emptied when full);
  a file's cached content is trusted only while its storage version is unchanged.

Dict and List supply what differs: how a key maps to a file name, and the List's
order manifest. Every byte goes through a :class:`~sos.storage.base.Storage`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sos import format as _format
from sos.core import schema as _schema
from sos.core.buffers import Bounded, _Buffer, _Cached, _Kept
from sos.core.kinds import StrPath, _read_kind
from sos.core.readahead import ReadAhead
from sos.core.transactions import Transactions
from sos.errors import ClosedError, CorruptError, Error
from sos.format.names import RESERVED_DIR
from sos.storage.base import Storage
from sos.storage.fileops import is_temp_name
from sos.storage.registry import open_storage, scheme_of
from sos.txn import pending, recover

if TYPE_CHECKING:
    from typing_extensions import Self

    from sos.watch.watcher import AsyncWatcher, Watcher




# Errors that say "nothing can be written here now": a recovery at open that
# meets one leaves its record for later instead of failing the open.
_CANNOT_WRITE = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EACCES", "EPERM")
    if hasattr(errno, name)
)


def _reopen(
    cls: type[Store], path: StrPath, writeback: bool, storage_options: dict[str, Any] | None = None
) -> Store:
    return cls(path, create=False, writeback=writeback, storage_options=storage_options)


def _reopen_typed(
    cls: type[Store],
    path: StrPath,
    value_type: Any,
    storage_options: dict[str, Any] | None = None,
    writeback: bool = False,
) -> Store:
    return cls(
        path,
        create=False,
        value_type=value_type,
        storage_options=storage_options,
        writeback=writeback,
    )


class Store(Transactions, ReadAhead):
    """Base of Dict and List: a storage whose metadata file names its kind."""

    _kind: str = ""

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
        # Built before any file is touched: a type pydantic cannot take fails here.
        self._typed = None if value_type is None else _schema.Typed(value_type)
        self._guard: _schema.Guard | None = None
        text = os.fspath(path)
        self._path: Path | str = text if scheme_of(text) else Path(path)
        self._root = text
        self._closed = True
        self._writeback = writeback
        # Kept for reopening (pickling); never shown: it may hold credentials.
        self._storage_options = dict(storage_options or {})
        self._storage: Storage = open_storage(text, **self._storage_options)
        self._writers_wait = self._storage.writers_wait_for_lock()  # fixed per storage
        self._where_prefix = self._storage.where("")  # storage.where, computed once
        self._buffer: _Buffer | None = None
        self._kept: dict[str, _Kept] = {}
        self._names: Bounded[str, str] = Bounded()
        try:
            kind = _read_kind(self._storage, text)
            if kind is None:
                if not create:
                    raise Error(
                        f"{self._root}: not a sos store (no {_format.METADATA_NAME})", self._root
                    )
                self._create()
            elif kind != self._kind:
                raise Error(
                    f"{self._root}: is a sos {kind} store, not a {self._kind}; "
                    f"open it with sos.{kind.capitalize()} or sos.open",
                    self._root,
                )
            self._storage.pin()
            self._recover_if_free()
            self._guard = _schema.attach(self._storage, self._typed, update_schema, self._where)
        except BaseException:
            self._storage.close()
            raise
        self._closed = False

    def _create(self) -> None:
        self._storage.make_root()
        self._storage.prepare_for_writing()
        self._ready_to_write = True
        with self._storage.lock():
            kind = _read_kind(self._storage, self._root)  # another process may have won
            if kind is not None:
                if kind != self._kind:
                    raise Error(
                        f"{self._root}: is a sos {kind} store, not a {self._kind}", self._root
                    )
                return
            if not self._is_claimable():
                raise Error(
                    f"{self._root}: is a non-empty directory without {_format.METADATA_NAME}, "
                    "not a sos store; refusing to turn it into one",
                    self._root,
                )
            files = list(_format.SUPPORT_FILES.items()) + self._initial_files()
            version = _format.BASE_FORMAT
            if self._typed is not None:  # a typed store is born with its schema
                files.append((_format.SCHEMA_NAME, self._typed.schema_bytes))
                version = _format.SCHEMA_FORMAT
            # Their names must be durable before the metadata's: renames in one
            # directory may reach the disk in any order, and a List whose
            # sos.json survived a power cut without its order.txt is unreadable.
            self._storage.write_many(files)
            # The metadata comes last and alone: a store exists once it is durable.
            self._storage.write(_format.METADATA_NAME, _format.encode_metadata(self._kind, version))

    def _recover_if_free(self) -> None:
        """At open: finish a record left by a crash, if no one holds the lock
        (a live transaction's record is its own business: never wait on it).
        One stat when there is none."""
        if pending(self._storage) and self._storage.acquire(exclusive=True, blocking=False):
            try:
                recover(self._storage)
            except OSError as exc:
                # No room (a full disk, a quota) or no right to write: opening to read must
                # still work. The record stays, finished by the next write or open.
                if exc.errno not in _CANNOT_WRITE:
                    raise
            finally:
                self._storage.release()

    @contextlib.contextmanager
    def _writing(self, exclusive: bool = True) -> Iterator[None]:
        """Hold the store's lock for a write (:meth:`_lock_for_write`)."""
        self._lock_for_write(exclusive)
        try:
            yield
        finally:
            self._storage.release()

    def _lock_for_write(self, exclusive: bool) -> None:
        """Take the store's lock for a write (the caller releases it), after finishing
        any pending transaction record: a record outlives its transaction only through
        a crash, and recovery must never overwrite a change made after it."""
        storage = self._storage
        if storage.held():
            storage.acquire(exclusive)
            return
        if not self._ready_to_write:
            storage.prepare_for_writing()
            self._ready_to_write = True
        storage.acquire(exclusive)
        try:
            # Where a plain write does not wait for the lock (object storage), it need not finish
            # a record: transactions and recovery write a file only if it has the version they saw.
            if not (exclusive or self._writers_wait) or not pending(storage):
                return
            if not exclusive:  # recovery needs the store to itself
                storage.release()
                storage.acquire(True)
            recover(storage)
            if not exclusive:
                storage.release()
                storage.acquire(False)
        except BaseException:
            if storage.held():  # a failed re-acquire holds nothing to release
                storage.release()
            raise

    def _is_claimable(self) -> bool:
        """True if the root holds nothing but what a half-made store leaves."""
        for name in self._storage.list(""):
            if name in _format.SUPPORT_FILES or name in (_format.ORDER_NAME, _format.SCHEMA_NAME):
                continue
            if is_temp_name(name):
                continue
            if name == RESERVED_DIR:  # Windows' lock file lives there, made by the lock
                continue
            return False
        return True

    def _initial_files(self) -> list[tuple[str, bytes]]:
        return []

    # -- names -------------------------------------------------------------------

    def _name(self, key: str) -> str:
        """The file name of ``key`` (a Dict key or a List item id), remembered:
        hashing is a good part of a read."""
        name = self._names.get(key)
        if name is None:
            name = self._names.remember(key, _format.key_relpath(key))
        return name

    def _where(self, name: str) -> str:
        """Where ``name`` is, for messages: a path, or a URL."""
        return self._where_prefix + name

    # -- reading documents ---------------------------------------------------------

    def _decode(self, data: bytes, name: str, key: str) -> Any:
        """The value of the document ``data`` read from ``name``, which must hold ``key``."""
        typed = self._typed
        if typed is not None:  # one parse, as the type (decode_document's if need be)
            value = typed.read(data, key)
            if value is not _schema.SLOW:
                return value
        try:
            found, value = _format.decode_document(data, name)
        except CorruptError:  # again, to name the file in full (the hot path skips it)
            found, value = _format.decode_document(data, self._where(name))
        if found != key:
            where = self._where(name)
            _format.check_document_name(found, where, name.rpartition("/")[2])
            raise CorruptError(f"{where}: holds key {found!r:.80}, not {key!r:.80}", where)
        if typed is not None:
            return typed.decode(data, key, value, self._where(name))
        return value

    def _read_doc(self, name: str, typed: bool = False) -> tuple[str, Any]:
        """(key, value) of the document ``name`` found by listing: the key must
        hash to the name. FileNotFoundError if it is gone. ``typed``: the
        value as the store's value_type."""
        return self._parse_doc(name, self._storage.read(name), typed)

    def _parse_doc(self, name: str, data: bytes, typed: bool = False) -> tuple[str, Any]:
        """(key, value) of the bytes of the document ``name`` found by
        listing: the key must hash to the name. ``typed``: the value as the
        store's value_type."""
        where = self._where(name)
        key, value = _format.decode_document(data, where)
        _format.check_document_name(key, where, name.rpartition("/")[2])
        if typed and self._typed is not None:
            value = self._typed.decode(data, key, value, where)
        return key, value

    # -- what a write must meet ----------------------------------------------------

    def _encode_body(self, label: str, value: Any) -> bytes:
        """``value`` checked and encoded, held to the store's schema if it has one."""
        if self._guard is None:
            return _format.encode_value(value)
        return self._guard.encode(label, value)

    def _encode_document(self, key: str, value: Any) -> bytes:
        if self._guard is None:
            return _format.encode_document(key, value)
        return _format.document(_format.validate_key(key), self._guard.encode(key, value))

    def _fetch(self, key: str, name: str) -> Any:
        """The value of ``key``, as this thread must see it: the batch's own
        writes first (its owner only), then writeback memory, then storage.
        FileNotFoundError if there is none."""
        buf = self._active()
        if buf is not None:
            kept = buf.kept.get(key) if self._writeback else None
            if kept is not None:
                return kept.value
            if name in buf.writes:
                data = buf.data(name)
                if data is None:
                    raise FileNotFoundError(name)
                value = self._decode(data, name, key)
                if self._writeback:
                    buf.kept[key] = _Kept(value, data)
                return value
        if self._writeback:
            kept = self._kept.get(key)
            if kept is not None:
                return kept.value
        if buf is not None and buf.journal is not None and buf.journal.tracking:
            data = self._read_tracked(buf.journal, name)
        else:
            data = self._storage.read(name)
        value = self._decode(data, name, key)
        if self._writeback:
            (buf.kept if buf is not None else self._kept)[key] = _Kept(value, data)
        return value

    def _has(self, key: str, name: str) -> bool:
        """Whether ``key``'s file exists, as this thread must see it."""
        buf = self._active()
        if buf is not None:
            if name in buf.writes:
                return buf.writes[name] is not None
            if key in buf.kept:
                return True
        if self._writeback and key in self._kept:
            return True
        if buf is not None and buf.journal is not None and buf.journal.tracking:
            version = self._storage.version(name)
            buf.journal.saw(name, version)
            return version is not None
        return self._storage.exists(name)

    def _cached_file(
        self, name: str, cached: _Cached | None, parse: Callable[[bytes], Any]
    ) -> _Cached:
        """``name`` as it is now: ``cached`` while its version is unchanged,
        else read again (and parsed again only if the bytes changed)."""
        got = self._storage.read_if_changed(name, None if cached is None else cached.version)
        if got is None:
            assert cached is not None
            return cached
        data, version = got
        if cached is not None and cached.data == data:
            return _Cached(version, data, cached.parsed)
        return _Cached(version, data, parse(data))

    # -- the write path ------------------------------------------------------------

    def _active(self) -> _Buffer | None:
        """This thread's batch buffer, or None: the one test of "am I in a batch"."""
        buf = self._buffer
        if buf is not None and buf.owner == threading.get_ident():
            return buf
        return None

    def _put(self, entries: list[tuple[str, str, Any, bytes]]) -> None:
        """Write (key, name, value, document bytes) entries: to this thread's batch, or now."""
        buf = self._buffer  # _active() inline: every set
        if buf is not None and buf.owner == threading.get_ident():
            journal = buf.journal
            if journal is not None and len(entries) > 1 and self._storage.parallelism() > 1:
                journal.read_before(name for _, name, _, _ in entries)  # many GETs at once
            for key, name, value, data in entries:
                buf.put(name, key, data)
                if self._writeback:
                    buf.kept[key] = _Kept(self._keepable(key, value, data), data)
            return
        if len(entries) > 1:  # all or nothing: one transaction
            with self.transaction():
                self._put(entries)
            return
        # One file: the rename is the commit, the last writer wins: a shared lock is enough
        # (taken by the storage's write_plain where it makes the whole write in one frame).
        if not (self._ready_to_write and self._storage.write_plain(entries[0][1], entries[0][3])):
            self._lock_for_write(False)
            try:
                self._storage.write(entries[0][1], entries[0][3])
            finally:
                self._storage.release()
        if self._writeback:
            key, _, value, data = entries[0]
            self._kept[key] = _Kept(self._keepable(key, value, data), data)

    def _keepable(self, key: str, value: Any, data: bytes) -> Any:
        """What writeback memory keeps of ``value``, written as ``data``."""
        return value if self._typed is None else self._typed.kept(key, value, data)

    def _forget(self, key: str) -> None:
        """Drop ``key`` from writeback memory (it was removed)."""
        buf = self._active()
        if buf is not None:
            buf.kept.pop(key, None)
        else:
            self._kept.pop(key, None)

    # -- life cycle --------------------------------------------------------------

    @property
    def path(self) -> Path | str:
        """The store's directory as given (a URL string for object storage)."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Write back changed values (writeback mode), then release the store's
        resources. Closing twice is allowed; closing inside a batch is not (the
        batch would commit through a released lock)."""
        if self._active() is not None:
            raise Error(f"{self._root}: close() inside a batch; close after the block", self._root)
        if not self._closed:
            try:
                if self._writeback:
                    self.sync()
            finally:
                self._closed = True
                self._storage.close()

    _ready_to_write = False

    def watch(self, *, poll: float | None = None, native: bool | None = None) -> Watcher:
        """Every change to the store, from any source, as it lands::

            for change in db.watch():
                print(change.key, change.value)

        OS events where there are some (the ``watch`` extra), else polling
        every ``poll`` seconds; a burst may be reported once with its final
        value, and the last change reported is always the store's state.
        Stop it with ``close()``, ``with``, or by leaving the loop.
        docs/watch.md has the semantics and what each path costs.
        """
        from sos.watch.watcher import watch

        self._check_open()
        return watch(self, poll=poll, native=native)

    def awatch(self, *, poll: float | None = None, native: bool | None = None) -> AsyncWatcher:
        """As :meth:`watch`, for ``async for change in db.awatch()``."""
        from sos.watch.watcher import awatch

        self._check_open()
        return awatch(self, poll=poll, native=native)

    def sync(self) -> None:
        """Writeback mode: write the values whose JSON changed since they were
        read, as one batch, then forget the kept values so changes made by
        others are seen again. Without writeback every write is already on
        disk and this does nothing.
        """
        self._check_open()
        if not self._writeback:
            return
        if self._active() is not None:
            raise Error(
                f"{self._root}: sync() inside a batch; the batch commits on exit", self._root
            )
        with self.batch():
            pass
        self._kept.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"operation on closed store {self._root}", self._root)

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as "open this store again": a child process (multiprocessing)
        reopens it by path, with the same writeback setting."""
        if self._typed is not None:
            return (
                _reopen_typed,
                (
                    type(self),
                    self._path,
                    self._typed.value_type,
                    self._storage_options,
                    self._writeback,
                ),
            )
        return (_reopen, (type(self), self._path, self._writeback, self._storage_options))

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"sos.{type(self).__name__}({self._root!r}){state}"

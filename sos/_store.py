"""What Dict and List share: the store's storage, its one write path, its caches.

``Store`` owns everything about writing that is not about keys or order:

- the **buffer** of a batch: one object, owned by the thread that opened the
  batch and seen by no other thread, handle or process until it commits;
- the **writeback memory** (:class:`_Kept`: the value handed out and the
  bytes it was read from) and the one comparison that says whether a kept
  value changed;
- the **cache policy**: memories keyed by name are bounded (emptied when
  full); a file's cached content is trusted only while its storage version
  is unchanged.

Dict and List supply what differs: how a key maps to a file name, and the
List's order manifest. Every byte goes through a :class:`~sos._storage.Storage`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _atomic, _format
from ._errors import ClosedError, CorruptError, Error, NotDurableError
from ._storage import RESERVED_DIR, Storage, Version, open_storage, scheme_of
from ._txn import Journal, Unapplied, pending, recover

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._watch import AsyncWatcher, Watcher

__all__ = ["Store", "StrPath", "read_kind"]

StrPath = str | os.PathLike[str]

K = TypeVar("K")
V = TypeVar("V")

# Errors that say "nothing can be written here now": a recovery at open that
# meets one leaves its record for later instead of failing the open.
_CANNOT_WRITE = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EACCES", "EPERM")
    if hasattr(errno, name)
)

# Memories keyed by name or index are emptied when they reach this size:
# bounded memory on any store.
CACHE_LIMIT = 1 << 16


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


def _read_kind(storage: Storage, path: str) -> str | None:
    meta = storage.url + "/" + _format.METADATA_NAME if scheme_of(path) else None
    try:
        data = storage.read(_format.METADATA_NAME)
    except FileNotFoundError:
        if scheme_of(path) is None and os.path.lexists(path) and not os.path.isdir(path):
            raise Error(f"{path}: is a file, not a store directory", path) from None
        return None
    except NotADirectoryError:
        if os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise Error(f"{path}: is a file, not a store directory", path) from None
        raise Error(f"{path}: a parent of the store is a file", path) from None
    if meta is None:
        meta = os.path.join(path, _format.METADATA_NAME)
    return _format.decode_metadata(data, meta)


def read_kind(path: StrPath) -> str | None:
    """The kind named by the store's metadata, or None where there is none.

    Raises :class:`Error` if ``path`` exists but is not a directory, and
    :class:`CorruptError` if the metadata file is damaged.
    """
    text = os.fspath(path)
    storage = open_storage(text)
    try:
        return _read_kind(storage, text)
    finally:
        storage.close()


def _reopen(cls: type[Store], path: StrPath, writeback: bool) -> Store:
    return cls(path, create=False, writeback=writeback)


class Store:
    """Base of Dict and List: a storage whose metadata file names its kind."""

    _kind: str = ""

    def __init__(self, path: StrPath, *, create: bool = True, writeback: bool = False) -> None:
        text = os.fspath(path)
        self._path: Path | str = text if scheme_of(text) else Path(path)
        self._root = text
        self._closed = True
        self._writeback = writeback
        self._storage: Storage = open_storage(text)
        self._where_prefix = self._storage.url.rstrip("/") + "/"
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
            pin = getattr(self._storage, "pin", None)
            if pin is not None:
                pin()
            self._recover_if_free()
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
            # Their names must be durable before the metadata's: renames in one
            # directory may reach the disk in any order, and a List whose
            # sos.json survived a power cut without its order.txt is unreadable.
            self._storage.write_many(files)
            # The metadata comes last and alone: a store exists once it is durable.
            self._storage.write(_format.METADATA_NAME, _format.encode_metadata(self._kind))

    def _recover_if_free(self) -> None:
        """At open: finish a record left by a crash, if no one holds the lock
        (a live transaction's record is its own business: never wait on it).
        One stat when there is none."""
        if pending(self._storage) and self._storage.acquire(exclusive=True, blocking=False):
            try:
                recover(self._storage)
            except OSError as exc:
                # No room (a full disk, a quota) or no right to write: opening
                # to read must still work. The record stays, finished by the
                # next write (which then reports what stops it) or open.
                if exc.errno not in _CANNOT_WRITE:
                    raise
            finally:
                self._storage.release()

    @contextlib.contextmanager
    def _writing(self, exclusive: bool = True) -> Iterator[None]:
        """Hold the store's lock for a write, after finishing any pending
        transaction record: a record outlives its transaction only through a
        crash, and recovery can never overwrite a change made after it."""
        storage = self._storage
        if storage.held():
            with storage.lock(exclusive):
                yield
            return
        if not self._ready_to_write:
            storage.prepare_for_writing()
            self._ready_to_write = True
        storage.acquire(exclusive)
        held = True  # a failed re-acquire must not be released (the real error shows)
        try:
            if pending(storage):
                if not exclusive:  # recovery needs the store to itself
                    storage.release()
                    held = False
                    storage.acquire(True)
                    held = True
                    try:
                        recover(storage)
                    finally:
                        storage.release()
                        held = False
                    storage.acquire(False)
                    held = True
                else:
                    recover(storage)
            yield
        finally:
            if held:
                storage.release()

    def _is_claimable(self) -> bool:
        """True if the root holds nothing but what a half-made store leaves."""
        for name in self._storage.list(""):
            if name in _format.SUPPORT_FILES or name == _format.ORDER_NAME:
                continue
            if _atomic.is_temp_name(name):
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
        try:
            found, value = _format.decode_document(data, name)
        except CorruptError:  # again, to name the file in full (the hot path skips it)
            found, value = _format.decode_document(data, self._where(name))
        if found != key:
            where = self._where(name)
            _format.check_document_name(found, where, name.rpartition("/")[2])
            raise CorruptError(f"{where}: holds key {found!r:.80}, not {key!r:.80}", where)
        return value

    def _read_doc(self, name: str) -> tuple[str, Any]:
        """(key, value) of the document ``name`` found by listing: the key must
        hash to the name. FileNotFoundError if it is gone."""
        data = self._storage.read(name)
        where = self._where(name)
        key, value = _format.decode_document(data, where)
        _format.check_document_name(key, where, name.rpartition("/")[2])
        return key, value

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
        """Write (key, name, value, document bytes) entries: into this thread's
        batch, or to storage now (durable when it returns)."""
        buf = self._active()
        if buf is not None:
            for key, name, value, data in entries:
                buf.put(name, key, data)
                if self._writeback:
                    buf.kept[key] = _Kept(value, data)
            return
        if len(entries) > 1:  # all or nothing: one transaction
            with self.transaction():
                self._put(entries)
            return
        # One file: the rename is the commit and the last writer wins, so a
        # shared lock is enough; writers in other processes do not wait.
        with self._writing(exclusive=False):
            self._storage.write(entries[0][1], entries[0][3])
        if self._writeback:
            for key, _, value, data in entries:
                self._kept[key] = _Kept(value, data)

    def _forget(self, key: str) -> None:
        """Drop ``key`` from writeback memory (it was removed)."""
        buf = self._active()
        if buf is not None:
            buf.kept.pop(key, None)
        else:
            self._kept.pop(key, None)

    def _changed(self, kept: dict[str, _Kept]) -> list[tuple[str, bytes]]:
        """(key, new bytes) of each kept value whose JSON changed since it was read.

        The one changed-value comparison: the bytes it would be written as
        against the bytes it came from; a hand-formatted file holds the same
        JSON in other bytes, which is not a change.
        """
        changed = []
        for key, entry in kept.items():
            new = _format.encode_document(key, entry.value)
            if new == entry.data:
                continue
            old = _format.decode_document(entry.data, self._where(self._name(key)))[1]
            if _format.encode_document(key, old) != new:
                changed.append((key, new))
        return changed

    def _all_kept(self, buf: _Buffer) -> dict[str, _Kept]:
        """Writeback memory as the batch's owner sees it."""
        if not buf.kept:
            return self._kept
        return {**self._kept, **buf.kept}

    def _apply(self, buf: _Buffer) -> None:
        """Commit a batch's buffer to storage (the lock is held)."""
        raise NotImplementedError

    def _begin(self, buf: _Buffer) -> None:
        """Prepare a new batch buffer (the lock is held)."""

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

    @contextlib.contextmanager
    def batch(self) -> Iterator[Self]:
        """Buffer the writes of a block and commit them together (group commit).

        Inside the block, writes go to a buffer that belongs to the thread
        running the block: its reads see them, no other thread, handle or
        process does until the block ends. When it ends normally, every
        buffered file is written and fsynced in parallel, each directory is
        fsynced once and (for a List) the manifest is replaced once; all of it
        is durable when the ``with`` statement returns. If the block raises,
        the buffer is discarded and the store is untouched. The store's lock
        is held for the whole block (other writers wait; readers never do).
        Nested batches join the outermost one.

        After a crash during the commit, each Dict key holds its old or its
        new value: the batch as a whole is not atomic. A List shows its old
        or its new sequence (the manifest is the commit point).
        """
        self._check_open()
        if self._active() is not None:
            yield self
            return
        with self._writing(exclusive=True):
            buf = _Buffer()
            self._begin(buf)
            self._buffer = buf
            try:
                yield self
            finally:
                self._buffer = None
            self._apply(buf)
            self._merge_kept(buf)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Self]:
        """A consistent read of the whole store: no transaction or compound
        change (a List change, ``pop``, ``update`` …) can commit while the
        block runs, so an iteration inside it never mixes a transaction's
        before and after. Single-key writes still land, each whole. Takes
        the store's shared lock: it writes nothing (a read-only store is
        fine), and other readers never wait. ``sos dump`` reads this way.
        """
        self._check_open()
        with self._storage.lock(exclusive=False):
            yield self

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Self]:
        """Make the block's changes all or nothing, with the store to yourself.

        The store's exclusive lock is held for the whole block, so a
        read-modify-write inside it is safe across threads and processes::

            with counter.transaction():
                counter["n"] = counter.get("n", 0) + 1

        Reads inside the block see its writes; no other thread, handle or
        process sees any of them until it commits. If the block raises,
        nothing is written. When it ends, its changes are committed through
        one durable intent record (docs/format.md, "Transactions"): after a
        crash at any instant, every file it changes holds its old bytes or
        every one its new bytes, once the store is next opened or written.
        Staged bytes go to disk as the block runs, so a huge transaction
        needs little memory.

        Not nestable (a transaction or batch already open in this thread is
        an error); other threads sharing the handle wait for it, as for any
        lock; ``close()`` inside is an error.
        """
        self._check_open()
        if self._active() is not None:
            raise Error(
                f"{self._root}: a transaction or batch is already open in this thread; "
                "transactions do not nest",
                self._root,
            )
        with self._writing(exclusive=True):
            journal = Journal(self._storage)
            buf = _Buffer(journal)
            self._begin(buf)
            self._buffer = buf
            try:
                yield self
            except BaseException:
                self._buffer = None
                journal.discard()
                raise
            try:  # before the commit point: a failure leaves the store as it was
                self._close_journal(buf)
                if len(journal):
                    self._prepare_transactions()
                    journal.commit()
            except BaseException:
                self._buffer = None
                with contextlib.suppress(OSError):
                    journal.discard()
                raise
            self._buffer = None
            if len(journal):
                self._after_commit()
                try:
                    journal.finish(journal.apply())
                except Unapplied as exc:
                    # No file was touched (the disk is full, say): take the
                    # commit point back, and the transaction did not happen.
                    try:
                        journal.withdraw()
                    except Exception as again:
                        raise NotDurableError(
                            f"{self._root}: the transaction committed, but applying it failed "
                            f"({exc}); the next write to the store, or opening it, finishes it",
                            self._root,
                        ) from again
                    raise exc.error from None
                except Exception as exc:
                    raise NotDurableError(
                        f"{self._root}: the transaction committed, but applying it failed "
                        f"({exc}); the next write to the store, or opening it, finishes it",
                        self._root,
                    ) from exc
            self._merge_kept(buf)

    def _close_journal(self, buf: _Buffer) -> None:
        """Add what the block's end decides (changed writeback values, a
        List's order) to the journal."""
        assert buf.journal is not None
        if self._writeback:
            for key, data in self._changed(self._all_kept(buf)):
                buf.put(self._name(key), key, data)
                entry = buf.kept.get(key) or self._kept.get(key)
                if entry is not None:
                    entry.data = data

    def _after_commit(self) -> None:
        """Called once a transaction's record is durable."""

    def _merge_kept(self, buf: _Buffer) -> None:
        if not self._writeback:
            return
        for name, data in buf.writes.items():
            if data is None:  # removed by the batch: no longer kept
                self._kept.pop(buf.keys[name], None)
        for item_id in buf.removed:
            self._kept.pop(item_id, None)
        self._kept.update(buf.kept)

    _prepared = False
    _ready_to_write = False

    def _prepare_transactions(self) -> None:
        """Before the first transaction of a handle: a store whose metadata
        says format 1 is raised to 2 (an older sos must not open a store that
        may hold a pending record: it would ignore it), and support files are
        brought up to date (.gitignore and .rsync-filter exclude .sos/)."""
        if self._prepared:
            return
        storage = self._storage
        try:
            data = storage.read(_format.METADATA_NAME)
        except FileNotFoundError:
            raise Error(
                f"{self._where(_format.METADATA_NAME)}: missing; the store was removed or "
                "replaced while open (open it again)",
                self._root,
            ) from None
        meta = _format.parse_json(data, self._where(_format.METADATA_NAME), "metadata")
        if meta.get("format", 1) < _format.TRANSACTION_FORMAT:
            stale = [
                (name, content)
                for name, content in _format.SUPPORT_FILES.items()
                if _read_or_none(storage, name) != content
            ]
            if stale:
                storage.write_many(stale)
            storage.write(
                _format.METADATA_NAME,
                _format.encode_metadata(self._kind, _format.TRANSACTION_FORMAT),
            )
        self._prepared = True

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
        from ._watch import watch

        self._check_open()
        return watch(self, poll=poll, native=native)

    def awatch(self, *, poll: float | None = None, native: bool | None = None) -> AsyncWatcher:
        """As :meth:`watch`, for ``async for change in db.awatch()``."""
        from ._watch import awatch

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
        return (_reopen, (type(self), self._path, self._writeback))

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"sos.{type(self).__name__}({self._root!r}){state}"


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

"""Batches and transactions: the blocks that buffer a store's writes and commit them together."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sos import format as _format
from sos import txn as _txn
from sos.core import schema as _schema
from sos.core.buffers import _Buffer, _Kept, _read_or_none
from sos.errors import ConflictError, Error, NotDurableError
from sos.storage.base import Storage
from sos.txn import Journal, Unapplied
from sos.txn.journal import read_versioned_many

if TYPE_CHECKING:
    from typing_extensions import Self


T = TypeVar("T")
R = TypeVar("R")


class TransactionBlock(Generic[T]):
    """What ``transaction()`` returns: a ``with`` block, or a decorator that
    re-runs its function on :class:`~sos.ConflictError` up to ``retries`` times."""

    def __init__(
        self,
        store: T,
        begin: Callable[[], contextlib.AbstractContextManager[T]],
        retries: int,
    ) -> None:
        self._store = store
        self._begin = begin
        self._retries = retries
        self._block: contextlib.AbstractContextManager[T] | None = None

    def __enter__(self) -> T:
        if self._retries:
            raise Error(
                "transaction(retries=N) re-runs a function and cannot re-run a with "
                "block: decorate a function with @db.transaction(retries=N), or catch "
                "sos.ConflictError",
                None,
            )
        self._block = self._begin()
        return self._block.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._block is not None
        block, self._block = self._block, None
        return block.__exit__(kind, exc, tb)

    def __call__(self, function: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> R:
            for attempt in range(self._retries + 1):
                try:
                    with self._begin():
                        return function(*args, **kwargs)
                except ConflictError:
                    if attempt == self._retries:
                        raise
            raise AssertionError("unreachable")

        return run


class Transactions:
    """The batch, reading and transaction blocks of a :class:`~sos.core.store.Store`.

    A mixin, so the store's life cycle and its all-or-nothing blocks can be
    read apart; the store supplies the storage, the lock and the buffers
    declared here.
    """

    _storage: Storage
    _root: str
    _kind: str
    _buffer: _Buffer | None
    _kept: dict[str, _Kept]
    _writeback: bool
    _typed: _schema.Typed | None
    _guard: _schema.Guard | None
    # Whether this handle's first transaction has removed what a crashed
    # one left in .sos/ (sos.txn.sweep): once per handle, not per transaction.
    _swept = False

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

        def _active(self) -> _Buffer | None: ...

        def _writing(self, exclusive: bool = True) -> contextlib.AbstractContextManager[None]: ...

        def _name(self, key: str) -> str: ...

        def _where(self, name: str) -> str: ...

        def _encode_document(self, key: str, value: Any) -> bytes: ...

    def _changed(self, kept: dict[str, _Kept]) -> list[tuple[str, bytes]]:
        """(key, new bytes) of each kept value whose JSON changed since it was read.

        The one changed-value comparison: the bytes it would be written as
        against the bytes it came from; a hand-formatted file holds the same
        JSON in other bytes, which is not a change.
        """
        changed = []
        typed = self._typed
        for key, entry in kept.items():
            if typed is None:
                new = _format.encode_document(key, entry.value)
            else:  # the value as the type dumps it; checked below if it changed
                new = _format.document(_format.validate_key(key), typed.dump(entry.value))
            if new == entry.data:
                continue
            old = _format.decode_document(entry.data, self._where(self._name(key)))[1]
            if _format.encode_document(key, old) != new:
                # Held to the store's schema.json, as every write is (only a change).
                changed.append((key, self._encode_document(key, entry.value)))
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

    def _forget_probes(self) -> None:
        """A batch or transaction just began (``_buffer`` is set): drop what
        answers reads from the disk alone (a Dict's ``in``), which must now
        see the block's own writes."""

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
            self._forget_probes()
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

    def transaction(self, retries: int = 0) -> TransactionBlock[Self]:
        """Make the block's changes all or nothing, with the store to yourself.

        Also a decorator: ``@db.transaction(retries=3)`` runs the function in
        a transaction and, on :class:`~sos.ConflictError` (object storage:
        another client wrote a key the transaction read), runs it again, up
        to ``retries`` more times. A ``with`` block cannot be re-run, so
        ``retries`` is refused there.

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
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        return TransactionBlock(self, self._transaction, retries)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Self]:
        self._check_open()
        if self._active() is not None:
            raise Error(
                f"{self._root}: a transaction or batch is already open in this thread; "
                "transactions do not nest",
                self._root,
            )
        with self._writing(exclusive=True):
            if not self._swept:
                self._swept = True
                # Best effort: what cannot be removed stays for sos check to report.
                with contextlib.suppress(OSError):
                    _txn.sweep(self._storage)
            journal = Journal(self._storage)
            buf = _Buffer(journal)
            self._begin(buf)
            self._buffer = buf
            self._forget_probes()
            try:
                yield self
            except BaseException:
                self._buffer = None
                journal.discard()
                raise
            try:  # before the commit point: a failure leaves the store as it was
                self._close_journal(buf)
                journal.check_versions()  # object storage: did another client write?
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

    def migrate(
        self, fn: Callable[[Any], Any], value_type: Any, *, progress: _schema.Progress = None
    ) -> None:
        """Convert every value with ``fn`` (old JSON value -> new JSON value)
        and adopt ``value_type``'s schema, in one transaction: after a crash
        the store holds every old value and the old schema, or every new
        value and the new one. A value ``value_type`` rejects raises
        :class:`ValidationError` and changes nothing. The handle is typed
        with ``value_type`` afterwards. ``progress`` as for :func:`sos.check`."""
        self._check_open()
        typed = _schema.Typed(value_type)
        with self._writing():
            _schema.raise_format(self._storage)
        with self.transaction():
            buf = self._active()
            assert buf is not None and buf.journal is not None
            names = list(self._stored_names())
            documents = self._read_all_tracked(buf.journal, names)
            _schema.migrate(documents, len(names), buf.put, fn, typed, self._where, progress)
            if buf.journal.tracking:  # object storage: a plain set may have added a key
                self._refuse_added(names)
            buf.journal.add(_format.SCHEMA_NAME, typed.schema_bytes)  # the same commit
        self._typed, self._guard = typed, _schema.Guard(typed.schema_bytes, typed)

    def _refuse_added(self, migrated: list[str]) -> None:
        """:class:`~sos.ConflictError` if a value was added since ``migrated``
        was listed (another client's plain set, which waits for no lease on
        object storage): it would keep its old type under the new schema."""
        added = sorted(set(self._stored_names()) - set(migrated))
        if added:
            where = self._where(added[0])
            raise ConflictError(
                f"{where}: added by another client while the migration ran "
                f"({len(added)} file(s)); nothing was written, run it again",
                where,
            )

    def _stored_names(self) -> Iterator[str]:
        """The file of every value, for :meth:`migrate`."""
        raise NotImplementedError

    def _read_all_tracked(
        self, journal: Journal, names: list[str]
    ) -> Iterator[tuple[str, bytes | None]]:
        """(name, bytes or None if missing) of each of ``names``, to be
        replaced, read ahead through the storage's pool. Each version is noted
        where the transaction must re-check what it read (object storage: a
        plain set made after the read aborts the commit), and each file's
        before-bytes for the record, so replacing it reads nothing more."""
        for name, data, version in read_versioned_many(self._storage, names, journal.tracking):
            journal.note_read(name, data, version)
            yield name, data

    def _read_tracked(self, journal: Journal, name: str) -> bytes:
        """Read ``name`` inside a transaction that must re-check what it read
        (object storage): its version is noted in the journal, absent too."""
        try:
            data, version = self._storage.read_versioned(name)
        except FileNotFoundError:
            journal.note_read(name, None, None)
            raise
        journal.note_read(name, data, version)
        return data

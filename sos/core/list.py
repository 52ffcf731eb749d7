"""sos.List: a MutableSequence of JSON values, one file per item, order in a manifest."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableSequence
from typing import Any, TypeVar, overload

from sos import format as _format
from sos.core.buffers import Bounded, _Buffer, _Cached, _Kept, cleanup, hand_back
from sos.core.ids import IdMaker
from sos.core.indexes import _as_index, _normalize
from sos.core.kinds import StrPath
from sos.core.manifest import Manifest
from sos.core.readahead import GONE
from sos.core.store import Store
from sos.errors import CorruptError, NotDurableError
from sos.format.order import HEADER, Order

__all__ = ["List"]

V = TypeVar("V")


class List(Store, Manifest, MutableSequence[V]):
    """A persistent list: each item one JSON file, the order in ``order.txt``.

    Behaves like ``list`` (indexes, slices with steps, ``insert`` anywhere,
    ``sort``, ``reverse`` …) and compares equal to a ``list`` with the same
    items. Every mutation is on disk when it returns: new item files are made
    durable first, then the manifest is replaced atomically, then removed
    items' files are unlinked, so a crash leaves the old or the new sequence.
    Operations on many items rewrite the manifest once.

    Values are copies: ``lst[0].append(1)`` changes nothing on disk; assign
    the item back (``lst[0] = changed``), or open with ``writeback=True`` (as
    for :class:`Dict`). ``with lst.batch():`` makes many changes with one
    manifest write, atomically.

    ``value_type`` makes a typed list, a ``List[T]``, as for :class:`Dict`
    (docs/typed.md).
    """

    _kind = "list"

    # Untyped: List[Any]; typed by a class: List[C]; by another type: sos.List[int | None](…)
    @overload
    def __init__(self: List[Any], path: StrPath, *, create: bool = ..., writeback: bool = ...,
                 storage_options: dict[str, Any] | None = ...) -> None: ...
    @overload
    def __init__(self: List[V], path: StrPath, *, value_type: type[V], create: bool = ...,
                 writeback: bool = ..., update_schema: bool = ...,
                 storage_options: dict[str, Any] | None = ...) -> None: ...
    @overload
    def __init__(self: List[V], path: StrPath, *, value_type: Any, create: bool = ...,
                 writeback: bool = ..., update_schema: bool = ...,
                 storage_options: dict[str, Any] | None = ...) -> None: ...

    def __init__(self, path: StrPath, *, create: bool = True, writeback: bool = False,
                 value_type: Any = None, update_schema: bool = False,
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(path, create=create, writeback=writeback, value_type=value_type,
                         update_schema=update_schema, storage_options=storage_options)
        self._order_where = self._where(_format.ORDER_NAME)
        self._cached: _Cached | None = None
        self._ids = IdMaker()
        # lst[i] on an unchanged order: index -> (item id, its file name), for
        # the Order object it was computed from (a new order drops it).
        self._slots: Bounded[int, tuple[str, str]] = Bounded()
        self._slots_order: Order | None = None

    def _initial_files(self) -> list[tuple[str, bytes]]:
        return [(_format.ORDER_NAME, HEADER)]

    # -- the manifest ---------------------------------------------------------

    def _read_item(self, item_id: str) -> Any:
        return self._fetch(item_id, self._name(item_id))

    def _commit(
        self,
        old: Order,
        new: Order,
        written: Iterable[tuple[str, Any, bytes]] = (),
        removed: Iterable[str] = (),
        fresh: bool = False,
    ) -> None:
        """Items first (durable), then the manifest, then unlink what left it.

        ``written`` holds (item id, value, :func:`_format.encode_value` of it):
        values are checked and encoded before the lock is taken. A crash
        leaves the old or the new manifest and at worst orphan item files,
        never a manifest naming a missing item.
        """
        entries = [(i, self._name(i), v, _format.document(i, body)) for i, v, body in written]
        gone = list(removed)
        buf = self._active()
        if buf is not None:  # buffered until the batch ends
            for item_id, name, value, data in entries:
                buf.put(name, item_id, data)
                if self._writeback:
                    buf.kept[item_id] = _Kept(self._keepable(item_id, value, data), data)
            buf.removed.extend(gone)
            buf.order = new
            for item_id in gone:
                buf.kept.pop(item_id, None)
            return
        self._write(old, new, [(name, data) for _, name, _, data in entries], gone, fresh)
        if self._writeback:
            for item_id, _, value, data in entries:
                self._kept[item_id] = _Kept(self._keepable(item_id, value, data), data)
            for item_id in gone:
                self._kept.pop(item_id, None)

    def _write(
        self, old: Order, new: Order, entries: list[tuple[str, bytes]], gone: list[str],
        fresh: bool = False,
    ) -> None:
        """Item files, then the manifest (the commit point), then cleanup.

        What fails before the manifest's rename changed nothing and is raised
        as it is; what fails after it (the unlinks of removed items) is
        cleanup, never an error: an orphan is harmless.
        """
        try:
            if entries:
                try:
                    if fresh:  # ids just made (extend, insert): no old file's mode to keep
                        self._storage.write_new_many(entries)
                    else:
                        self._storage.write_many(entries)
                except NotDurableError as exc:  # not committed: the manifest is the commit
                    raise (exc.__cause__ or exc) from None
            if new != old:
                if self._storage.appends_without_lock():
                    self._swap_order(old, new)
                else:
                    self._write_order(old, new)
        except BaseException:
            self._cached = None
            self._drop_unnamed([name for name, _ in entries])
            raise
        if not gone:
            return
        # A merged manifest may name an id twice: keep a file still named.
        gone = [i for i in gone if not new.contains(i)]
        cleanup(self._storage, [self._name(i) for i in gone])

    # -- batches and writeback (see Store.batch and Store.sync) -----------------

    def _begin(self, buf: _Buffer) -> None:
        journal = buf.journal
        if journal is None or not journal.tracking:
            buf.base = buf.order = self._order()
            return
        # Where other writers do not wait for the lock: the order and the
        # version it was read at, from one read (another thread of this
        # handle may append meanwhile), re-checked and marked before the
        # transaction's commit point.
        cached = self._read_order()
        buf.base = buf.order = cached.parsed
        journal.saw(_format.ORDER_NAME, cached.version)

    def _apply(self, buf: _Buffer) -> None:
        """Items written and kept values changed in one group commit, one manifest write.

        An item the batch replaces gets a fresh id, so no file the old
        manifest names changes: the manifest is the one commit point, and a
        crash leaves the old or the new sequence.
        """
        base: Order = buf.base
        new: Order = buf.order
        items = {buf.keys[name]: data for name, data in buf.writes.items() if data is not None}
        in_new = new.contains
        # An item added then removed inside the batch is never written.
        entries = {i: data for i, data in items.items() if in_new(i)}
        kept = self._all_kept(buf)
        if self._writeback:
            listed = new.contains
            # An item removed meanwhile (by another process) is not brought back.
            entries.update((i, data) for i, data in self._changed(kept) if listed(i))
        removed = list(buf.removed)
        in_base = base.contains
        replaced = [i for i in entries if in_base(i)]
        if replaced:
            fresh = dict(zip(replaced, self._ids.make(len(replaced)), strict=True))
            new = Order.from_ids(fresh.get(i, i) for i in new)
            for old_id, new_id in fresh.items():
                name = self._name(old_id)
                value = _format.decode_document(entries.pop(old_id), self._where(name))[1]
                entries[new_id] = _format.encode_document(new_id, value)
                entry = buf.kept.pop(old_id, None) or self._kept.pop(old_id, None)
                if entry is not None:
                    buf.kept[new_id] = _Kept(entry.value, b"")
            removed.extend(replaced)
        self._write(base, new, [(self._name(i), d) for i, d in entries.items()], removed)
        for item_id, data in entries.items():
            entry = buf.kept.get(item_id) or self._kept.get(item_id)
            if entry is not None:
                entry.data = data

    def _close_journal(self, buf: _Buffer) -> None:
        """A transaction's end: changed writeback items, items that left the
        order, and the new manifest go into its journal."""
        journal = buf.journal
        assert journal is not None
        new: Order = buf.order
        if self._writeback:
            kept = self._all_kept(buf)
            listed = new.contains
            for item_id, data in self._changed(kept):
                if listed(item_id):
                    buf.put(self._name(item_id), item_id, data)
                    entry = buf.kept.get(item_id) or self._kept.get(item_id)
                    if entry is not None:
                        entry.data = data
        in_new = new.contains
        for name, item_id in list(buf.keys.items()):
            if buf.writes[name] is not None and not in_new(item_id):
                buf.put(name, item_id, None)  # added, then removed again
        for item_id in dict.fromkeys(buf.removed):
            if not in_new(item_id):
                journal.add(self._name(item_id), None)
        if new != buf.base:
            journal.add(_format.ORDER_NAME, new.encode())

    def _after_commit(self) -> None:
        self._cached = None

    # -- reads ----------------------------------------------------------------

    def __len__(self) -> int:
        self._check_open()
        return len(self._order())

    @overload
    def __getitem__(self, index: int) -> V: ...

    @overload
    def __getitem__(self, index: slice) -> list[V]: ...

    def __getitem__(self, index: int | slice) -> V | list[V]:
        # The hot path, kept short: lst[i] is one stat of the manifest, one
        # dict lookup (index -> item file, for this very order) and one read.
        if self._closed:
            self._check_open()
        if type(index) is not int:
            if isinstance(index, slice):
                order = self._order()
                return list(self._values(order.ids_at(range(len(order))[index])))
            index = _as_index(index)
        order = self._order()
        if order is not self._slots_order:
            self._slots = Bounded()
            self._slots_order = order
        item_id, name = self._slots.get(index) or self._slot(order, index)
        try:
            if self._writeback or self._buffer is not None:
                return self._fetch(item_id, name)  # type: ignore[no-any-return]
            return self._decode(self._storage.read(name), name, item_id)  # type: ignore[no-any-return]
        except FileNotFoundError:
            pass
        with self._storage.lock(exclusive=False):  # removed meanwhile: look again
            order = self._order()
            item_id = order.id_at(_normalize(index, len(order), "list index out of range"))
            return self._read_item_named(item_id)  # type: ignore[no-any-return]

    def _slot(self, order: Order, index: int) -> tuple[str, str]:
        """The id and file name of ``order[index]``, remembered for this order."""
        n = len(order)
        j = index + n if index < 0 else index
        if not 0 <= j < n:
            raise IndexError("list index out of range")
        item_id = order.id_at(j)
        return self._slots.remember(index, (item_id, self._name(item_id)))

    def _read_item_named(self, item_id: str) -> Any:
        """Read an item the manifest names; a missing file is corruption."""
        try:
            return self._read_item(item_id)
        except FileNotFoundError:
            raise CorruptError(
                f"{self._order_where}: names item {item_id}, but its file "
                f"{self._where(self._name(item_id))} is missing (sos check --repair drops it)",
                self._order_where,
            ) from None

    def _values(self, ids: Iterable[str]) -> Iterator[Any]:
        """Values of ``ids``, skipping items removed since ``ids`` was taken."""
        for item_id, value in self._read_ahead(ids):  # a bounded pool on object storage
            if value is not GONE:
                yield value
                continue
            with self._storage.lock(exclusive=False):  # writers held off
                if self._order().contains(item_id):
                    yield self._read_item_named(item_id)

    def __iter__(self) -> Iterator[Any]:
        self._check_open()
        return self._values(self._order())

    def __reversed__(self) -> Iterator[Any]:
        self._check_open()
        order = self._order()
        return self._values(order.ids_at(range(len(order) - 1, -1, -1)))

    def __contains__(self, value: object) -> bool:
        return any(item is value or item == value for item in self)

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        self._check_open()
        order = self._order()
        first, last, _ = slice(start, stop).indices(len(order))
        for offset, item in enumerate(self._values(order.ids_at(range(first, last)))):
            if item is value or item == value:
                return first + offset
        raise ValueError(f"{value!r:.80} is not in list")

    def count(self, value: Any) -> int:
        return sum(1 for item in self if item is value or item == value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, List):
            other = list(other)
        if not isinstance(other, list):
            return NotImplemented
        return len(self) == len(other) and list(self) == other

    __hash__ = None  # type: ignore[assignment]

    # -- writes ---------------------------------------------------------------

    def append(self, value: Any) -> None:
        self.extend([value])

    def extend(self, values: Iterable[Any]) -> None:
        """Append many items: item files in one group commit, one manifest rewrite."""
        self._check_open()
        values = list(values)
        bodies = [self._encode_body(f"values[{n}]", v) for n, v in enumerate(values)]
        if (
            values
            and self._storage.appends_without_lock()
            and self._active() is None
            and not self._storage.held()
        ):
            self._append_unlocked(values, bodies)
            return
        self._lock_for_write(True)  # self._writing(), without a generator's frames: every append
        try:
            order = self._order()
            ids = self._ids.make(len(values))
            end = len(order)
            written = zip(ids, values, bodies, strict=True)
            self._commit(order, order.splice(end, end, ids), written, fresh=True)
        finally:
            self._storage.release()

    def __iadd__(self, values: Iterable[V]) -> List[V]:
        self.extend(values)
        return self

    def insert(self, index: int, value: Any) -> None:
        self._check_open()
        i = _as_index(index)
        body = self._encode_body(f"[{i}]", value)
        with self._writing():
            order = self._order()
            n = len(order)
            i = max(0, i + n) if i < 0 else min(i, n)
            [item_id] = self._ids.make(1)
            self._commit(order, order.splice(i, i, [item_id]), [(item_id, value, body)], fresh=True)

    def __setitem__(self, index: int | slice, value: Any) -> None:
        self._check_open()
        if isinstance(index, slice):
            self._set_slice(index, value)
            return
        i = _as_index(index)
        body = self._encode_body(f"[{i}]", value)
        with self._writing():
            order = self._order()
            item_id = order.id_at(_normalize(i, len(order), "list assignment index out of range"))
            # Same id, new bytes: one atomic file replace, no manifest rewrite.
            self._commit(order, order, [(item_id, value, body)])

    def _set_slice(self, index: slice, values: Iterable[Any]) -> None:
        try:
            values = list(values)
        except TypeError:
            raise TypeError("can only assign an iterable") from None
        bodies = [self._encode_body(f"values[{n}]", v) for n, v in enumerate(values)]
        with self._writing():
            order = self._order()
            ids = order.ids()
            old_ids = ids[index]
            new_ids = self._ids.make(len(values))
            ids[index] = new_ids  # list's own rules and errors for slices
            written = zip(new_ids, values, bodies, strict=True)
            self._commit(order, Order.from_ids(ids), written, old_ids, fresh=True)

    def __delitem__(self, index: int | slice) -> None:
        self._check_open()
        with self._writing():
            order = self._order()
            if isinstance(index, slice):
                ids = order.ids()
                gone = ids[index]
                del ids[index]
                self._commit(order, Order.from_ids(ids), removed=gone)
                return
            i = _normalize(_as_index(index), len(order), "list assignment index out of range")
            self._commit(order, order.splice(i, i + 1, ()), removed=[order.id_at(i)])

    def pop(self, index: int = -1) -> Any:
        self._check_open()
        i = _as_index(index)
        with self._writing():
            order = self._order()
            if not order:
                raise IndexError("pop from empty list")
            i = _normalize(i, len(order), "pop index out of range")
            item_id = order.id_at(i)
            value = self._read_item_named(item_id)
            try:
                self._commit(order, order.splice(i, i + 1, ()), removed=[item_id])
            except NotDurableError as exc:  # the manifest no longer names it
                raise hand_back(exc, value) from exc.__cause__
            return value

    def remove(self, value: Any) -> None:
        self._check_open()
        with self._writing():
            try:
                i = self.index(value)
            except ValueError:
                raise ValueError("list.remove(x): x not in list") from None
            del self[i]

    def clear(self) -> None:
        self._check_open()
        with self._writing():
            order = self._order()
            self._commit(order, Order(), removed=order.ids())

    def reverse(self) -> None:
        """Reverse in place: the manifest's runs reversed, no item file touched."""
        self._check_open()
        with self._writing():
            order = self._order()
            self._commit(order, order.reversed())

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        """Stable sort, as ``list.sort``; only the manifest is rewritten."""
        self._check_open()
        with self._writing():
            order = self._order()
            ids = order.ids()
            values = [self._read_item_named(i) for i in ids]
            keys = values if key is None else [key(v) for v in values]
            positions = sorted(range(len(ids)), key=keys.__getitem__, reverse=reverse)
            self._commit(order, Order.from_ids(ids[p] for p in positions))

    def _stored_names(self) -> Iterator[str]:
        return (self._name(i) for i in self._order().ids())

    def path_of(self, index: int) -> str:
        """The file that holds the item at ``index`` now, for editors and grep.

        The item keeps its file while it is in the list (setting ``lst[i]``
        replaces that file); inserts and deletes move it to another index.
        """
        self._check_open()
        order = self._order()
        item_id = order.id_at(_normalize(_as_index(index), len(order), "list index out of range"))
        return self._where(self._name(item_id))


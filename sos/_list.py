"""sos.List: a MutableSequence of JSON values, one file per item, order in a manifest."""

from __future__ import annotations

import operator
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from typing import Any

from . import _atomic, _format
from ._errors import CorruptError
from ._order import HEADER, Order
from ._store import PATH_CACHE_LIMIT, Store, StrPath, read_file, read_value

__all__ = ["List"]

# A manifest is trusted by its stat (inode, size, mtime, ctime) only once it is
# older than the filesystem clock's granularity; a younger one is re-read and
# compared, as git does with "racily clean" index entries.
_RACY_NS = 100_000_000
_SET_LOOKUP_ABOVE = 16
# item id -> file path, so ``lst[i]`` does not hash the id again. Emptied when
# full: bounded memory.


class List(Store, MutableSequence[Any]):
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
    """

    _kind = "list"

    def __init__(self, path: StrPath, *, create: bool = True, writeback: bool = False) -> None:
        super().__init__(path, create=create, writeback=writeback)
        self._order_path = os.path.join(self._root, _format.ORDER_NAME)
        self._cached: tuple[tuple[int, int, int, int], bytes, Order] | None = None
        self._cache_racy = True
        self._prefix = ""
        self._prefix_pid = -1
        self._next_number = 0
        # lst[i] on an unchanged order: index -> (item id, its file), for the
        # Order object it was computed from (a new order drops it).
        self._slots: dict[int, tuple[str, str]] = {}
        self._slots_order: Order | None = None
        # Writeback: item id -> [the value handed out, the bytes its file held].
        self._kept: dict[str, list[Any]] = {}
        # Inside a batch: the order as the block left it, the order on disk,
        # new bytes of written items, and ids removed from the order.
        self._batch_order: Order | None = None
        self._batch_base = Order()
        self._batch_items: dict[str, bytes] = {}
        self._batch_removed: list[str] = []

    def _initial_files(self) -> list[tuple[str, bytes]]:
        return [(_format.ORDER_NAME, HEADER)]

    # -- the manifest ---------------------------------------------------------

    def _order(self) -> Order:
        """The current order, re-read only if the manifest changed on disk."""
        if self._batch_order is not None and self._in_batch:
            return self._batch_order
        try:
            st = os.stat(self._order_path)
        except FileNotFoundError:
            raise CorruptError(
                f"{self._order_path}: the list's manifest is missing", self._order_path
            ) from None
        signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._cached
        if cached is not None and cached[0] == signature and not self._cache_racy:
            return cached[2]
        data = read_file(self._order_path)
        if cached is not None and cached[1] == data:
            order = cached[2]
        else:
            order = Order.decode(data, self._order_path)
        self._cached = (signature, data, order)
        self._cache_racy = time.time_ns() - st.st_ctime_ns < _RACY_NS
        return order

    def _new_ids(self, count: int) -> list[str]:
        """Fresh item ids: this handle's random prefix and a counter.

        A prefix per handle (and per process, after fork) means no two
        writers, on this machine or another, can ever make the same id, and
        each handle extends only its own run: two clones' appends land on
        separate lines, which git's union merge keeps side by side.
        """
        if self._prefix_pid != os.getpid():
            self._prefix = secrets.token_hex(8)
            self._prefix_pid = os.getpid()
            self._next_number = 0
        first = self._next_number
        self._next_number += count
        return [f"{self._prefix}-{n}" for n in range(first, first + count)]

    def _read_item(self, item_id: str) -> Any:
        if self._writeback:
            kept = self._kept.get(item_id)
            if kept is not None:
                return kept[0]
        if self._batch_items:
            data = self._batch_items.get(item_id)
            if data is not None:
                return _format.decode_document(data, self._document_path(item_id))[1]
        data, value = read_value(self._document_path(item_id), item_id)
        if self._writeback:
            self._kept[item_id] = [value, data]
        return value

    def _commit(
        self,
        old: Order,
        new: Order,
        written: Iterable[tuple[str, Any, bytes]] = (),
        removed: Iterable[str] = (),
    ) -> None:
        """Items first (durable), then the manifest, then unlink what left it.

        ``written`` holds (item id, value, :func:`_format.encode_value` of it):
        values are checked and encoded before the lock is taken. A crash
        leaves the old or the new manifest and at worst orphan item files,
        never a manifest naming a missing item.
        """
        encoded = [(i, v, _format.document(i, body)) for i, v, body in written]
        gone = list(removed)
        if self._batch_order is not None:  # buffered until the batch ends
            self._batch_items.update((i, data) for i, _, data in encoded)
            self._batch_removed.extend(gone)
            self._batch_order = new
        else:
            self._write(old, new, [(i, data) for i, _, data in encoded], gone)
        if self._writeback:
            for i, v, data in encoded:
                self._kept[i] = [v, data]
            for i in gone:
                self._kept.pop(i, None)

    def _drop_unnamed(self, ids: list[str]) -> None:
        """After a failed change (a full disk), unlink the item files it wrote
        that the manifest on disk does not name, so none is left as an orphan.
        The manifest is read again: its rename may have happened before the
        failure, and then every item it names stays."""
        try:
            named = set(self._order())
            _atomic.remove_files(self._document_path(i) for i in ids if i not in named)
        except (OSError, CorruptError):
            pass  # best effort: an orphan is harmless, and sos check finds it

    def _write(
        self, old: Order, new: Order, entries: list[tuple[str, bytes]], gone: list[str]
    ) -> None:
        try:
            _atomic.write_files([(self._document_path(i), data) for i, data in entries])
            if new != old:
                data = new.encode()
                _atomic.write_file(self._order_path, data)
                self._cached = None
        except BaseException:
            self._cached = None
            self._drop_unnamed([i for i, _ in entries])
            raise
        if len(gone) > _SET_LOOKUP_ABOVE:
            alive = set(new)
            gone = [i for i in gone if i not in alive]
        else:  # a merged manifest may name an id twice: keep a file still named
            gone = [i for i in gone if not new.contains(i)]
        _atomic.remove_files(self._document_path(i) for i in gone)

    # -- batches and writeback (see Store.batch and Store.sync) -----------------

    def _batch_begin(self) -> None:
        order = self._order()
        self._batch_base = self._batch_order = order
        self._batch_items = {}
        self._batch_removed = []

    def _batch_discard(self) -> None:
        for item_id in self._batch_items:  # kept values the batch wrote are void
            self._kept.pop(item_id, None)
        self._batch_order = None
        self._batch_items = {}
        self._batch_removed = []

    def _batch_commit(self) -> None:
        """Items written and kept values changed in one group commit, one manifest write.

        An item the batch replaces gets a fresh id, so no file the old
        manifest names changes: the manifest is the one commit point, and a
        crash leaves the old or the new sequence.
        """
        base, new = self._batch_base, self._batch_order
        assert new is not None
        in_new = _membership(new, len(self._batch_items))
        # An item added then removed inside the batch is never written.
        entries = {i: data for i, data in self._batch_items.items() if in_new(i)}
        entries.update(self._dirty(new))
        removed = list(self._batch_removed)
        in_base = _membership(base, len(entries))
        replaced = [i for i in entries if in_base(i)]
        if replaced:
            fresh = dict(zip(replaced, self._new_ids(len(replaced)), strict=True))
            new = Order.from_ids(fresh.get(i, i) for i in new)
            for old_id, new_id in fresh.items():
                value = _format.decode_document(entries.pop(old_id), self._document_path(old_id))[1]
                entries[new_id] = _format.encode_document(new_id, value)
                kept = self._kept.pop(old_id, None)
                if kept is not None:
                    self._kept[new_id] = [kept[0], b""]
            removed.extend(replaced)
        self._batch_order = None
        self._write(base, new, list(entries.items()), removed)
        for item_id, data in entries.items():
            kept = self._kept.get(item_id)
            if kept is not None:
                kept[1] = data
        self._batch_items = {}
        self._batch_removed = []

    def _dirty(self, order: Order) -> list[tuple[str, bytes]]:
        """(id, new bytes) of each kept item still listed whose JSON changed since read."""
        changed = []
        for item_id, (value, old) in self._kept.items():
            new = _format.encode_document(item_id, value)
            if new == old:
                continue
            path = self._document_path(item_id)
            if _format.encode_document(item_id, _format.decode_document(old, path)[1]) != new:
                changed.append((item_id, new))
        # An item removed meanwhile (by another process) is not brought back.
        listed = _membership(order, len(changed))
        return [(i, data) for i, data in changed if listed(i)]

    def _drop_cache(self) -> None:
        self._kept.clear()

    # -- reads ----------------------------------------------------------------

    def __len__(self) -> int:
        self._check_open()
        return len(self._order())

    def __getitem__(self, index: int | slice) -> Any:
        # The hot path, kept short: lst[i] is one stat of the manifest, one
        # dict lookup (index -> item file, for this very order) and one read.
        if self._closed:
            self._check_open()
        if type(index) is not int:
            if isinstance(index, slice):
                return list(self._values(self._order().ids()[index]))
            index = _as_index(index)
        order = self._order()
        if order is not self._slots_order:
            self._slots = {}
            self._slots_order = order
        slot = self._slots.get(index) or self._slot(order, index)
        try:
            if self._writeback or self._batch_items:
                return self._read_item(slot[0])
            return read_value(slot[1], slot[0])[1]
        except FileNotFoundError:
            pass
        with self._lock:  # removed meanwhile: look again with writers held off
            order = self._order()
            item_id = order.id_at(_normalize(index, len(order), "list index out of range"))
            return self._read_item_named(item_id)

    def _slot(self, order: Order, index: int) -> tuple[str, str]:
        """The id and file of ``order[index]``, remembered for this order."""
        n = len(order)
        j = index + n if index < 0 else index
        if not 0 <= j < n:
            raise IndexError("list index out of range")
        item_id = order.id_at(j)
        slot = (item_id, self._document_path(item_id))
        if len(self._slots) >= PATH_CACHE_LIMIT:
            self._slots.clear()
        self._slots[index] = slot
        return slot

    def _read_item_named(self, item_id: str) -> Any:
        """Read an item the manifest names; a missing file is corruption."""
        try:
            return self._read_item(item_id)
        except FileNotFoundError:
            raise CorruptError(
                f"{self._order_path}: names item {item_id}, but its file "
                f"{self._document_path(item_id)} is missing (sos check --repair drops it)",
                self._order_path,
            ) from None

    def _values(self, ids: Iterable[str]) -> Iterator[Any]:
        """Values of ``ids``, skipping items removed since ``ids`` was taken."""
        for item_id in ids:
            try:
                yield self._read_item(item_id)
            except FileNotFoundError:
                with self._lock:
                    if self._order().contains(item_id):
                        yield self._read_item_named(item_id)

    def __iter__(self) -> Iterator[Any]:
        self._check_open()
        return self._values(self._order())

    def __reversed__(self) -> Iterator[Any]:
        self._check_open()
        return self._values(reversed(self._order().ids()))

    def __contains__(self, value: object) -> bool:
        return any(item is value or item == value for item in self)

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        self._check_open()
        ids = self._order().ids()
        first, last, _ = slice(start, stop).indices(len(ids))
        for offset, item in enumerate(self._values(ids[first:last])):
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
        bodies = [_format.encode_value(value) for value in values]
        with self._lock:
            order = self._order()
            ids = self._new_ids(len(values))
            end = len(order)
            self._commit(order, order.splice(end, end, ids), zip(ids, values, bodies, strict=True))

    def __iadd__(self, values: Iterable[Any]) -> List:
        self.extend(values)
        return self

    def insert(self, index: int, value: Any) -> None:
        self._check_open()
        i = _as_index(index)
        body = _format.encode_value(value)
        with self._lock:
            order = self._order()
            n = len(order)
            i = max(0, i + n) if i < 0 else min(i, n)
            [item_id] = self._new_ids(1)
            self._commit(order, order.splice(i, i, [item_id]), [(item_id, value, body)])

    def __setitem__(self, index: int | slice, value: Any) -> None:
        self._check_open()
        if isinstance(index, slice):
            self._set_slice(index, value)
            return
        i = _as_index(index)
        body = _format.encode_value(value)
        with self._lock:
            order = self._order()
            item_id = order.id_at(_normalize(i, len(order), "list assignment index out of range"))
            # Same id, new bytes: one atomic file replace, no manifest rewrite.
            self._commit(order, order, [(item_id, value, body)])

    def _set_slice(self, index: slice, values: Iterable[Any]) -> None:
        try:
            values = list(values)
        except TypeError:
            raise TypeError("can only assign an iterable") from None
        bodies = [_format.encode_value(value) for value in values]
        with self._lock:
            order = self._order()
            ids = order.ids()
            old_ids = ids[index]
            new_ids = self._new_ids(len(values))
            ids[index] = new_ids  # list's own rules and errors for slices
            written = zip(new_ids, values, bodies, strict=True)
            self._commit(order, Order.from_ids(ids), written, old_ids)

    def __delitem__(self, index: int | slice) -> None:
        self._check_open()
        with self._lock:
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
        with self._lock:
            order = self._order()
            if not order:
                raise IndexError("pop from empty list")
            i = _normalize(i, len(order), "pop index out of range")
            item_id = order.id_at(i)
            value = self._read_item_named(item_id)
            self._commit(order, order.splice(i, i + 1, ()), removed=[item_id])
            return value

    def remove(self, value: Any) -> None:
        self._check_open()
        with self._lock:
            try:
                i = self.index(value)
            except ValueError:
                raise ValueError("list.remove(x): x not in list") from None
            del self[i]

    def clear(self) -> None:
        self._check_open()
        with self._lock:
            order = self._order()
            self._commit(order, Order(), removed=order.ids())

    def reverse(self) -> None:
        """Reverse in place: the manifest's runs reversed, no item file touched."""
        self._check_open()
        with self._lock:
            order = self._order()
            self._commit(order, order.reversed())

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        """Stable sort, as ``list.sort``; only the manifest is rewritten."""
        self._check_open()
        with self._lock:
            order = self._order()
            ids = order.ids()
            values = [self._read_item_named(i) for i in ids]
            keys = values if key is None else [key(v) for v in values]
            positions = sorted(range(len(ids)), key=keys.__getitem__, reverse=reverse)
            self._commit(order, Order.from_ids(ids[p] for p in positions))

    def path_of(self, index: int) -> str:
        """The file that holds the item at ``index`` now, for editors and grep.

        The item keeps its file while it is in the list (setting ``lst[i]``
        replaces that file); inserts and deletes move it to another index.
        """
        self._check_open()
        order = self._order()
        return self._document_path(
            order.id_at(_normalize(_as_index(index), len(order), "list index out of range"))
        )


def _membership(order: Order, lookups: int) -> Callable[[str], bool]:
    """``id in order``: a set for many lookups, a walk of the runs for a few."""
    if lookups > _SET_LOOKUP_ABOVE:
        return set(order).__contains__
    return order.contains


def _as_index(index: object) -> int:
    try:
        return operator.index(index)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"list indices must be integers or slices, not {type(index).__name__}"
        ) from None


def _normalize(index: int, length: int, message: str) -> int:
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(message)
    return index

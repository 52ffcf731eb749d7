"""A List's manifest: reading it (re-read only when its version changed),
writing it and keeping what was written, and, on object storage, changing it
by compare-and-swap without the lease (docs/s3.md, "Lists without the lease")."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from sos import format as _format
from sos.core.buffers import _Buffer, _Cached, _Kept
from sos.core.ids import IdMaker
from sos.errors import CorruptError
from sos.format.order import Order
from sos.storage.base import Storage
from sos.txn import marked, unmarked

__all__ = ["Manifest"]


class Manifest:
    """A mixin of :class:`~sos.core.list.List`, which supplies what is declared here."""

    _storage: Storage
    _buffer: _Buffer | None
    _cached: _Cached | None
    _order_where: str
    _ids: IdMaker
    _ready_to_write: bool
    _writeback: bool
    _kept: dict[str, _Kept]

    if TYPE_CHECKING:

        def _active(self) -> _Buffer | None: ...

        def _cached_file(self, name: str, cached: _Cached | None, decode: Any) -> _Cached: ...

        def _writing(self, exclusive: bool = True) -> contextlib.AbstractContextManager[None]: ...

        def _name(self, key: str) -> str: ...

        def _where(self, name: str) -> str: ...

        def _keepable(self, key: str, value: Any, data: bytes) -> Any: ...

    def _order(self) -> Order:
        """The current order: this thread's batch's, or the manifest's, re-read
        only if its version changed."""
        if self._buffer is not None:  # inline: lst[i] and every append ask
            buf = self._active()
            if buf is not None:
                return buf.order  # type: ignore[no-any-return]
        try:
            self._cached = cached = self._cached_file(
                _format.ORDER_NAME, self._cached, self._decode_order
            )
        except FileNotFoundError:
            raise self._manifest_missing() from None
        return cached.parsed  # type: ignore[no-any-return]

    def _read_order(self) -> _Cached:
        """The manifest as it is now, with its version (re-read only if
        changed): :meth:`_order` for the paths that need the version too
        (that one stays the local hot path's, one call shorter)."""
        try:
            self._cached = cached = self._cached_file(
                _format.ORDER_NAME, self._cached, self._decode_order
            )
        except FileNotFoundError:
            raise self._manifest_missing() from None
        return cached

    def _manifest_missing(self) -> CorruptError:
        where = self._order_where
        return CorruptError(f"{where}: the list's manifest is missing", where)

    def _decode_order(self, data: bytes) -> Order:
        return Order.decode(data, self._order_where)

    def _drop_unnamed(self, names: list[str]) -> None:
        """After a failed change (a full disk), remove the item files it wrote
        that the manifest on disk does not name, so none is left as an orphan.
        The manifest is read again: its rename may have happened before the
        failure, and then every item it names stays."""
        try:
            named = {self._name(i) for i in self._order()}
            self._storage.remove([n for n in names if n not in named])
        except (OSError, CorruptError):
            pass  # best effort: an orphan is harmless, and sos check finds it

    # -- without the lock: appends by compare-and-swap (object storage) ----------

    def _swap_order(self, old: Order, new: Order) -> None:
        """Under the lease, where appends take none: replace the manifest
        only if it is still the one ``old`` was read from. Appenders do not
        wait for the lease, so a refusal means items were appended since:
        they go after this change (``new`` plus the ids appended after
        ``old``), as if they had come just after it, and the swap is tried
        again. A mark left by a transaction that died before its commit
        point is dropped with it (the lease holder ran recovery first)."""
        cached = self._cached
        version = cached.version if cached is not None and cached.parsed is old else None
        base, target = old, new
        while True:
            if version is not None:
                done = self._storage.swap(_format.ORDER_NAME, target.encode(), version)
                if done is not None:
                    self._cached = _Cached(done, target.encode(), target)
                    return
            data, version = self._storage.read_versioned(_format.ORDER_NAME)
            current = self._decode_order(unmarked(data))
            ids, before = current.ids(), base.ids()
            if ids[: len(before)] != before:
                raise CorruptError(
                    f"{self._order_where}: changed by another writer while this one held "
                    "the lease, and not by appending: refusing to overwrite it",
                    self._order_where,
                )
            base, target = current, Order.from_ids(target.ids() + ids[len(before) :])

    def _append_unlocked(self, values: list[Any], bodies: list[bytes]) -> None:
        """Append without the lease (docs/s3.md, "Lists without the lease"):
        the new items first, each a PUT with ``If-None-Match: *`` (a fresh
        id: it cannot exist), then the manifest replaced with ``If-Match``
        on the version this handle last saw, and on a 412 read (a 304 when
        cached) and swapped again: a handle that appends alone sends no
        read. A manifest marked by a pending transaction is left to it: the
        append then takes the lease, which waits for the transaction (or
        finishes its record after a crash), and swaps there."""
        storage = self._storage
        if not self._ready_to_write:
            storage.prepare_for_writing()
            self._ready_to_write = True
        ids = self._ids.make(len(values))
        pairs = zip(ids, bodies, strict=True)
        entries = [(self._name(i), _format.document(i, body)) for i, body in pairs]
        try:
            if len(entries) == 1:
                if not storage.write_if_absent(*entries[0]):  # a fresh id: cannot exist
                    where = self._where(entries[0][0])
                    raise CorruptError(f"{where}: a new item's file already exists", where)
            else:
                storage.write_many(entries)
            cached = self._cached  # swapped on as it is; read again after a refusal
            while True:
                if cached is None or marked(cached.data):
                    cached = self._read_order()
                if marked(cached.data):
                    with self._writing():
                        order = self._order()
                        end = len(order)
                        self._swap_order(order, order.splice(end, end, ids))
                    break
                end = len(cached.parsed)
                new = cached.parsed.splice(end, end, ids)
                data = new.encode()
                version = storage.swap(_format.ORDER_NAME, data, cached.version)
                if version is not None:
                    self._cached = _Cached(version, data, new)
                    break
                cached = None
        except BaseException:
            self._cached = None
            self._drop_unnamed([name for name, _ in entries])
            raise
        if self._writeback:
            for item_id, value, (_, data) in zip(ids, values, entries, strict=True):
                self._kept[item_id] = _Kept(self._keepable(item_id, value, data), data)

    def _write_order(self, old: Order, new: Order) -> None:
        """Rewrite the manifest and keep what was written as read, under the
        version the storage gives for it: the next call's one stat trusts it
        while the file is unchanged, instead of reading back what this handle
        just wrote (another writer, git or an editor changes that version)."""
        cached = self._cached
        # ``old`` was read under the lock held now: its version is the file's.
        previous = cached.version if cached is not None and cached.parsed is old else None
        data = new.encode()
        self._cached = None  # until the write is known to have happened
        version = self._storage.write_replacing(_format.ORDER_NAME, data, previous)
        if version is not None:
            self._cached = _Cached(version, data, new)

    def _first_missing_item(self) -> str | None:
        """Where the first item the manifest names but the store lacks should
        be, or None: one listing of the store, then the ids in order until
        one is missing, so a damaged manifest naming a billion absent items
        is answered at once (no stat per item either)."""
        order = self._order()  # before the listing: an append after it is not "missing"
        present = set(self._storage.walk())
        for item_id in order:
            name = self._name(item_id)
            gone = name not in present and not self._storage.exists(name)
            if gone and self._order().contains(item_id):  # not removed meanwhile
                return self._where(name)
        return None

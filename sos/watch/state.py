"""What a watcher knows of a store, and the comparison that finds changes.

Both ways of watching (OS events and polling) only say *which* files may
have changed; :class:`State` reads each through the storage interface,
compares its bytes with the last seen and decodes it, so both report the
same :class:`Change` objects. No threads and no waiting here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sos import format as _format
from sos import txn as _txn
from sos.errors import CorruptError, Error, ValidationError
from sos.format.names import RESERVED_DIR
from sos.format.order import Order
from sos.storage.base import Version
from sos.watch.change import Change

# A file that does not decode is looked at again after this long before it is
# reported damaged: git checkout writes files in place, and a reader can catch
# one half-written.
ERROR_GRACE = 0.05


# Files under .sos/ whose names start so are a transaction's (issue 10).
TXN_PREFIX = "txn"


# -- storage ---------------------------------------------------------------------


def _data_versions(storage: Any, prefix: str, known: dict[str, Any]) -> dict[str, Version]:
    """Name -> version of the data files in the fan-out directory ``prefix``.

    One ``storage.list_versions`` call: a LIST with ETags on object storage,
    one listing and one stat per data file locally. Foreign names are never
    looked at.
    """
    head = prefix + "/"

    def wanted(base: str) -> bool:
        return head + base in known or _format.is_data_file(prefix, base)

    return {
        head + base: version
        for base, version in storage.list_versions(prefix, wanted).items()
        if wanted(base)
    }


def _token(version: Version | None) -> int | None:
    """What an entry keeps of a version: its hash, or None if it proves nothing.

    A local version taken within the filesystem clock's granularity of the
    file's change is "racy" (flagged last in the local storage's tuple): an
    equal one later proves nothing, so the file is read again. A hash, not
    the version itself: a fifth of the memory at 100,000 files.
    """
    if version is None or (isinstance(version, tuple) and len(version) == 5 and version[4] is True):
        return None
    return hash(version)


def _trusted(token: int | None, new: Version | None) -> bool:
    """True if ``new`` proves the bytes unchanged since ``token`` was kept."""
    return token is not None and new is not None and token == hash(new)


# -- the differ --------------------------------------------------------------------


class _Entry:
    """What was last seen in one file: its version, bytes' hash, key, health."""

    __slots__ = ("bad", "digest", "key", "version")

    def __init__(self, version: Version | None, digest: int, key: str | None, bad: bool) -> None:
        self.version = _token(version)
        self.digest = digest
        self.key = key
        self.bad = bad


class State:
    """The store as last reported, and the comparison that finds changes.

    Names are examined in the order given; the result of a round is applied
    only by :meth:`apply`, so a round that saw a transaction start can be
    thrown away whole.
    """

    def __init__(self, storage: Any, kind: str, typed: Any = None) -> None:
        self.storage = storage
        self.kind = kind
        # A typed Dict's sos.core.schema.Typed: "set" changes carry the
        # type's values, and a document the type rejects is an "error".
        # A List's change carries no values: its items are not validated.
        self.typed = typed if kind == "dict" else None
        self._typed_now: Any = None  # self.typed while a round reports changes
        # fan-out prefix -> {name: entry}: a directory's event rescans one dict
        self.files: dict[str, dict[str, _Entry]] = {}
        self.order: tuple[str, ...] = ()  # List: the ids in order, as last reported
        self.order_entry: _Entry | None = None
        self.suspects: dict[str, float] = {}  # name -> when to report it damaged
        self._pending_order: tuple[str, ...] = ()  # the order a round found, kept by apply()

    # -- finding candidates by version

    def changed_names(self, prefixes: Iterable[str] | None = None) -> list[str]:
        """Names whose version differs from the last seen (new and gone included).

        ``prefixes`` limits the scan to those fan-out directories; None is all.
        """
        storage = self.storage
        if prefixes is None:
            top = [p for p in storage.list("") if _format.is_fanout_name(p)]
            prefixes = sorted(set(top) | set(self.files))
        out: list[str] = []
        for prefix in prefixes:
            known = self.files.get(prefix, {})
            try:
                listed = (
                    _data_versions(storage, prefix, known) if _format.is_fanout_name(prefix) else {}
                )
            except (NotADirectoryError, CorruptError):
                listed = {}
            for name, version in listed.items():
                entry = known.get(name)
                if entry is None or not _trusted(entry.version, version):
                    out.append(name)
            out.extend(name for name in known if name not in listed)
        if self.kind == "list":
            version = storage.version(_format.ORDER_NAME)
            entry = self.order_entry
            if entry is None or not _trusted(entry.version, version):
                out.append(_format.ORDER_NAME)
        return out

    # -- examining

    def examine(
        self, names: Iterable[str], now: float, *, final: bool = False, report: bool = True
    ) -> tuple[list[Change], dict[str, _Entry | None]]:
        """Read each name and compare it with what was last seen.

        Returns the changes and the entry updates (None: the file is gone).
        A file that does not decode becomes a suspect, reported at its
        deadline if it still does not (``final`` reports at once).
        ``report=False`` keeps no changes (the first look: less memory).
        """
        changes: list[Change] = []
        updates: dict[str, _Entry | None] = {}
        order_seen = False
        self._typed_now = self.typed if report else None  # the first look reports no value
        for name in dict.fromkeys(names):
            if name == _format.ORDER_NAME:
                order_seen = True
                continue
            change = self._examine_file(name, now, final, updates)
            if change is None or not report:
                continue
            if self.kind == "dict" or change.kind == "error":
                changes.append(change)  # a List's items count in its one change
        if self.kind == "list":
            changes.extend(self._list_change(order_seen, updates, now, final))
        return changes, updates

    def _examine_file(
        self, name: str, now: float, final: bool, updates: dict[str, _Entry | None]
    ) -> Change | None:
        old = self.files.get(name[:2], {}).get(name)
        try:
            data, version = self.storage.read_versioned(name)
        except FileNotFoundError:
            self.suspects.pop(name, None)
            if old is None:
                return None
            updates[name] = None
            return Change("deleted", key=old.key, path=name)
        except CorruptError as exc:  # not a regular file
            return self._damaged(name, old, self._version(name), None, exc, updates)
        except OSError as exc:
            error = CorruptError(f"{self._where(name)}: cannot be read: {exc.strerror}", name)
            return self._damaged(name, old, self._version(name), None, error, updates)
        digest = hash(data)
        if old is not None and old.digest == digest:
            updates[name] = _Entry(version, digest, old.key, old.bad)
            self.suspects.pop(name, None)
            return None
        try:
            key, value = _format.decode_document(data, self._where(name))
            _format.check_document_name(key, self._where(name), name[3:])
        except CorruptError as exc:
            if not final and name not in self.suspects:
                self.suspects[name] = now + ERROR_GRACE
                return None
            if not final and self.suspects[name] > now:
                return None
            return self._damaged(name, old, version, digest, exc, updates)
        self.suspects.pop(name, None)
        if self._typed_now is not None:
            try:
                value = self._typed_now.decode(data, key, value, self._where(name))
            except ValidationError as error:  # a whole document (renames are atomic): no grace
                updates[name] = _Entry(version, digest, key, True)
                return Change("error", key=key, error=error, path=name)
        updates[name] = _Entry(version, digest, key, False)
        return Change("set", key=key, value=value, path=name)

    def _damaged(
        self,
        name: str,
        old: _Entry | None,
        version: Version | None,
        digest: int | None,
        error: CorruptError,
        updates: dict[str, _Entry | None],
    ) -> Change | None:
        """Remember ``name`` as damaged; the error change, unless already reported."""
        self.suspects.pop(name, None)
        key = old.key if old is not None else None
        digest = -1 if digest is None else digest
        updates[name] = _Entry(version, digest, key, True)
        if old is not None and old.bad and old.digest == digest:
            return None  # the same damage, seen again (a FIFO stays a FIFO)
        return Change("error", key=key, error=error, path=name)

    def _version(self, name: str) -> Version | None:
        try:
            version: Version | None = self.storage.version(name)
        except (OSError, Error):
            return None
        return version

    def _list_change(
        self, order_seen: bool, updates: dict[str, _Entry | None], now: float, final: bool
    ) -> list[Change]:
        """The List's one change for a round: its order, and items edited in place."""
        order = self._pending_order = self.order
        out: list[Change] = []
        if order_seen:
            old = self.order_entry
            name = _format.ORDER_NAME
            try:
                data, version = self.storage.read_versioned(name)
                digest = hash(data)
                if old is None or old.digest != digest or old.bad:
                    order = tuple(Order.decode(data, self._where(name)))
                updates[name] = _Entry(version, digest, None, False)
                self.suspects.pop(name, None)
            except FileNotFoundError:
                error = CorruptError(f"{self._where(name)}: the list's manifest is missing", name)
                if final or self.suspects.setdefault(name, now + ERROR_GRACE) <= now:
                    self.suspects.pop(name, None)
                    if old is None or not old.bad:
                        out.append(Change("error", error=error, path=name))
                    updates[name] = _Entry(None, -1, None, True)
                return out
            except CorruptError as exc:
                if final or self.suspects.setdefault(name, now + ERROR_GRACE) <= now:
                    self.suspects.pop(name, None)
                    if old is None or not old.bad or old.digest != hash(data):
                        out.append(Change("error", error=exc, path=name))
                    updates[name] = _Entry(version, hash(data), None, True)
                return out
        named = set(order)
        before = set(self.order)
        edited = 0
        for name, entry in updates.items():
            if name == _format.ORDER_NAME or entry is None or entry.bad:
                continue
            old = self.files.get(name[:2], {}).get(name)
            if old is not None and old.digest != entry.digest and entry.key in before:
                edited += entry.key in named
        if order != self.order or edited:
            out.append(
                Change(
                    "changed",
                    length=len(order),
                    added=len(named - before),
                    removed=len(before - named),
                    edited=edited,
                )
            )
        self._pending_order = order
        return out

    def apply(self, updates: dict[str, _Entry | None]) -> None:
        for name, entry in updates.items():
            if name == _format.ORDER_NAME:
                self.order_entry = entry
                continue
            files = self.files.setdefault(name[:2], {})
            if entry is None:
                files.pop(name, None)
            else:
                files[name] = entry
        if self.kind == "list":
            self.order = self._pending_order

    def _where(self, name: str) -> str:
        return str(self.storage.where(name))


def txn_records(storage: Any) -> list[str]:
    """The transaction intent records (files under ``.sos/txn*``) now present."""
    found: list[str] = []
    try:
        entries = storage.list(RESERVED_DIR)
    except CorruptError:  # .sos/ is a symlink or a file: sos check reports it
        return found
    for entry in entries:
        if not entry.startswith(TXN_PREFIX) or f"{RESERVED_DIR}/{entry}" == _txn.DONE:
            continue  # not a record; txn.done is the last one retired
        name = f"{RESERVED_DIR}/{entry}"
        if storage.is_dir(name):
            found.extend(_walk(storage, name))
        else:
            found.append(name)
    return found


def _walk(storage: Any, directory: str) -> Iterator[str]:
    for entry in storage.list(directory):
        name = f"{directory}/{entry}"
        if storage.is_dir(name):
            yield from _walk(storage, name)
        else:
            yield name


def last_done(storage: Any) -> bytes | None:
    """The last finished transaction's id (kept in ``.sos/txn.done``).

    It changes with every transaction, whatever the clock's granularity
    (sos.txn.finish keeps it): if it differs after a pass from before it, a
    transaction finished during the pass.
    """
    try:
        return _txn.last_done(storage)
    except OSError:
        return None


def reserved_marker(storage: Any) -> Any:
    """Locally, the reserved directory's own times: they change whenever a
    file comes or goes in ``.sos/`` (a record, but also a lease). None elsewhere
    (object storage: a prefix has no times)."""
    return storage.directory_version(RESERVED_DIR)

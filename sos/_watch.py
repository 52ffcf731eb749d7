"""Watching a store: every change, from any source, reported as it lands.

A store's state is its files, and every commit is one rename in a directory,
so a watcher needs only to learn *which* files may have changed and then
compare them with what it last reported. Two ways to learn it:

- native: OS events (inotify on Linux, FSEvents on macOS) through watchdog
  (the ``watch`` extra); idle, it costs nothing but one ``stat`` a second;
- polling: a ``stat`` of every file each ``poll`` seconds, compared with the
  last pass (on object storage: LIST and ETags). Needs nothing extra.

Both feed one differ (:class:`_State`), which reads each candidate file
through the storage interface, compares its bytes with the last ones seen and
reports what changed, so both paths report the same things. Semantics are
"latest state": a burst of changes to one key may come out as one change
carrying the final value, but once the store is quiet the last reported state
is the store's state. Where events may have been lost (an inotify queue
overflow, the store's directory replaced), a ``resync`` change is reported and
the whole store re-compared. While a transaction's intent record exists
(``.sos/txn*``), nothing is reported: its changes come out once it is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import _format
from ._errors import CorruptError, Error
from ._order import Order
from ._storage import RESERVED_DIR, Storage, Version, open_storage, scheme_of

__all__ = [
    "AsyncWatcher",
    "Change",
    "Watcher",
    "awatch",
    "run_watch_command",
    "watch",
]

#: Default seconds between polling passes, stretched on big stores (one pass
#: over 100,000 files costs about 0.45 s of CPU: see docs/watch.md).
DEFAULT_POLL = 1.0
# Without poll=, the wait after a pass is at least this many times the CPU
# the pass took, so an idle watcher stays near 5% of a core on any store.
POLL_CPU_FACTOR = 20
# A file that does not decode is looked at again after this long before it is
# reported damaged: git checkout writes files in place, and a reader can catch
# one half-written.
ERROR_GRACE = 0.05
# How often the native path checks that the store's directory is still the
# one it watches (its parent's events usually say so sooner).
ROOT_CHECK = 1.0
# While a transaction's record exists: how often to look again if no event
# says it is gone.
TXN_RECHECK = 0.05
# Polling passes in a row thrown away because .sos/ changed during them
# (perhaps a whole transaction), before one is kept anyway.
MAX_UNSURE = 3
# Rounds in a row the storage may refuse (about a second) before the error
# reaches the caller.
MAX_FAILURES = 20
# How long watch() waits for a transaction being applied as it starts.
INITIAL_TXN_WAIT = 2.0
_TXN_PREFIX = "txn"


@dataclass(frozen=True)
class Change:
    """One change to a store.

    ``kind`` is one of:

    - ``"set"`` (Dict): ``key`` now holds ``value``;
    - ``"deleted"`` (Dict): ``key`` is gone (``key`` is None only for a damaged
      file whose key was never known);
    - ``"error"``: the file ``path`` is damaged; ``error`` is the
      :class:`~sos.CorruptError`, ``key`` the key it held before, if known.
      Watching goes on: a later good version is reported as ``"set"``;
    - ``"changed"`` (List): the sequence changed; ``length`` is its new
      length, ``added``/``removed`` count item ids that entered or left the
      order and ``edited`` items whose value changed in place;
    - ``"resync"``: events may have been lost (or the directory was
      replaced); the changes that follow are the differences found by
      re-reading the whole store.

    ``path`` is the store-relative file name concerned, where there is one.
    """

    kind: str
    key: str | None = None
    value: Any = None
    error: CorruptError | None = None
    path: str | None = None
    length: int | None = None
    added: int = 0
    removed: int = 0
    edited: int = 0

    @property
    def deleted(self) -> bool:
        return self.kind == "deleted"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: what ``sos watch`` prints, one per line."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("set", "deleted", "error"):
            out["key"] = self.key
        if self.kind == "set":
            out["value"] = self.value
        if self.kind == "error":
            out["error"] = str(self.error)
        if self.path is not None:
            out["path"] = self.path
        if self.kind == "changed":
            out.update(length=self.length, added=self.added, removed=self.removed)
            out["edited"] = self.edited
        return out


# -- what a name is --------------------------------------------------------------


def _is_data(name: str) -> bool:
    """``ab/ab…(32 hex).json``: the only names that can hold a document."""
    prefix, sep, base = name.partition("/")
    return (
        bool(sep)
        and _format.is_fanout_name(prefix)
        and base.startswith(prefix)
        and _format.is_data_name(base)
    )


# -- storage ---------------------------------------------------------------------


class _DirReader:
    """Read-only stand-in for the local Storage until sos._local exists.

    Only what watching uses: ``list``, ``version``, ``read_versioned``,
    ``is_dir``, ``close``. Versions are the local storage's: (inode, size,
    mtime, ctime, racy).
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.url = root

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name) if name else self.root

    def list(self, directory: str = "") -> list[str]:
        try:
            return os.listdir(self._path(directory))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_dir(self, name: str) -> bool:
        return os.path.isdir(self._path(name))

    def version(self, name: str) -> Version | None:
        try:
            st = os.stat(self._path(name))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _local_version(st)

    def read_versioned(self, name: str) -> tuple[bytes, Version]:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        except NotADirectoryError:
            raise FileNotFoundError(path) from None
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: a symlink
                raise CorruptError(f"{path}: is a symlink, not a document", path) from None
            raise
        try:
            st = os.fstat(fd)
            import stat

            if not stat.S_ISREG(st.st_mode):
                raise CorruptError(f"{path}: is not a regular file", path)
            chunks = [os.read(fd, 1 << 16)]
            while chunks[-1]:
                chunks.append(os.read(fd, 1 << 16))
        finally:
            os.close(fd)
        return b"".join(chunks), _local_version(st)

    def close(self) -> None:
        pass


def _local_version(st: os.stat_result) -> Version:
    racy = time.time_ns() - st.st_ctime_ns < 100_000_000
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, racy)


def _open_storage(path: str) -> Storage | _DirReader:
    """The store's storage; a read-only local stand-in while sos._local is absent."""
    try:
        return open_storage(path)
    except ModuleNotFoundError as exc:
        if exc.name != "sos._local":
            raise
        return _DirReader(path)


def _data_versions(storage: Any, prefix: str, known: dict[str, Any]) -> dict[str, Version]:
    """Name -> version of the data files in the fan-out directory ``prefix``.

    Uses ``storage.list_versions(directory)`` where the storage has it (one
    LIST with ETags on object storage); else one listing and one ``version``
    per data file (a stat; a HEAD on object storage). Foreign names are
    never looked at.
    """
    fast = getattr(storage, "list_versions", None)
    head = prefix + "/"
    if fast is not None:
        return {
            head + base: version
            for base, version in fast(prefix).items()
            if head + base in known or _is_data(head + base)
        }
    out = {}
    version_of = storage.version
    for base in storage.list(prefix):
        name = head + base
        if name in known or (base.startswith(prefix) and _format.is_data_name(base)):
            version = version_of(name)
            if version is not None:
                out[name] = version
    return out


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


class _State:
    """The store as last reported, and the comparison that finds changes.

    Names are examined in the order given; the result of a round is applied
    only by :meth:`apply`, so a round that saw a transaction start can be
    thrown away whole.
    """

    def __init__(self, storage: Any, kind: str) -> None:
        self.storage = storage
        self.kind = kind
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
            return self.storage.version(name)
        except (OSError, Error):
            return None

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
        url = self.storage.url
        return f"{url}/{name}" if scheme_of(url) else os.path.join(url, name)


def _txn_records(storage: Any) -> list[str]:
    """The transaction intent records (files under ``.sos/txn*``) now present."""
    found: list[str] = []
    try:
        entries = storage.list(RESERVED_DIR)
    except CorruptError:  # .sos/ is a symlink or a file: sos check reports it
        return found
    for entry in entries:
        if not entry.startswith(_TXN_PREFIX):
            continue
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


def _reserved_marker(storage: Any) -> Any:
    """Something that changes whenever a record comes or goes in ``.sos/``.

    Locally the reserved directory's own times; None where there is no such
    thing (object storage), and then only records present at the start or
    the end of a pass hold it back.
    """
    root = getattr(storage, "root", None) or (None if scheme_of(storage.url) else storage.url)
    if root is None:
        return None
    try:
        st = os.stat(os.path.join(root, RESERVED_DIR))
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


# -- where changes come from ---------------------------------------------------------


class _Core:
    """The state, the source of hints (events or a timer), and one round of work.

    :meth:`collect` never blocks on the store's quiet; :meth:`deadline` says
    when it must run again even if nothing wakes it; ``wake`` is set by the
    event thread. The sync and async watchers are two ways of waiting.
    """

    def __init__(self, store: Any, poll: float | None, native: bool | None) -> None:
        kind = _kind_of(store)
        self.path = os.fspath(store.path)
        self.local = scheme_of(self.path) is None
        if self.local:
            self.path = os.path.abspath(self.path)
        if native is True and poll is not None:
            raise ValueError("watch(): give poll= or native=True, not both")
        if poll is not None and not poll > 0:
            raise ValueError(f"watch(): poll must be a positive number of seconds, not {poll!r}")
        use_native = False
        if native is not False and poll is None and self.local:
            use_native = _native_available(required=native is True)
        elif native is True:
            raise Error(f"{self.path}: native events need a local directory", self.path)
        self.native = use_native
        self.interval = DEFAULT_POLL if poll is None else float(poll)
        self.adaptive = poll is None
        self.wake = threading.Event()
        self.wakers: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.dirty: dict[str, None] = {}  # names from events, in arrival order
        self.dirty_prefixes: dict[str, None] = {}  # directories to rescan
        self.resync = False  # events were lost: rescan everything
        self.root_check = False
        self.txn_events = 0  # events on .sos/txn*: bumps when a record comes or goes
        self.closed = False
        self.unsure = 0  # polling passes thrown away in a row because .sos/ changed
        self.failures = 0  # rounds in a row the storage refused (sos.Error)
        self.storage = _open_storage(self.path)
        self.state = _State(self.storage, kind)
        self.root_id = self._root_id()
        self.next_poll = 0.0
        self.next_root_check = time.monotonic() + ROOT_CHECK
        self.observer: Any = None
        self.store_watch: Any = None
        try:
            if self.native:
                self._start_observer()
            self._initial_scan()
        except BaseException:
            self.close()
            raise
        self.next_poll = time.monotonic() + self.interval

    # -- setup

    def _root_id(self) -> Any:
        if not self.local:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _start_observer(self) -> None:
        from watchdog.observers import Observer

        self.observer = Observer()
        parent = os.path.dirname(self.path)
        self.observer.schedule(
            _ParentHandler(self), parent, recursive=False, event_filter=_dir_events()
        )
        self._schedule_store()
        self.observer.start()
        _no_move_delay(self.observer)
        _OVERFLOW.watchers.add(self)

    def _schedule_store(self) -> None:
        if self.root_id is None:
            self.store_watch = None
            return
        self.store_watch = self.observer.schedule(
            _StoreHandler(self, self.path), self.path, recursive=True, event_filter=_all_events()
        )

    def _initial_scan(self) -> None:
        """Read every file once: the state later changes are compared with.

        A transaction being applied is waited for (a while: a record left by
        a crash stays until the next writer recovers it), so the first
        changes reported are never the second half of one.
        """
        give_up = time.monotonic() + INITIAL_TXN_WAIT
        while True:
            names = self.state.changed_names()
            marker = self._txn_marker()
            waiting = time.monotonic() < give_up
            if marker[0] and waiting:
                time.sleep(TXN_RECHECK)
                continue
            _, updates = self.state.examine(names, time.monotonic(), final=True, report=False)
            if self._txn_marker() == marker or not waiting:
                self.state.apply(updates)
                return

    # -- signals from the event thread

    def signal(self) -> None:
        self.wake.set()
        for waker in list(self.wakers):
            waker()

    def note(self, name: str | None, *, prefix: str | None = None, txn: bool = False) -> None:
        with self.lock:
            if name is not None:
                self.dirty[name] = None
            if prefix is not None:
                self.dirty_prefixes[prefix] = None
            if txn:
                self.txn_events += 1
        self.signal()

    def note_resync(self) -> None:
        with self.lock:
            self.resync = True
        self.signal()

    def note_root(self) -> None:
        with self.lock:
            self.root_check = True
        self.signal()

    # -- one round

    def deadline(self) -> float:
        """When :meth:`collect` must run again if nothing wakes it."""
        times = list(self.state.suspects.values())
        times.append(self.next_root_check if self.native else self.next_poll)
        if self.native and (self.dirty or self.dirty_prefixes or self.resync):  # held back
            times.append(time.monotonic() + TXN_RECHECK)
        return min(times)

    def collect(self) -> list[Change]:
        """Do what is due: events' names, a polling pass, suspects, a root check."""
        if self.closed:
            return []
        self.wake.clear()
        now = time.monotonic()
        out: list[Change] = []
        if self.native:
            if self.root_check or now >= self.next_root_check:
                self.root_check = False
                self.next_root_check = now + ROOT_CHECK
                self._check_root()
            with self.lock:
                names = list(self.dirty)
                prefixes = list(self.dirty_prefixes)
                resync = self.resync
                self.dirty.clear()
                self.dirty_prefixes.clear()
                self.resync = False
            if resync or names or prefixes:
                done = self._safe_round(names, prefixes, resync, out)
                if not done:  # held back: keep them for the next round
                    with self.lock:
                        self.dirty = dict.fromkeys([*names, *self.dirty])
                        self.dirty_prefixes = dict.fromkeys([*prefixes, *self.dirty_prefixes])
                        self.resync = self.resync or resync
        elif now >= self.next_poll:
            root_id = self._root_id()
            if root_id != self.root_id:
                self._reopen(root_id)
                self.resync = True  # reported with the first pass that is kept
            spent = time.thread_time()
            if self._safe_round([], None, self.resync, out):
                self.resync = False
                spent = time.thread_time() - spent
                interval = self.interval
                if self.adaptive:  # a big store is polled less often than a small one
                    interval = max(interval, spent * POLL_CPU_FACTOR)
                self.next_poll = time.monotonic() + interval
            else:
                self.next_poll = time.monotonic() + TXN_RECHECK
        due = [name for name, when in self.state.suspects.items() if when <= now]
        if due:
            self._safe_round(due, [], False, out)
        return out

    def _safe_round(
        self, names: list[str], prefixes: list[str] | None, resync: bool, out: list[Change]
    ) -> bool:
        """:meth:`_round`, tried again later if the storage refuses for a while.

        A storage may refuse (sos.Error) while its directory is being replaced
        or a reserved name is briefly odd; the path is re-resolved and the
        round repeated. An error that lasts :data:`MAX_FAILURES` rounds in a
        row is raised to the caller.
        """
        try:
            done = self._round(names, prefixes, resync, out)
        except Error:
            self.failures += 1
            if self.failures > MAX_FAILURES:
                raise
            self.root_check = True
            return False
        self.failures = 0
        return done

    def _round(
        self, names: list[str], prefixes: list[str] | None, resync: bool, out: list[Change]
    ) -> bool:
        """Examine ``names`` plus what changed in ``prefixes`` (None: everywhere).

        False if a transaction's record was there (or came and went): nothing
        is reported or remembered, the caller tries again.
        """
        marker = self._txn_marker()
        if marker[0]:
            return False
        state = self.state
        if resync or prefixes is None:
            names = [*names, *state.changed_names()]
        elif prefixes:
            names = [*names, *state.changed_names(prefixes)]
        changes, updates = state.examine(names, time.monotonic())
        after = self._txn_marker()
        if after[0] or after[1] != marker[1]:
            return False  # a record is there, or one came and went (an event said so)
        if after[2] != marker[2] and not self.native and self.unsure < MAX_UNSURE:
            # .sos/ changed during the pass: maybe a whole transaction. Look
            # again, but not forever: leases come and go there too.
            self.unsure += 1
            return False
        self.unsure = 0
        state.apply(updates)
        if resync:
            out.append(Change("resync"))
        out.extend(changes)
        return True

    def _txn_marker(self) -> tuple[list[str], int, Any]:
        return (_txn_records(self.storage), self.txn_events, _reserved_marker(self.storage))

    def _check_root(self) -> None:
        """Re-resolve the path: a replaced directory is watched anew and re-read."""
        root_id = self._root_id()
        if root_id == self.root_id:
            return
        self._reopen(root_id)
        if self.store_watch is not None:
            with contextlib.suppress(KeyError, OSError):
                self.observer.unschedule(self.store_watch)
        try:
            self._schedule_store()
        except OSError:  # gone again already: the next check sees it
            self.store_watch = None
            self.root_id = None
        _no_move_delay(self.observer)
        self.note_resync()

    def _reopen(self, root_id: Any) -> None:
        self.root_id = root_id
        old = self.storage
        self.storage = self.state.storage = _open_storage(self.path)
        with contextlib.suppress(Exception):
            old.close()

    def close(self) -> None:
        """Stop the event threads (joined: none is left behind) and the storage."""
        self.closed = True
        self.signal()
        observer, self.observer = self.observer, None
        if observer is not None:
            _OVERFLOW.watchers.discard(self)
            observer.stop()
            if observer.is_alive():
                observer.join()
            else:  # never started: its emitters may be
                observer.unschedule_all()
        with contextlib.suppress(Exception):
            self.storage.close()


def _kind_of(store: Any) -> str:
    from ._dict import Dict
    from ._list import List

    if isinstance(store, Dict):
        return "dict"
    if isinstance(store, List):
        return "list"
    raise TypeError(f"watch() needs a sos.Dict or sos.List, not {type(store).__name__}")


# watchdog observers whose cost does not grow with the number of files.
_SCALABLE_OBSERVERS = ("InotifyObserver", "FSEventsObserver", "WindowsApiObserver")


def _native_available(*, required: bool) -> bool:
    """True if watchdog is installed and has OS events here (not its polling)."""
    try:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver
    except ImportError:
        if required:
            raise Error(
                "native=True needs watchdog: pip install 'sos-store[watch]'", None
            ) from None
        return False
    if Observer is PollingObserver:
        if required:
            raise Error("native=True: watchdog has no OS events on this platform", None)
        return False
    # kqueue (the BSDs) holds a descriptor per file: not for 100,000 of them
    # unless asked for by name.
    return required or getattr(Observer, "__name__", "") in _SCALABLE_OBSERVERS


# -- watchdog glue ---------------------------------------------------------------------


def _all_events() -> list[type]:
    from watchdog import events as ev

    return [
        ev.FileCreatedEvent,
        ev.FileModifiedEvent,
        ev.FileClosedEvent,
        ev.FileMovedEvent,
        ev.FileDeletedEvent,
        ev.DirCreatedEvent,
        ev.DirDeletedEvent,
        ev.DirMovedEvent,
    ]


def _dir_events() -> list[type]:
    from watchdog import events as ev

    return [ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]


def _no_move_delay(observer: Any) -> None:
    """Stop watchdog's inotify emitters holding events back to pair moves.

    Every commit is a rename. watchdog keeps an IN_MOVED_FROM at the head of
    its queue for up to 0.5 s to pair it with its IN_MOVED_TO, and if its
    reader thread loses the CPU between the two (a loaded machine) everything
    behind waits the full half second: measured, a p99 latency of 315 ms.
    The watcher needs paths, not pairs (an unpaired move is reported as a
    delete and a create, which name the same files), so the wait is set to 0.
    Private attributes, looked up defensively: if a watchdog version lacks
    them, nothing changes but the tail latency.
    """
    from watchdog.utils.delayed_queue import DelayedQueue

    for emitter in list(observer.emitters):
        inner = getattr(emitter, "_inotify", None)
        for holder in (inner, getattr(inner, "_move_event_grouper", None)):
            queue = getattr(holder, "_queue", None)
            if isinstance(queue, DelayedQueue):
                queue.delay = 0


class _StoreHandler:
    """Turns watchdog's events below the store into names for the differ.

    Runs in the event thread: only string work, no I/O. Holds the core
    weakly, so a watcher dropped without close() is still collected.
    """

    def __init__(self, core: _Core, root: str) -> None:
        self.core = weakref.ref(core)
        self.root = root
        self.cut = len(root) + 1

    def dispatch(self, event: Any) -> None:
        core = self.core()
        if core is None or core.closed:
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                self._one(core, os.fsdecode(path), event.is_directory)

    def _one(self, core: _Core, path: str, is_directory: bool) -> None:
        if path == self.root:
            core.note_root()
            return
        if not path.startswith(self.root) or path[self.cut - 1] != os.sep:
            return
        name = path[self.cut :].replace(os.sep, "/")
        head, _, rest = name.partition("/")
        if head == RESERVED_DIR:
            if rest.startswith(_TXN_PREFIX):
                core.note(None, txn=True)
            return
        if is_directory:
            if _format.is_fanout_name(head):
                core.note(None, prefix=head)
            return
        if name == _format.ORDER_NAME:
            if core.state.kind == "list":
                core.note(name)
        elif _is_data(name):
            core.note(name)


class _ParentHandler:
    """Events in the store's parent naming the store: it was replaced or removed."""

    def __init__(self, core: _Core) -> None:
        self.core = weakref.ref(core)

    def dispatch(self, event: Any) -> None:
        core = self.core()
        if core is None or core.closed:
            return
        paths = (event.src_path, getattr(event, "dest_path", ""))
        if core.path in (os.fsdecode(p) for p in paths if p):
            core.note_root()


class _OverflowHook(logging.Handler):
    """watchdog rebuilds its watches after an inotify overflow but tells only
    its log; this turns that log line into a resync of every native watcher."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.watchers: weakref.WeakSet[_Core] = weakref.WeakSet()
        self.installed = False

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage():
            for core in list(self.watchers):
                core.note_resync()

    def install(self) -> None:
        if not self.installed:
            self.installed = True
            for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
                logging.getLogger(name).addHandler(self)


_OVERFLOW = _OverflowHook()


# -- the public face -------------------------------------------------------------------


class Watcher:
    """Changes to a store, as an iterator; stop it with :meth:`close`.

    Also a context manager. A ``for`` loop over it closes it when the loop
    ends, by ``break`` or by an exception, so no event thread outlives the
    loop. ``get(timeout)`` waits for one change without a loop.
    """

    def __init__(self, store: Any, *, poll: float | None = None, native: bool | None = None):
        _kind_of(store)
        if store.closed:
            raise ValueError(f"watch(): {store!r} is closed")
        _OVERFLOW.install()
        self._core = _Core(store, poll, native)
        self._ready: deque[Change] = deque()

    @property
    def native(self) -> bool:
        """True if OS events drive this watcher, False if it polls."""
        return self._core.native

    @property
    def closed(self) -> bool:
        return self._core.closed

    def get(self, timeout: float | None = None) -> Change | None:
        """The next change, waiting up to ``timeout`` seconds (None: forever).

        None if the time ran out; raises :class:`~sos.ClosedError` once closed.
        """
        core = self._core
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._ready:
                return self._ready.popleft()
            if core.closed:
                from ._errors import ClosedError

                raise ClosedError(f"watcher of {core.path} is closed", core.path)
            self._ready.extend(core.collect())
            if self._ready:
                continue
            now = time.monotonic()
            if end is not None and now >= end:
                return None
            wait = core.deadline() - now
            if end is not None:
                wait = min(wait, end - now)
            if wait > 0:
                core.wake.wait(wait)

    def __next__(self) -> Change:
        try:
            change = self.get()
        except Error:
            if self._core.closed:
                raise StopIteration from None
            raise
        assert change is not None
        return change

    def __iter__(self) -> Iterator[Change]:
        # A generator that closes the watcher when the loop leaves it (break,
        # exception, or the generator being dropped): it holds the watcher,
        # the watcher does not hold it, so dropping the loop frees both.
        try:
            while not self._core.closed:
                yield next(self)
        except StopIteration:
            return
        finally:
            self.close()

    def close(self) -> None:
        """Stop watching; joins the event threads. Safe to call twice, from any thread."""
        self._core.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.closed:
            core.close()

    def __repr__(self) -> str:
        how = "native" if self._core.native else f"poll={self._core.interval}"
        state = " (closed)" if self._core.closed else ""
        return f"<sos watcher of {self._core.path!r} {how}{state}>"


def watch(store: Any, *, poll: float | None = None, native: bool | None = None) -> Watcher:
    """Watch an open :class:`~sos.Dict` or :class:`~sos.List` for changes.

    ``native=None`` (the default) uses OS events when watchdog is installed,
    the store is a local directory and the platform's events scale (inotify,
    FSEvents, Windows); else it polls every :data:`DEFAULT_POLL` seconds, or
    less often on a store so big that a pass would use more than about 5% of
    a core. ``poll=SECONDS`` forces polling at exactly that interval;
    ``native=True`` requires events (an :class:`~sos.Error` if there are
    none). Changes made after this returns are reported; the store's
    contents at the start are not. docs/watch.md has the semantics and costs.
    """
    return Watcher(store, poll=poll, native=native)


class AsyncWatcher:
    """``async for change in awatch(db)``: the same changes, for asyncio.

    The waiting is the event loop's (no thread sits blocked); reading the
    files runs in the loop's default executor, so a big rescan never stalls
    the loop. ``aclose()`` or ``async with`` stops it; so does leaving an
    ``async for`` loop by an exception or ``break`` once the iterator is
    dropped.
    """

    def __init__(self, store: Any, *, poll: float | None = None, native: bool | None = None):
        _kind_of(store)
        if store.closed:
            raise ValueError(f"awatch(): {store!r} is closed")
        self._store = store
        self._options = (poll, native)
        self._core: _Core | None = None
        self._ready: deque[Change] = deque()
        self._event: asyncio.Event | None = None
        self._closed = False

    async def _start(self) -> _Core:
        if self._core is None:
            _OVERFLOW.install()
            loop = asyncio.get_running_loop()
            self._event = event = asyncio.Event()
            poll, native = self._options
            core = await asyncio.to_thread(_Core, self._store, poll, native)
            if self._closed:
                core.close()
            self._core = core

            def waker() -> None:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(event.set)

            core.wakers.append(waker)
        return self._core

    def __aiter__(self) -> AsyncIterator[Change]:
        return self

    async def __anext__(self) -> Change:
        if self._closed:
            raise StopAsyncIteration
        core = await self._start()
        event = self._event
        assert event is not None
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._closed or core.closed:
                raise StopAsyncIteration
            event.clear()
            self._ready.extend(await asyncio.to_thread(core.collect))
            if self._ready:
                continue
            wait = core.deadline() - time.monotonic()
            if wait > 0 and not event.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), wait)

    async def aclose(self) -> None:
        """Stop watching; joins the event threads (in the executor)."""
        self._closed = True
        core, self._core = self._core, None
        if core is not None:
            if self._event is not None:
                self._event.set()
            await asyncio.to_thread(core.close)

    async def __aenter__(self) -> AsyncWatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.closed:
            core.close()


def awatch(store: Any, *, poll: float | None = None, native: bool | None = None) -> AsyncWatcher:
    """As :func:`watch`, for ``async for``."""
    return AsyncWatcher(store, poll=poll, native=native)


# -- the command -----------------------------------------------------------------------


def run_watch_command(path: str, poll: float | None) -> int:
    """``sos watch STORE [--poll SECONDS]``: one JSON line per change until Ctrl-C.

    Returns 130 on Ctrl-C (the shell's code for SIGINT). sos.Error (not a
    store) propagates for the command's usual one-line message.
    """
    import sos

    store = sos.open(path)
    watcher = None
    try:
        watcher = watch(store, poll=poll)
        out = sys.stdout
        for change in watcher:
            out.write(json.dumps(change.to_json(), ensure_ascii=False) + "\n")
            out.flush()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    finally:
        if watcher is not None:
            watcher.close()
        store.close()
    return 0

"""Watching a store: every change, from any source, reported as it lands.

A store's state is its files, and every commit is one rename in a directory,
so a watcher needs only to learn *which* files may have changed and then
compare them with what it last reported. Two ways to learn it:

- native: OS events (inotify on Linux, FSEvents on macOS) through watchdog
  (the ``watch`` extra); idle, it costs nothing but one ``stat`` a second;
- polling: a ``stat`` of every file each ``poll`` seconds, compared with the
  last pass (on object storage: LIST and ETags). Needs nothing extra.

Both feed one differ (:class:`sos.watch.state.State`), which reads each file
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

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from sos.errors import Error
from sos.storage.registry import open_storage, scheme_of
from sos.watch.change import Change
from sos.watch.native import ParentHandler, StoreHandler, all_events, dir_events, native_available
from sos.watch.state import State, last_done, reserved_marker, txn_records

# Errors of closing (a storage, an event thread): logged here, never dropped,
# and never raised from close(), which runs in finally blocks and __del__
# where raising would hide the error that got there.
log = logging.getLogger("sos.watch")


#: Default seconds between polling passes, stretched on big stores (one pass
#: over 100,000 files costs about 0.45 s of CPU: see docs/watch.md).
DEFAULT_POLL = 1.0


# Without poll=, the wait after a pass is at least this many times the CPU
# the pass took, so an idle watcher stays near 5% of a core on any store.
POLL_CPU_FACTOR = 20


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
            use_native = native_available(required=native is True)
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
        self.record_open = False  # the events seen so far say .sos/txn.json exists
        self.closed = False
        self.unsure = 0  # polling passes thrown away in a row because .sos/ changed
        self.failures = 0  # rounds in a row the storage refused (sos.Error)
        self.storage = open_storage(self.path)
        self.state = State(self.storage, kind, store._typed)
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
            ParentHandler(self), parent, recursive=False, event_filter=dir_events()
        )
        self._schedule_store()
        self.observer.start()

    def _schedule_store(self) -> None:
        if self.root_id is None:
            self.store_watch = None
            return
        self.store_watch = self.observer.schedule(
            StoreHandler(self, self.path), self.path, recursive=True, event_filter=all_events()
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

    def note(
        self,
        name: str | None,
        *,
        prefix: str | None = None,
        txn: bool = False,
        record: bool | None = None,
    ) -> None:
        with self.lock:
            if name is not None:
                self.dirty[name] = None
            if prefix is not None:
                self.dirty_prefixes[prefix] = None
            if txn:
                self.txn_events += 1
            if record is not None:
                self.record_open = record
        self.signal()

    def note_resync(self) -> None:
        with self.lock:
            self.resync = True
            self.record_open = False  # its removal may be among the events lost
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
        if marker[0] or self.record_open:
            return False
        state = self.state
        if resync or prefixes is None:
            names = [*names, *state.changed_names()]
        elif prefixes:
            names = [*names, *state.changed_names(prefixes)]
        changes, updates = state.examine(names, time.monotonic())
        after = self._txn_marker()
        if after[0] or after[1] != marker[1] or self.record_open:
            return False  # a record is there, or one came and went (an event said so)
        if after[3] != marker[3]:
            # A transaction finished during the pass (.sos/txn.done names the
            # last one): what was read may be half of it, though its events
            # may not have arrived yet. Always look again.
            return False
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

    def _txn_marker(self) -> tuple[list[str], int, Any, bytes | None]:
        return (
            txn_records(self.storage),
            self.txn_events,
            reserved_marker(self.storage),
            last_done(self.storage),
        )

    def _check_root(self) -> None:
        """Re-resolve the path: a replaced directory is watched anew and re-read."""
        root_id = self._root_id()
        if root_id == self.root_id:
            return
        self._reopen(root_id)
        if self.store_watch is not None:
            try:
                self.observer.unschedule(self.store_watch)
            except (KeyError, OSError) as exc:  # expected: the directory went away
                log.debug("watch of %s: unscheduling the old directory: %r", self.path, exc)
        try:
            self._schedule_store()
        except OSError:  # gone again already: the next check sees it
            self.store_watch = None
            self.root_id = None
        self.note_resync()

    def _reopen(self, root_id: Any) -> None:
        self.root_id = root_id
        old = self.storage
        self.storage = self.state.storage = open_storage(self.path)
        self._close_logged(old.close, "closing the storage of the replaced directory")

    def close(self) -> None:
        """Stop the event threads (joined: none is left behind) and the storage.

        An error of either is logged (logger ``sos.watch``, level WARNING,
        with its traceback), not raised: close runs in ``finally`` blocks.
        """
        self.closed = True
        self.signal()
        observer, self.observer = self.observer, None
        if observer is not None:
            self._close_logged(lambda: _stop(observer), "stopping the event threads")
        self._close_logged(self.storage.close, "closing the storage")

    def _close_logged(self, close: Callable[[], object], what: str) -> None:
        try:
            close()
        except Exception as exc:
            log.warning("watch of %s: %s failed: %s", self.path, what, exc, exc_info=True)


def _stop(observer: Any) -> None:
    """Stop a watchdog observer and join its threads."""
    observer.stop()
    if observer.is_alive():
        observer.join()
    else:  # never started: its emitters may be
        observer.unschedule_all()


def _kind_of(store: Any) -> str:
    """The kind of the store to watch. Read from the handle, not by isinstance:
    the watch layer sits below the stores and must not import them."""
    kind = getattr(store, "_kind", None)
    if kind in ("dict", "list") and hasattr(store, "_storage"):
        return str(kind)
    raise TypeError(f"watch() needs a sos.Dict or sos.List, not {type(store).__name__}")

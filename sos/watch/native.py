"""The native path's glue to watchdog: OS events in, store names out.

watchdog itself is imported only when events are used, so polling needs
none of it.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Protocol

from sos import format as _format
from sos.errors import Error
from sos.format.names import RESERVED_DIR
from sos.watch.state import TXN_PREFIX


class _Core(Protocol):
    """What native events feed: the watcher core's notes. A protocol, so this
    module does not import the core that starts it (no import cycle)."""

    closed: bool
    path: str
    state: Any

    def note(self, name: str | None, *, prefix: str | None = None, txn: bool = False) -> None: ...

    def note_resync(self) -> None: ...

    def note_root(self) -> None: ...


__all__ = [
    "OVERFLOW",
    "ParentHandler",
    "StoreHandler",
    "all_events",
    "dir_events",
    "native_available",
    "no_move_delay",
]

# watchdog observers whose cost does not grow with the number of files.
SCALABLE_OBSERVERS = ("InotifyObserver", "FSEventsObserver", "WindowsApiObserver")


def native_available(*, required: bool) -> bool:
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
    return required or getattr(Observer, "__name__", "") in SCALABLE_OBSERVERS


# -- watchdog glue ---------------------------------------------------------------------


def all_events() -> list[type]:
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


def dir_events() -> list[type]:
    from watchdog import events as ev

    return [ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]


def no_move_delay(observer: Any) -> None:
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


class StoreHandler:
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
            if rest.startswith(TXN_PREFIX):
                core.note(None, txn=True)
            return
        if is_directory:
            if _format.is_fanout_name(head):
                core.note(None, prefix=head)
            return
        if name == _format.ORDER_NAME:
            if core.state.kind == "list":
                core.note(name)
        elif _format.is_data_path(name):
            core.note(name)


class ParentHandler:
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


class OverflowHook(logging.Handler):
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


OVERFLOW = OverflowHook()

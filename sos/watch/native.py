"""The native path's glue to watchdog: OS events in, store names out.

Only watchdog's public API: an ``Observer``, ``schedule()`` with an event
filter, handlers called through ``dispatch(event)``, and ``EventsLostEvent``
(watchdog 7.1), which watchdog queues behind the events it did read when the
kernel's queue overflowed, once it has rebuilt its watches. watchdog itself
is imported only when events are used, so polling needs none of it.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Protocol

from sos import format as _format
from sos import txn as _txn
from sos.errors import Error
from sos.format.names import RESERVED_DIR
from sos.watch.state import TXN_PREFIX


class _Core(Protocol):
    """What native events feed: the watcher core's notes. A protocol, so this
    module does not import the core that starts it (no import cycle)."""

    closed: bool
    path: str
    state: Any

    def note(
        self,
        name: str | None,
        *,
        prefix: str | None = None,
        txn: bool = False,
        record: bool | None = None,
    ) -> None: ...

    def note_resync(self) -> None: ...

    def note_root(self) -> None: ...


__all__ = [
    "ParentHandler",
    "StoreHandler",
    "all_events",
    "dir_events",
    "native_available",
]

# watchdog observers whose cost does not grow with the number of files.
SCALABLE_OBSERVERS = ("InotifyObserver", "FSEventsObserver", "WindowsApiObserver")

# The transaction record's name inside the reserved directory: while events
# say it exists, a round waits (see StoreHandler).
RECORD_BASE = _txn.RECORD.partition("/")[2]


def native_available(*, required: bool) -> bool:
    """True if watchdog (7.1 or later) is installed and has OS events here (not its polling)."""
    try:
        from watchdog.events import EventsLostEvent  # noqa: F401  (7.1: the overflow signal)
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver
    except ImportError:
        if required:
            raise Error(
                "native=True needs watchdog 7.1 or later: pip install 'sos-store[watch]'", None
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
        ev.EventsLostEvent,
    ]


def dir_events() -> list[type]:
    from watchdog import events as ev

    return [ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent]


class StoreHandler:
    """Turns watchdog's events below the store into names for the differ.

    Runs in the event thread: only string work, no I/O. Holds the core
    weakly, so a watcher dropped without close() is still collected.

    It also follows the transaction record through its events, because
    events arrive late on a loaded machine: a round that has the event of a
    transaction's first file but not yet that of its second would report
    half of it, though on disk the record is already gone. Events come in
    the order they happened, and the record's removal comes after every
    file of its transaction, so while the events seen say the record exists
    the core holds its rounds back.
    """

    def __init__(self, core: _Core, root: str) -> None:
        from watchdog.events import EventsLostEvent

        self.core = weakref.ref(core)
        self.root = root
        self.cut = len(root) + 1
        self.lost = EventsLostEvent

    def dispatch(self, event: Any) -> None:
        core = self.core()
        if core is None or core.closed:
            return
        if isinstance(event, self.lost):  # the kernel dropped events: re-compare everything
            core.note_resync()
            return
        kind = event.event_type
        if event.src_path:  # a source is there if created, gone if deleted or moved away
            there = True if kind == "created" else False if kind in ("deleted", "moved") else None
            self._one(core, os.fsdecode(event.src_path), event.is_directory, there)
        dest = getattr(event, "dest_path", "")
        if dest:
            self._one(core, os.fsdecode(dest), event.is_directory, True)

    def _one(self, core: _Core, path: str, is_directory: bool, there: bool | None) -> None:
        if path == self.root:
            core.note_root()
            return
        if not path.startswith(self.root) or path[self.cut - 1] != os.sep:
            return
        name = path[self.cut :].replace(os.sep, "/")
        head, _, rest = name.partition("/")
        if head == RESERVED_DIR:
            if not rest and is_directory:  # .sos/ itself came or went: so did its record
                core.note(None, txn=True, record=False)
            elif rest == RECORD_BASE:
                core.note(None, txn=True, record=there)
            elif rest.startswith(TXN_PREFIX):
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

"""PROTOTYPE for the benchmark only: the native path over watchfiles (Rust notify).

Mimics the few Observer calls the core makes, so the same handlers get events.
watchfiles gives a set of (change, path) per batch: no order inside a batch,
no directory flag, and no overflow signal (notify's Rescan event has no path
and watchfiles drops it).
"""

from __future__ import annotations

import os
import threading
from typing import Any

STEP_MS = int(os.environ.get("SOS_WATCHFILES_STEP_MS", "1"))
DEBOUNCE_MS = 50


class _Event:
    __slots__ = ("dest_path", "event_type", "is_directory", "src_path")

    def __init__(self, path: str, kind: str, is_directory: bool) -> None:
        self.src_path = path
        self.dest_path = ""
        self.event_type = kind
        self.is_directory = is_directory


class _Watch:
    def __init__(self, handler: Any, path: str, recursive: bool) -> None:
        from watchfiles._rust_notify import RustNotify

        self.handler = handler
        self.notify = RustNotify([path], False, False, 0, recursive, True)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="sos-watchfiles")

    def run(self) -> None:
        kinds = {1: "created", 2: "modified", 3: "deleted"}
        while not self.stop.is_set():
            batch = self.notify.watch(DEBOUNCE_MS, STEP_MS, 1000, self.stop)
            if isinstance(batch, str):
                continue
            # deletions last: a record created and removed in one batch is gone
            for change, path in sorted(batch, key=lambda c: c[0] == 3):
                kind = kinds[change]
                is_dir = os.path.isdir(path) if kind != "deleted" else "." not in path[-6:]
                self.handler.dispatch(_Event(path, kind, is_dir))

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        self.notify.close()


class FilesObserver:
    def __init__(self) -> None:
        self.watches: list[_Watch] = []
        self.started = False

    def schedule(self, handler: Any, path: str, recursive: bool, event_filter: Any) -> _Watch:
        watch = _Watch(handler, path, recursive)
        self.watches.append(watch)
        if self.started:
            watch.thread.start()
        return watch

    def unschedule(self, watch: _Watch) -> None:
        self.watches.remove(watch)
        watch.close()

    def start(self) -> None:
        self.started = True
        for watch in self.watches:
            watch.thread.start()

    def stop(self) -> None:
        for watch in self.watches:
            watch.close()
        self.watches.clear()

    def is_alive(self) -> bool:
        return False

    def join(self) -> None:
        pass

    def unschedule_all(self) -> None:
        self.stop()

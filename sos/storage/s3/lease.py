"""The exclusive lock of a store on object storage: a lease object.

There is no ``flock`` on S3. The lease is the object ``.sos/lease``, created
with ``If-None-Match: *`` (only one client can), holding its owner and its
duration. The holder renews it in the background every third of that
duration with a PUT conditional on its ETag, and deletes it on release with a
DELETE conditional on its ETag (never someone else's lease). A lease not
renewed for its duration plus one second (its holder died) is taken over with
a PUT conditional on the stale lease's ETag, so of several waiters exactly one
wins. Its age is judged on the server's clock alone (the response's ``Date``
minus the lease's ``Last-Modified``), so clients' clocks need not agree; HTTP
dates have whole seconds, hence the one second of margin.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from typing import Any, Protocol

from sos.errors import Error
from sos.format.names import RESERVED_DIR
from sos.storage.s3.client import age, quoted


class Objects(Protocol):
    """What a lease needs of its store's storage: three conditional requests.

    A protocol, not the storage class, so the lease does not import the
    storage that holds it (no import cycle)."""

    url: str

    def get_object(self, name: str, **conditions: str) -> dict[str, Any] | None: ...

    def put_object(self, name: str, data: bytes, **conditions: str) -> str | None: ...

    def delete_object(self, name: str, **conditions: str) -> bool: ...


__all__ = ["DEFAULT_LEASE_SECONDS", "LEASE_NAME", "Lease"]

#: The lease's object, in the reserved name space.
LEASE_NAME = f"{RESERVED_DIR}/lease"
#: How long a lease lasts without renewal: about how long a dead client can
#: block the store's exclusive lock.
DEFAULT_LEASE_SECONDS = 30.0
# Waiting for a lease: polls from 5 ms, growing to 250 ms, with jitter.
_FIRST_WAIT, _LONGEST_WAIT = 0.005, 0.25


class Lease:
    """The lock of one store handle: re-entrant per thread, other threads of
    the handle wait, other handles and clients are excluded by the lease."""

    def __init__(self, storage: Objects, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("lease seconds must be positive")
        self.seconds = float(seconds)
        self._storage = storage
        self._mutex = threading.RLock()  # held by the thread that holds the lease
        self._modes = threading.local()  # each thread's stack of acquire() levels
        self._depth = 0
        self._etag: str | None = None
        self._lost = False
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self._renew_lock = threading.Lock()

    def _stack(self) -> list[bool]:
        stack: list[bool] | None = getattr(self._modes, "stack", None)
        if stack is None:
            stack = self._modes.stack = []
        return stack

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        if not exclusive:  # single-object PUTs are atomic: readers need no lock
            self._stack().append(False)
            return True
        if not self._mutex.acquire(blocking):
            return False
        try:
            if self._depth == 0 and not self._take(blocking):
                self._mutex.release()
                return False
        except BaseException:
            self._mutex.release()
            raise
        self._depth += 1
        self._stack().append(True)
        return True

    def held(self) -> bool:
        """True if the calling thread holds the lock (shared or exclusive)."""
        return bool(self._stack())

    def release(self) -> None:
        stack = self._stack()
        if not stack:
            raise RuntimeError(f"{self._storage.url}: release() without acquire()")
        if not stack.pop():
            return
        try:
            self._depth -= 1
            if self._depth == 0:
                self._drop()
        finally:
            self._mutex.release()

    def _body(self) -> bytes:
        """Unique per write, so that each version of the lease has its own ETag."""
        return json.dumps(
            {
                "owner": secrets.token_hex(8),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "seconds": self.seconds,
            }
        ).encode()

    def _take(self, blocking: bool) -> bool:
        wait = _FIRST_WAIT
        while True:
            etag = self._storage.put_object(LEASE_NAME, self._body(), IfNoneMatch="*")
            if etag is None:
                etag = self._take_over_stale()
            if etag is not None:
                self._etag, self._lost = etag, False
                self._start_renewing()
                return True
            if not blocking:
                return False
            time.sleep(wait * (0.5 + secrets.randbelow(1000) / 1000))
            wait = min(wait * 1.5, _LONGEST_WAIT)

    def _take_over_stale(self) -> str | None:
        """Overwrite the current lease if it outlived its duration: its new
        ETag if we took it, None if it is live (or changed meanwhile)."""
        response = self._storage.get_object(LEASE_NAME)
        if response is None:
            return None  # released meanwhile: the next PUT may win
        held_for = age(response)
        try:
            seconds = float(json.loads(response["Data"])["seconds"])
        except (ValueError, KeyError, TypeError):
            seconds = self.seconds  # an unreadable lease is judged by our duration
        if held_for is None or held_for <= seconds + 1:
            return None
        return self._storage.put_object(LEASE_NAME, self._body(), IfMatch=quoted(response["ETag"]))

    def _start_renewing(self) -> None:
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew,
            args=(self._stop,),
            name=f"sos lease {self._storage.url}",
            daemon=True,
        )
        self._renewer.start()

    def _renew(self, stop: threading.Event) -> None:
        """Keep the lease fresh while held: a live holder is never stale."""
        while not stop.wait(self.seconds / 3):
            with self._renew_lock:
                if stop.is_set() or self._etag is None:
                    return
                try:
                    etag = self._storage.put_object(LEASE_NAME, self._body(), IfMatch=self._etag)
                except Error:
                    continue  # a passing network failure: try again next time
                if etag is None:
                    self._lost = True
                    return
                self._etag = etag

    def _drop(self) -> None:
        self._stop.set()
        with self._renew_lock:
            etag, lost = self._etag, self._lost
            self._etag = None
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if etag is None:
            return
        if lost or not self._storage.delete_object(LEASE_NAME, IfMatch=etag):
            raise Error(
                f"{self._storage.url}: the store's lease ({LEASE_NAME}) expired while held "
                "and another client took it over; the last change under it may have "
                f"interleaved with theirs (lease duration {self.seconds:g} s)",
                self._storage.url,
            )

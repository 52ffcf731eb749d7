"""Which thread of this process holds a store's lock, and through which handle.

A second handle of the same store asked for its lock by a thread that
already holds it through another handle would wait for itself (flock and
LockFileEx know processes, not threads): it is refused with a message
instead. One registry serves the posix and the Windows lock.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING

from sos.errors import Error

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["HOLDERS", "Holders", "LockContext"]


class Holders:
    """(store identity, thread id) -> the handle's lock that thread holds.

    One flat dict, each method a single ``get``, store or ``pop`` on it (atomic
    under the GIL, and per dict in free-threaded builds): no lock of its own
    on the path of every write (three lock round trips a set, ~1 µs)."""

    def __init__(self) -> None:
        self._held: dict[tuple[Hashable, int], object] = {}

    def refuse_another(self, store: Hashable, mine: object, directory: str) -> None:
        """Raise if this thread holds ``store``'s lock through another handle."""
        other = self._held.get((store, threading.get_ident()))
        if other is not None and other is not mine:
            raise Error(
                f"{directory}: this thread already holds the store's lock through "
                "another handle (inside its batch or transaction, or a check); use that "
                "handle, or finish its block first",
                directory,
            )

    def add(self, store: Hashable, mine: object) -> None:
        self._held[(store, threading.get_ident())] = mine

    def discard(self, store: Hashable | None, mine: object) -> None:
        """This thread does not hold ``store``'s lock through ``mine`` (another
        handle's hold, refused to ``mine``, stays)."""
        key = (store, threading.get_ident())
        if self._held.get(key) is mine:
            self._held.pop(key, None)

    def remove(self, store: Hashable | None) -> None:
        """This thread no longer holds ``store``'s lock."""
        if store is not None:
            self._held.pop((store, threading.get_ident()), None)


HOLDERS = Holders()


class LockContext:
    """``with lock:`` for the store locks (posix and Windows): the exclusive
    lock taken on entry and released on exit, written once."""

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

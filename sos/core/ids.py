"""Fresh List item ids: a random prefix per handle (and per process) and a counter."""

from __future__ import annotations

import os

from sos.storage import forks

__all__ = ["IdMaker"]


class IdMaker:
    """A prefix per handle (and per process, after fork) means no two
    writers, on this machine or another, can ever make the same id, and
    each handle extends only its own run: two clones' appends land on
    separate lines, which git's union merge keeps side by side. An id made
    here names no file yet, so its first write has no old file to keep
    anything of."""

    __slots__ = ("_forks", "_next", "_prefix")

    def __init__(self) -> None:
        self._prefix = ""
        self._forks = -1
        self._next = 0

    def make(self, count: int) -> list[str]:
        if self._forks != forks.count:  # a forked child draws its own prefix
            self._prefix = os.urandom(8).hex()  # secrets.token_hex, without its import
            self._forks = forks.count
            self._next = 0
        first = self._next
        self._next += count
        return [f"{self._prefix}-{n}" for n in range(first, first + count)]

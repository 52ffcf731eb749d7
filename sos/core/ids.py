"""Fresh List item ids: a random prefix per handle (and per process) and a counter."""

from __future__ import annotations

import os

__all__ = ["IdMaker"]

# Forks of this process so far: a child draws its own id prefix (a hook, not
# a getpid() per append).
_forks = [0]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


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
        if self._forks != _forks[0]:
            self._prefix = os.urandom(8).hex()  # secrets.token_hex, without its import
            self._forks = _forks[0]
            self._next = 0
        first = self._next
        self._next += count
        return [f"{self._prefix}-{n}" for n in range(first, first + count)]

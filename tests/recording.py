"""The one recording :class:`sos.storage.fileops.FileOps` of the test suites.

Every write's filesystem steps go through ``sos.storage.atomic.ops``. Tests put a
:class:`Recording` there to see the steps (names, paths, counts, bytes), to
make one step fail with ``OSError`` (error handling), or to ``os._exit`` just
before step *k* as ``kill -9`` would (crash points). The power-loss model
replays its :attr:`Recording.calls` log.

Each step is performed and logged under one lock, so the log is the order the
steps really ran in, also when ``write_files`` runs them from a thread pool.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sos.storage import atomic as _atomic
from sos.storage.fileops import FileOps

CRASH_EXIT = 77  # a child stopped on purpose before a step
CRASH_EXIT_WRITE = 78  # ... before (or halfway through) a write step, if asked


class Recording(FileOps):
    """Performs each step for real and records it.

    * ``steps``: ``(name, path)`` per step: the directory for ``open_temp``
      and ``mkdir``, the temp file for ``write``/``fsync``/``chmod``/``close``,
      the target for ``rename``, the path for ``unlink`` and ``fsync_dir``.
    * ``calls``: each step that was done, with its arguments (``fd``, both
      rename paths, the bytes written when ``keep_data``), for the power-loss
      model. ``steps`` also has those that failed (an ``unlink`` of a missing
      file, an injected failure).
    * ``fail="fsync", nth=2``: the second ``fsync`` raises ``OSError`` (after
      ``open_temp`` and ``close`` have happened, as the OS would fail them);
      ``nth=None``: every ``fsync`` does. ``fail={"write", "fsync"}, nth=3``:
      the third step that is either. The error is ``error`` (``EIO``; a
      full disk is ``ENOSPC``).
    * ``raise_at=k``: step *k* (0-based, counting every step) raises instead.
    * ``die_at=k``: the process ``os._exit``\\ s (no cleanup, no ``finally``)
      when step *k* is about to run, with ``exit_code``, or ``write_exit_code``
      when that step is a ``write``; ``torn=True`` writes half its bytes first.
    """

    def __init__(
        self,
        die_at: int | None = None,
        *,
        fail: str | Collection[str] | None = None,
        nth: int | None = 1,
        error: int = errno.EIO,
        raise_at: int | None = None,
        torn: bool = False,
        exit_code: int = CRASH_EXIT,
        write_exit_code: int | None = None,
        keep_data: bool = False,
    ) -> None:
        self.steps: list[tuple[str, str]] = []
        self.calls: list[tuple[Any, ...]] = []
        self.bytes_written = 0
        self.fail = {fail} if isinstance(fail, str) else set(fail or ())
        self.nth = nth
        self.error = error
        self.raise_at = raise_at
        self.die_at = die_at
        self.torn = torn
        self.exit_code = exit_code
        self.write_exit_code = exit_code if write_exit_code is None else write_exit_code
        self.keep_data = keep_data
        self._index = 0  # steps taken, also those cleared from ``steps``
        self._failable = 0  # steps seen whose name is in ``fail``
        self._fd_paths: dict[int, str] = {}
        self._lock = threading.RLock()

    # -- what was recorded --------------------------------------------------------

    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    def paths(self, name: str) -> list[str]:
        """The path of each step called ``name``, in order."""
        return [path for step, path in self.steps if step == name]

    def count(self, name: str | None = None) -> int:
        return len(self.steps) if name is None else len(self.paths(name))

    def clear(self) -> None:
        with self._lock:
            self.steps.clear()
            self.calls.clear()
            self.bytes_written = 0

    # -- the gate every step passes ------------------------------------------------------

    def _enter(self, name: str, fd: int = -1, data: bytes = b"") -> int:
        """Number the step about to run; die here if it is step ``die_at``."""
        index = self._index
        self._index += 1
        if index == self.die_at:
            if name != "write":
                os._exit(self.exit_code)
            if self.torn:
                os.write(fd, data[: max(1, len(data) // 2)])
            os._exit(self.write_exit_code)
        return index

    def _record(self, index: int, name: str, path: str) -> None:
        """Record step ``index`` in ``steps``; raise if it is the one to fail.
        (``calls`` gets the step once it has been done.)"""
        self.steps.append((name, path))
        if name in self.fail:
            self._failable += 1
        if index == self.raise_at or (name in self.fail and self.nth in (None, self._failable)):
            raise OSError(self.error, f"injected failure in {name} (step {index})")

    # -- the steps (each performed and recorded under the lock) ---------------------------

    def open_temp(self, directory: str) -> tuple[int, str]:
        with self._lock:
            index = self._enter("open_temp")
            fd, path = super().open_temp(directory)
            try:
                self._record(index, "open_temp", directory)
            except OSError:  # as if the open itself had failed
                os.close(fd)
                os.unlink(path)
                raise
            self._fd_paths[fd] = path
            self.calls.append(("open_temp", fd, path))
            return fd, path

    def write(self, fd: int, data: bytes) -> None:
        with self._lock:
            index = self._enter("write", fd, data)
            self._record(index, "write", self._fd_paths.get(fd, "?"))
            super().write(fd, data)
            self.bytes_written += len(data)
            self.calls.append(("write", fd, bytes(data) if self.keep_data else len(data)))

    def fsync(self, fd: int) -> None:
        with self._lock:
            self._record(self._enter("fsync"), "fsync", self._fd_paths.get(fd, "?"))
            super().fsync(fd)
            self.calls.append(("fsync", fd))

    def chmod(self, fd: int, mode: int) -> None:
        with self._lock:
            self._record(self._enter("chmod"), "chmod", self._fd_paths.get(fd, "?"))
            super().chmod(fd, mode)
            self.calls.append(("chmod", fd, mode))

    def close(self, fd: int) -> None:
        with self._lock:
            index = self._enter("close")
            # As the OS does: the descriptor is gone even when close fails.
            super().close(fd)
            self.calls.append(("close", fd))
            self._record(index, "close", self._fd_paths.pop(fd, "?"))

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            self._record(self._enter("rename"), "rename", dst)
            super().rename(src, dst)
            self.calls.append(("rename", src, dst))

    def unlink(self, path: str) -> None:
        with self._lock:
            self._record(self._enter("unlink"), "unlink", path)
            super().unlink(path)
            self.calls.append(("unlink", path))

    def mkdir(self, path: str) -> None:
        with self._lock:
            self._record(self._enter("mkdir"), "mkdir", path)
            super().mkdir(path)
            self.calls.append(("mkdir", path))

    def fsync_file(self, path: str) -> None:
        with self._lock:
            self._record(self._enter("fsync_file"), "fsync_file", path)
            FileOps().fsync_file(path)  # one step, not an fsync of an unknown fd
            self.calls.append(("fsync_file", path))

    def syncfs(self, path: str) -> bool:
        with self._lock:
            self._record(self._enter("syncfs"), "syncfs", path)
            done = FileOps().syncfs(path)
            if done:
                self.calls.append(("syncfs", path))
            return done

    def fsync_dir(self, path: str) -> None:
        with self._lock:
            self._record(self._enter("fsync_dir"), "fsync_dir", path)
            super().fsync_dir(path)
            self.calls.append(("fsync_dir", path))


def install(ops: FileOps) -> None:
    """Make ``ops`` the filesystem steps of every write from now on.

    A layer put there on purpose (a broken build of the mutant runs, see
    tests/reliability/mutants.py) has a ``below`` attribute: ``ops`` goes
    beneath it, so the broken build stays what the write path calls and the
    recording sees only the steps that build really takes.
    """
    current = _atomic.ops
    if hasattr(current, "below"):
        current.below = ops
    else:
        _atomic.ops = ops


@contextmanager
def installed(ops: FileOps) -> Iterator[FileOps]:
    """:func:`install` ``ops`` for the ``with`` block."""
    current = _atomic.ops
    saved = getattr(current, "below", current)
    install(ops)
    try:
        yield ops
    finally:
        install(saved)

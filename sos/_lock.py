"""One lock per store: a thread lock inside the process, ``flock`` across processes.

The cross-process lock is taken on the store *directory itself*, not on a lock
file, so no lock file is ever left in the store (it stays clean to commit), and
a process killed while holding it releases it with its file descriptors.
``flock`` (not ``fcntl``/POSIX record locks) because two handles in one
process must exclude each other too, and POSIX locks are per process.
The directory is never replaced by git or rsync, so every process locks the
same inode. Not for NFS: see README "Guarantees".
"""

from __future__ import annotations

import os
import threading

if os.name != "nt":
    import fcntl

__all__ = ["StoreLock"]


class _PosixStoreLock:
    """Re-entrant, exclusive, for one store handle."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd = -1
        self._fd_pid = -1

    def __enter__(self) -> _PosixStoreLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _descriptor(self) -> int:
        # After fork the child shares the parent's open file description, and
        # flock would not exclude the two: the child opens its own.
        if self._fd < 0 or self._fd_pid != os.getpid():
            self._fd = os.open(self._directory, os.O_RDONLY | os.O_CLOEXEC)
            self._fd_pid = os.getpid()
        return self._fd

    def __del__(self) -> None:  # a store dropped without close() must not leak its fd
        try:
            if self._fd >= 0 and self._fd_pid == os.getpid():
                os.close(self._fd)
        except Exception:
            pass

    def close(self) -> None:
        with self._thread_lock:
            if self._fd >= 0 and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd = -1


class _WindowsStoreLock:
    """Windows: a directory cannot be locked; the lock file ``.sos/lock`` is (see _win)."""

    def __init__(self, directory: str) -> None:
        from ._storage import RESERVED_DIR
        from ._win import FileLock

        self._lock = FileLock(os.path.join(directory, RESERVED_DIR, "lock"))

    def __enter__(self) -> _WindowsStoreLock:
        self._lock.acquire(exclusive=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def close(self) -> None:
        self._lock.close()


StoreLock = _WindowsStoreLock if os.name == "nt" else _PosixStoreLock

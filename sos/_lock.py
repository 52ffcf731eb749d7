"""One lock per store: a thread lock inside the process, ``flock`` across processes.

The cross-process lock is taken on the store *directory itself*, not on a lock
file, so no lock file is ever left in the store (it stays clean to commit), and
a process killed while holding it releases it with its file descriptors.
``flock`` (not ``fcntl``/POSIX record locks) because two handles in one
process must exclude each other too, and POSIX locks are per process.
The directory is never replaced by git or rsync, so every process locks the
same inode; a directory replaced under an open handle (``rm -rf S && mkdir
S``) is noticed when the lock is taken, and refused. Not for NFS: see README
"Guarantees".

Two handles of one store in one thread would deadlock on ``flock`` (the
second waits for the first, which waits for the thread): that is refused with
an error instead. Sharing the lock silently would let the second handle break
the isolation of the first one's batch.
"""

from __future__ import annotations

import os
import threading

from ._errors import Error

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: sos._win supplies the lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreLock"]

# (device, inode) of a store directory -> the thread ids holding its lock in
# this process, with the handle's lock each holds it through.
_holders: dict[tuple[int, int], dict[int, StoreLock]] = {}
_holders_lock = threading.Lock()


class StoreLock:
    """Re-entrant, shared or exclusive, for one store handle."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._exclusive = False
        self._fd = -1
        self._fd_pid = -1
        self._identity: tuple[int, int] | None = None

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        if not self._thread_lock.acquire(blocking):
            return False
        try:
            if self._depth == 0:
                if not self._take(exclusive, blocking):
                    self._thread_lock.release()
                    return False
            elif exclusive and not self._exclusive:
                raise Error(
                    f"{self._directory}: an exclusive lock asked for inside a shared one",
                    self._directory,
                )
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return True

    def _take(self, exclusive: bool, blocking: bool) -> bool:
        fd = self._descriptor()
        identity = self._identity
        assert identity is not None
        me = threading.get_ident()
        with _holders_lock:
            other = _holders.get(identity, {}).get(me)
        if other is not None and other is not self:
            raise Error(
                f"{self._directory}: this thread already holds the store's lock through "
                "another handle (inside its batch or transaction, or a check); use that "
                "handle, or finish its block first",
                self._directory,
            )
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, flags if blocking else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            self._check_identity()
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise
        with _holders_lock:
            _holders.setdefault(identity, {})[me] = self
        self._exclusive = exclusive
        return True

    def release(self) -> None:
        try:
            self._depth -= 1
            if self._depth == 0:
                identity = self._identity
                with _holders_lock:
                    holders = _holders.get(identity) if identity else None
                    if holders is not None:
                        holders.pop(threading.get_ident(), None)
                        if not holders:
                            del _holders[identity]  # type: ignore[arg-type]
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """True if the calling thread holds this lock."""
        return self._depth > 0 and self._thread_lock._is_owned()  # type: ignore[attr-defined]

    def pin(self) -> None:
        """Remember which directory this handle opened (one stat), so that a
        directory replaced before the first write is noticed too."""
        st = os.stat(self._directory)
        self._identity = (st.st_dev, st.st_ino)

    def _descriptor(self) -> int:
        # After fork the child shares the parent's open file description, and
        # flock would not exclude the two: the child opens its own.
        if self._fd < 0 or self._fd_pid != os.getpid():
            self._fd = os.open(self._directory, os.O_RDONLY | os.O_CLOEXEC)
            self._fd_pid = os.getpid()
            st = os.fstat(self._fd)
            if self._identity is None:
                self._identity = (st.st_dev, st.st_ino)
        return self._fd

    def _check_identity(self) -> None:
        """Refuse a store directory replaced since this handle first locked it."""
        try:
            st = os.stat(self._directory)
        except FileNotFoundError:
            raise Error(
                f"{self._directory}: the store's directory was removed while open", self._directory
            ) from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise Error(
                f"{self._directory}: the store's directory was replaced while open "
                "(removed and made again, or a checkout of another tree); open it again",
                self._directory,
            )

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


if os.name == "nt":  # Windows: no flock; LockFileEx on the store's .sos/lock (sos._win)
    from ._win import WindowsStoreLock as StoreLock  # type: ignore[assignment]

"""One lock per store: a thread lock inside the process, ``flock`` across processes.

The cross-process lock is taken on the store *directory itself*, not on a lock
file, so no lock file is ever left in the store (it stays clean to commit), and
a process killed while holding it releases it with its file descriptors.
``flock`` (not ``fcntl``/POSIX record locks) because two handles in one
process must exclude each other too, and POSIX locks are per process.
The directory is never replaced by git or rsync, so every process locks the
same inode. The descriptor the lock is taken on is also the one every write
is made relative to (``openat``/``renameat``, see :class:`sos.storage.fileops.At`):
a write can only land in the directory this handle locks, and in a
directory removed under an open handle (``rm -rf S && mkdir S``) it fails,
so a plain write needs no stat of the store's path. Where a write depends
on what was read by path (the exclusive lock: transactions and compound
changes), the directory at the path must still be the one held, or the lock
is refused (one stat). Not for NFS: see README "Guarantees".

Two handles of one store in one thread would deadlock on ``flock`` (the
second waits for the first, which waits for the thread): that is refused with
an error instead. Sharing the lock silently would let the second handle break
the isolation of the first one's batch.

Forks: a child shares its parent's open file descriptions, and so its flocks,
so it never unlocks a descriptor it inherited (it opens its own); a lock that
another thread of the parent held at the fork starts free in the child, whose
copy of that thread will never release it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable

from sos.errors import Error
from sos.storage import forks
from sos.storage.holders import HOLDERS, LockContext

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: sos.storage.windows supplies the lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["StoreLock", "locking_error"]

_O_DIR = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_DIRECTORY", 0)


class StoreLock(LockContext):
    """Re-entrant, shared or exclusive, for one store handle."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._exclusive = False
        self._fd = -1
        self._fd_pid = -1
        self._fd_forks = -1
        self._identity: tuple[int, int] | None = None
        _LOCKS.add(self)

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        if not self._thread_lock.acquire(blocking):
            return False
        try:
            if self._depth == 0:
                taken = self._take(exclusive, blocking)
            elif exclusive and not self._exclusive:
                raise Error(
                    f"{self._directory}: an exclusive lock asked for inside a shared one",
                    self._directory,
                )
            else:
                taken = True
            if taken:
                self._depth += 1
        except BaseException:  # the thread lock still held here, on every path
            if self._depth == 0:  # e.g. an interrupt as the flock returned
                self._let_go_untaken()
            self._thread_lock.release()
            raise
        if not taken:  # outside the try: nothing of this handle's to undo after it
            self._thread_lock.release()
        return taken

    def _let_go_untaken(self) -> None:
        """Undo a first take that did not complete: no thread of this handle holds
        the lock (the thread lock keeps them out), so an unlock releases only
        what this failed take may have got, and it is never left held."""
        HOLDERS.discard(self._identity, self)
        if self._fd >= 0 and self._fd_forks == forks.count:  # never a parent's descriptor
            with contextlib.suppress(OSError, ValueError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _take(self, exclusive: bool, blocking: bool) -> bool:
        fd = self._fd if self._fd >= 0 and self._fd_forks == forks.count else self.descriptor()
        identity = self._identity
        assert identity is not None
        HOLDERS.refuse_another(identity, self, self._directory)
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, flags if blocking else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise locking_error(exc, self._directory) from exc
        if exclusive:  # what it writes may depend on what was read by path
            try:
                self._check_identity()
            except BaseException:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise
        HOLDERS.add(identity, self)
        self._exclusive = exclusive
        return True

    def release(self) -> None:
        if self._depth <= 0 or not self._thread_lock._is_owned():  # type: ignore[attr-defined]
            # Unbalanced, or another thread's hold: change nothing (a depth of -1 would
            # make every later acquire of this handle take no flock at all).
            raise RuntimeError(f"{self._directory}: the store's lock released but not held")
        try:
            if self._depth == 1:
                # The flock released, never raising: it comes after a commit, and a
                # failed unlock must not turn a change made (a popped value) into an
                # error. Closing the descriptor releases the lock just as well.
                try:
                    try:
                        if self._fd_forks == forks.count:  # never a parent's descriptor
                            fcntl.flock(self._fd, fcntl.LOCK_UN)
                    except (OSError, ValueError):  # ValueError: closed meanwhile (-1)
                        drop_descriptor(self)
                finally:  # after the unlock: an interrupt before it cannot leave it held
                    self._depth = 0
                    HOLDERS.remove(self._identity)
            else:
                self._depth -= 1
        finally:
            self._thread_lock.release()

    @property
    def held(self) -> bool:
        """True if the calling thread holds this lock."""
        return self._depth > 0 and self._thread_lock._is_owned()  # type: ignore[attr-defined]

    def pin(self) -> None:
        """Remember which directory this handle opened (one stat), so that a
        directory replaced before the first write is noticed too."""
        st = os.stat(self._directory)
        self._identity = (st.st_dev, st.st_ino)

    def descriptor(self) -> int:
        """The store directory's descriptor: locks are taken on it and writes
        made relative to it. Opened at the first use (and again in a forked
        child: flock would not exclude the two otherwise), and refused if the
        directory at the path is no longer the one this handle opened."""
        if self._fd >= 0 and self._fd_forks == forks.count:
            return self._fd
        try:
            fd = os.open(self._directory, _O_DIR)
        except FileNotFoundError:
            if self._identity is None:
                raise
            raise self._removed() from None
        st = os.fstat(fd)
        if self._identity is None:
            self._identity = (st.st_dev, st.st_ino)
        elif (st.st_dev, st.st_ino) != self._identity:
            os.close(fd)
            raise self._replaced()
        self._fd, self._fd_pid, self._fd_forks = fd, os.getpid(), forks.count
        return fd

    def gone(self) -> Error | None:
        """The error to raise if the held directory was removed, else None
        (one fstat: for a failure path, to say why a write found nothing
        where it wrote)."""
        if self._fd < 0:
            return None
        try:
            removed = os.fstat(self._fd).st_nlink == 0
        except OSError:
            return None
        return self._removed() if removed else None

    def _removed(self) -> Error:
        return Error(
            f"{self._directory}: the store's directory was removed while open "
            "(perhaps removed and made again); open it again",
            self._directory,
        )

    def _replaced(self) -> Error:
        return Error(
            f"{self._directory}: the store's directory was replaced while open "
            "(removed and made again, or a checkout of another tree); open it again",
            self._directory,
        )

    def _check_identity(self) -> None:
        """Refuse a store directory replaced since this handle first locked it."""
        try:
            st = os.stat(self._directory)
        except FileNotFoundError:
            raise self._removed() from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise self._replaced()

    def __del__(self) -> None:  # a store dropped without close() must not leak its fd
        try:
            if self._fd >= 0 and self._fd_pid == os.getpid():
                os.close(self._fd)
        except Exception:
            pass

    def close(self, first: Callable[[], None] | None = None) -> None:
        """Close the descriptor, after ``first()`` (the storage's own
        descriptors), both while no write of this handle runs: a write holds
        the thread lock from its first step to its last."""
        with self._thread_lock:
            if first is not None:
                first()
            mine = self._fd >= 0 and self._fd_pid == os.getpid()
            # Forgotten, then closed, with no Python call between (an interrupt is raised
            # only at one): never a closed number kept (it may be another file's by then).
            fd, self._fd = self._fd, -1
            if mine:
                os.close(fd)


def drop_descriptor(lock: StoreLock) -> None:
    """After a failed unlock: forget ``lock``'s descriptor, then close it (which
    releases the flock just as well), never raising. No Python call comes
    between the two (an interrupt is raised only at one), so an interrupt
    leaves neither a closed number remembered (the next ``open`` may give it to
    another file) nor an open one forgotten with the flock on it."""
    fd, lock._fd = lock._fd, -1
    try:  # noqa: SIM105 (contextlib.suppress would be a Python call before the close)
        os.close(fd)
    except OSError:
        pass


_LOCKS: weakref.WeakSet[StoreLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A lock held at the fork by another thread of the parent (which the child
    does not have) would block the child's first write for ever: it starts free.
    A hold of the forking thread stays (its with block releases it)."""
    for lock in list(_LOCKS):
        if not lock._thread_lock._is_owned():  # type: ignore[attr-defined]
            lock._thread_lock = threading.RLock()
            lock._depth = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def locking_error(exc: OSError, directory: str) -> OSError:
    """A failed flock's error, naming the store (the call names no file)."""
    return OSError(exc.errno, f"{exc.strerror} (locking the store)", directory)


if os.name == "nt":  # Windows: no flock; LockFileEx on the store's .sos/lock (sos.storage.windows)
    from sos.storage.windows import WindowsStoreLock as StoreLock  # type: ignore[assignment]

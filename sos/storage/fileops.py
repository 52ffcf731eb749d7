"""The file-system steps of every write, as one replaceable object (the crash tests' seam), and
paths relative to a held directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from sos.errors import NotDurableError
from sos.storage import forks

TEMP_PREFIX = ".sos-tmp-"


def _find_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _find_syncfs()


# Below this many files, fsync each (in parallel) rather than the filesystem.
SYNCFS_FROM = 64


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0)


_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


# Windows: without O_BINARY the CRT opens in text mode and writes LF as CRLF.
_O_BINARY = getattr(os, "O_BINARY", 0)


_O_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY


_WINDOWS = os.name == "nt"


# FlushFileBuffers needs write access: Windows refuses os.fsync on a read-only fd.
_O_SYNC_FILE = (
    (os.O_RDWR | _O_BINARY if _WINDOWS else os.O_RDONLY) | _O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
)


# Temp names: 8 random hex digits drawn once per process (again in a forked
# child) and a counter, 16 hex digits in all, instead of a getrandom() per
# write. O_EXCL makes a clash (another process's name) a retry, never a
# shared file, so the names need only be unlikely to clash, not secret.
_token = ""
_counter = itertools.count()


def _new_token() -> None:
    global _token, _counter
    _token = os.urandom(4).hex()  # secrets.token_hex, without its import
    _counter = itertools.count()


_new_token()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_token)


def temp_name() -> str:
    """A fresh temp file name (the faults suite's seam for "just before the
    temp file is made")."""
    return f"{TEMP_PREFIX}{_token}{next(_counter) & 0xFFFFFFFF:08x}"


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


class At(str):
    """An absolute path that also knows itself as ``rel`` under the directory
    descriptor ``fd`` (``rel`` empty: that directory itself).

    A ``str``, so messages, logs and the tests' recordings see the path they
    always saw; the steps below use ``fd`` and ``rel``."""

    fd: int
    rel: str
    up: At | None  # its parent(), made once: a store's paths are remembered per name
    # A directory a storage remembers (see hold_directory): its own descriptor,
    # kept open from its second fsync on, and the (inode, device) it was opened
    # as, with forks.count when it was kept (a forked child's differs).
    holds = False
    synced = False  # fsynced once already: the second fsync keeps the descriptor
    held = -1
    held_id: tuple[int, int, int] = (0, 0, -1)

    def __new__(cls, path: str, fd: int, rel: str) -> At:
        self = str.__new__(cls, path)
        self.fd = fd
        self.rel = rel
        self.up = None
        return self

    def child(self, name: str) -> At:
        return At(self + "/" + name, self.fd, self.rel + "/" + name if self.rel else name)


def _held_directories() -> int:
    try:
        import resource
    except ImportError:  # Windows: no directory fsync, nothing is kept
        return 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 512 if soft == resource.RLIM_INFINITY else max(0, min(512, soft // 4))


#: Directory descriptors kept open across writes, in the whole process: a
#: store's fan-out directory is then fsynced with a stat and an fsync instead
#: of open, fsync and close (issue 21). At most 512 (two stores' whole
#: fan-outs; descriptors above 1,023 break a program's select()) and at most
#: a quarter of the descriptor limit (256 under the common 1,024). Beyond it
#: a directory is opened and closed as before.
HELD_DIRECTORIES = _held_directories()
_held_count = 0
# Re-entrant: a finalizer run by the garbage collector inside a section
# (sections allocate nothing the collector tracks) must not wait for itself.
_held_lock = threading.RLock()
# A descriptor is kept with forks.count as it was: a forked child never
# fsyncs nor closes one its parent kept (it may have reused the number).


def _forked_child() -> None:
    global _held_count, _held_lock
    _held_count, _held_lock = 0, threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked_child)


def hold_directory(path: At) -> At:
    """Mark ``path`` (a directory relative to a held one) to keep its own
    descriptor open from its second fsync on; its owner calls :func:`let_go`."""
    path.holds = True
    return path


def let_go(path: At) -> None:
    """Close the descriptor :meth:`FileOps.fsync_dir` kept for ``path``, if
    any and if this process opened it. The owner calls it where no write of
    its own runs (under the lock its writes hold)."""
    global _held_count
    path.holds = False
    with _held_lock:
        fd, path.held = path.held, -1
        if fd < 0 or path.held_id[2] != forks.count:
            return
        _held_count -= 1
    with contextlib.suppress(OSError):  # closed under us: nothing left to free
        os.close(fd)


def parent(path: str) -> str:
    """The directory of ``path``; an :class:`At` for an :class:`At`."""
    if type(path) is At:
        up = path.up
        if up is None:
            rel = path.rel
            cut = rel.rfind("/")
            up = path.up = At(path[: path.rfind("/")], path.fd, rel[:cut] if cut >= 0 else "")
        return up
    return os.path.dirname(path) or "."


class FileOps:
    """The filesystem steps a write may take. Tests subclass or wrap this."""

    def open_temp(self, directory: str) -> tuple[int, str]:
        while True:
            name = temp_name()
            try:
                if type(directory) is At:
                    path: str = directory.child(name)
                    try:  # _named's work inline: this is on every write's path
                        fd = os.open(path.rel, _O_TEMP, 0o666, dir_fd=directory.fd)  # type: ignore[attr-defined]
                    except OSError as exc:
                        _raise_named(exc, path)
                else:
                    path = os.path.join(directory, name)
                    fd = os.open(path, _O_TEMP, 0o666)
            except FileExistsError:  # pragma: no cover - 32 random bits and a counter
                continue
            return fd, path

    def write(self, fd: int, data: bytes) -> None:
        if not data:
            return
        written = os.write(fd, data)
        if written < len(data):  # a short write (a signal, a full pipe): the rest
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(fd, view) :]

    if sys.platform == "darwin":  # pragma: no cover - plain fsync is not durable there

        def fsync(self, fd: int) -> None:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)

    else:

        def fsync(self, fd: int) -> None:
            os.fsync(fd)

    def chmod(self, fd: int, mode: int) -> None:
        if _WINDOWS and not hasattr(os, "fchmod"):  # Windows: os.fchmod is 3.13+
            return  # its one mode bit is read-only, which the replace then refuses
        os.fchmod(fd, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        if _WINDOWS:  # write-through, retried while the target is held open
            from sos.storage import windows as _win

            _win.replace(src, dst)
            return
        if type(src) is At and type(dst) is At:
            try:  # _named's work inline: this is on every write's path
                os.replace(src.rel, dst.rel, src_dir_fd=src.fd, dst_dir_fd=dst.fd)
            except OSError as exc:
                _raise_named(exc, dst)
            return
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        if type(path) is At:
            _named(os.unlink, path, path.rel, dir_fd=path.fd)
        else:
            os.unlink(path)

    def mkdir(self, path: str) -> None:
        if type(path) is At:
            _named(os.mkdir, path, path.rel, dir_fd=path.fd)
        else:
            os.mkdir(path)

    def fsync_file(self, path: str) -> None:
        """fsync a file written earlier without it (a transaction's apply step);
        a file removed since is skipped: its directory's fsync covers that."""
        try:
            fd = _open_at(path, _O_SYNC_FILE)
        except FileNotFoundError:
            return
        try:
            self.fsync(fd)
        except OSError as exc:
            raise with_path(exc, path) from None
        finally:
            os.close(fd)

    def syncfs(self, path: str) -> bool:
        """Flush the whole filesystem holding ``path`` (Linux ``syncfs``):
        one call instead of an fsync per file, for a transaction's deferred
        durability. False where there is no such call (then nothing was done)."""
        if _SYNCFS is None:
            return False
        try:
            fd = _open_at(path, os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), path)
        finally:
            os.close(fd)
        return True

    def fsync_dir(self, path: str) -> None:
        if _WINDOWS:
            # No directory fsync exists (opening one fails): NTFS journals the
            # rename itself, made write-through by _win.replace.
            return
        if type(path) is At:
            if not path.rel:  # the held directory: no open, no close
                FileOps.fsync(self, path.fd)
                return
            if path.holds:
                self._fsync_kept(path)
                return
        fd = _open_at(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            FileOps.fsync(self, fd)  # not self.fsync: a subclass sees one step, not two
        finally:
            os.close(fd)

    def _fsync_kept(self, path: At) -> None:
        """fsync a directory through the descriptor kept for it, after a stat
        shows the directory at its path is still the one that descriptor
        opened (an open descriptor keeps its inode from being reused). A
        directory replaced since (``rm -rf``, a checkout that remade it) is
        opened, fsynced and closed as before, and is not kept again: the old
        descriptor stays open until :func:`let_go`, so no other thread can
        fsync a closed or reused descriptor number. One kept by the parent
        of this forked process is forgotten, neither used nor closed.
        Nothing kept yet: opened and fsynced as before, then, from the
        directory's second fsync on, kept (one ``fstat`` for its identity) if
        the process's limit allows: a directory written once costs what it did."""
        global _held_count
        fd = path.held
        if fd >= 0:
            try:
                st = os.stat(path.rel, dir_fd=path.fd, follow_symlinks=False)
            except OSError as exc:
                _raise_named(exc, path)
            if (st.st_ino, st.st_dev, forks.count) == path.held_id:
                FileOps.fsync(self, fd)
                return
            if path.held_id[2] == forks.count:
                path.holds = False  # replaced: from now on opened and closed each time
            else:
                path.held = -1  # the parent's: kept again below, in this process
        fd = _open_at(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        keep = False
        try:
            FileOps.fsync(self, fd)
            if not path.synced:
                path.synced = True
            elif path.holds and _held_count < HELD_DIRECTORIES:
                try:  # the write is durable by now: a failure here only keeps nothing
                    st = os.fstat(fd)
                except OSError:
                    return
                identity = (st.st_ino, st.st_dev, forks.count)
                with _held_lock:
                    if path.holds and path.held < 0 and _held_count < HELD_DIRECTORIES:
                        _held_count += 1
                        path.held_id = identity
                        path.held = fd
                        keep = True
        finally:
            if not keep:
                os.close(fd)


def _open_at(path: str, flags: int) -> int:
    if type(path) is At:
        try:  # _named's work inline: a directory fsync on every write's path
            return os.open(path.rel or ".", flags, dir_fd=path.fd)
        except OSError as exc:
            _raise_named(exc, path)
    return os.open(path, flags)


def _named(call: Callable[..., Any], path: str, *args: Any, **kwargs: Any) -> Any:
    """``call(*args)`` relative to a held directory, its errors naming the
    absolute ``path`` (the kernel's error names only the relative part)."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        _raise_named(exc, path)


def _raise_named(exc: OSError, path: str) -> NoReturn:
    """Raise ``exc``, naming the absolute ``path`` if it named only the
    relative part (or nothing)."""
    if exc.filename == str(path):
        raise exc
    raise type(exc)(exc.errno, exc.strerror, str(path)) from exc


def with_path(exc: OSError, path: str) -> OSError:
    """``exc`` naming ``path``: an error from write, fsync, read or flock on a
    descriptor carries no file name, and a message must say which file."""
    if exc.filename is not None or isinstance(exc, NotDurableError):
        return exc
    named = type(exc)(exc.errno, exc.strerror, path)
    named.__cause__ = exc
    return named

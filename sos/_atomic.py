"""Durable, atomic file replacement and removal. Knows no JSON.

This is the only module that touches temporary names or ``fsync``. Every
filesystem step a write takes goes through :data:`ops`, one small object the
crash tests replace to stop a call after step *k* or to record the steps for
the power-loss model.

What a write does (POSIX)::

    open(dir/.sos-tmp-XXXX, O_CREAT|O_EXCL|O_WRONLY, 0o666)   # umask applies
    write(...); fsync(fd); close(fd)
    rename(tmp, target)                                      # atomic replace
    open(dir, O_RDONLY); fsync(dirfd); close(dirfd)          # the rename is durable

Relative to a held directory: a path may be an :class:`At`, the same string
that also names itself relative to a descriptor of the store's directory
held open since the store was opened. Its steps then use ``openat``,
``renameat``, ``unlinkat``, ``mkdirat`` and an ``fsync`` of the held
descriptor, so a store directory removed (and perhaps made again) under an
open handle makes the next write fail (the kernel creates nothing in a
removed directory) at no cost per write, and the store's own directory is
fsynced with no ``open``/``close``. A plain ``str`` works as before (Windows,
tests of this module).

``atomicwrites`` supplies the commit-or-rollback skeleton through its
``AtomicWriter`` extension points; upstream is unmaintained since 2022, so all
that depends on it is :class:`_Writer` below, small enough to replace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from atomicwrites import AtomicWriter

from ._errors import NotDurableError

__all__ = [
    "TEMP_PREFIX",
    "At",
    "is_temp_name",
    "make_dirs",
    "move_file",
    "ops",
    "publish",
    "remove_files",
    "stage_file",
    "sync_dir",
    "sync_files",
    "unlink_files",
    "write_file",
    "write_files",
]

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


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


class At(str):
    """An absolute path that also knows itself as ``rel`` under the directory
    descriptor ``fd`` (``rel`` empty: that directory itself).

    A ``str``, so messages, logs and the tests' recordings see the path they
    always saw; the steps below use ``fd`` and ``rel``."""

    fd: int
    rel: str

    def __new__(cls, path: str, fd: int, rel: str) -> At:
        self = str.__new__(cls, path)
        self.fd = fd
        self.rel = rel
        return self

    def child(self, name: str) -> At:
        return At(self + "/" + name, self.fd, self.rel + "/" + name if self.rel else name)


def parent(path: str) -> str:
    """The directory of ``path``; an :class:`At` for an :class:`At`."""
    if type(path) is At:
        rel = path.rel
        cut = rel.rfind("/")
        return At(path[: path.rfind("/")], path.fd, rel[:cut] if cut >= 0 else "")
    return os.path.dirname(path) or "."


class FileOps:
    """The filesystem steps a write may take. Tests subclass or wrap this."""

    def open_temp(self, directory: str) -> tuple[int, str]:
        while True:
            name = TEMP_PREFIX + secrets.token_hex(8)
            try:
                if type(directory) is At:
                    path: str = directory.child(name)
                    fd = _named(os.open, path, path.rel, _O_TEMP, 0o666, dir_fd=directory.fd)  # type: ignore[attr-defined]
                else:
                    path = os.path.join(directory, name)
                    fd = os.open(path, _O_TEMP, 0o666)
            except FileExistsError:  # pragma: no cover - 64 random bits
                continue
            return fd, path

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def fsync(self, fd: int) -> None:
        if sys.platform == "darwin":  # pragma: no cover - plain fsync is not durable there
            import fcntl

            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
        else:
            os.fsync(fd)

    def chmod(self, fd: int, mode: int) -> None:
        if _WINDOWS and not hasattr(os, "fchmod"):  # Windows: os.fchmod is 3.13+
            return  # its one mode bit is read-only, which the replace then refuses
        os.fchmod(fd, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        if _WINDOWS:  # write-through, retried while the target is held open
            from . import _win

            _win.replace(src, dst)
            return
        if type(src) is At and type(dst) is At:
            _named(os.replace, dst, src.rel, dst.rel, src_dir_fd=src.fd, dst_dir_fd=dst.fd)
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
        if type(path) is At and not path.rel:  # the held directory: no open, no close
            FileOps.fsync(self, path.fd)
            return
        fd = _open_at(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            FileOps.fsync(self, fd)  # not self.fsync: a subclass sees one step, not two
        finally:
            os.close(fd)


def _open_at(path: str, flags: int) -> int:
    if type(path) is At:
        fd: int = _named(os.open, path, path.rel or ".", flags, dir_fd=path.fd)
        return fd
    return os.open(path, flags)


def _named(call: Callable[..., Any], path: str, *args: Any, **kwargs: Any) -> Any:
    """``call(*args)`` relative to a held directory, its errors naming the
    absolute ``path`` (the kernel's error names only the relative part)."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        if exc.filename == str(path):
            raise
        named = type(exc)(exc.errno, exc.strerror, str(path))
        raise named from exc


ops = FileOps()


class _TempFile:
    """Just enough of a file object for AtomicWriter: a name and a descriptor."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name

    def write(self, data: bytes) -> None:
        ops.write(self.fd, data)

    def fileno(self) -> int:
        return self.fd

    def __enter__(self) -> _TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            ops.close(fd)


class _Writer(AtomicWriter):
    """AtomicWriter with our temp names, umask-respecting modes and sync policy."""

    def __init__(self, path: str, *, sync_dir: bool = True, sync_data: bool = True) -> None:
        super().__init__(path, mode="wb", overwrite=True)
        self._sync_dir = sync_dir
        self._sync_data = sync_data

    def get_fileobject(self, **kwargs: object) -> _TempFile:
        directory = parent(self._path)
        fd, name = ops.open_temp(directory)
        temp = _TempFile(fd, name)
        try:
            mode = _mode_to_keep(self._path, fd)
            if mode is not None:
                ops.chmod(fd, mode)
        except BaseException:
            temp.__exit__()
            ops.unlink(name)
            raise
        return temp

    def sync(self, f: _TempFile) -> None:
        if self._sync_data:
            ops.fsync(f.fd)

    def commit(self, f: _TempFile) -> None:
        ops.rename(f.name, self._path)
        if self._sync_dir:
            _sync_after_commit([parent(self._path)], self._path)

    def rollback(self, f: _TempFile | None) -> None:
        if f is not None:
            with contextlib.suppress(FileNotFoundError):
                ops.unlink(f.name)


def _mode_to_keep(target: str, temp_fd: int) -> int | None:
    """The mode a replacement must get when it differs from the temp file's.

    The temp file was created ``0o666`` minus the umask in force *now*, which a
    program may have changed since import: compare with the mode it really
    got, not with a umask read once.
    """
    try:
        if type(target) is At:
            mode = stat.S_IMODE(os.stat(target.rel, dir_fd=target.fd).st_mode)
        else:
            mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return None
    return None if mode == stat.S_IMODE(os.fstat(temp_fd).st_mode) else mode


def write_file(path: str, data: bytes, *, sync_dir: bool = True, sync_data: bool = True) -> None:
    """Replace ``path`` with ``data``, atomically; durable when it returns.

    With ``sync_dir=False`` the caller promises to :func:`sync_dir` the parent
    before it reports success (group commit). With ``sync_data=False`` the
    file's bytes are not fsynced either: only for a transaction's apply step,
    whose durable copy is its record (see :func:`sync_files`). A missing parent directory is
    created, durably, but only one level: a store whose directory was removed
    is not silently re-created without its metadata.
    """
    try:
        _write_once(path, data, sync_dir, sync_data)
    except FileNotFoundError:
        _make_parent(path)
        _write_once(path, data, sync_dir, sync_data)


def stage_file(path: str, data: bytes) -> str:
    """The first half of a lazy :func:`write_file`: ``data`` in a new temp
    file beside ``path`` (mode kept, not fsynced, not renamed). Returns the
    temp file's path for :func:`publish`; on failure nothing is left.

    A transaction stages every file before it renames any, so running out of
    room (or descriptors) leaves every file as it was."""
    try:
        return _stage_once(path, data)
    except FileNotFoundError:
        _make_parent(path)
        return _stage_once(path, data)


def _stage_once(path: str, data: bytes) -> str:
    try:
        temp = _Writer(path, sync_dir=False, sync_data=False).get_fileobject()
    except OSError as exc:
        raise with_path(exc, path) from None
    try:
        with temp:
            temp.write(data)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            ops.unlink(temp.name)
        if isinstance(exc, OSError):
            raise with_path(exc, path) from None
        raise
    return temp.name


def publish(temp: str, path: str) -> None:
    """The second half: rename a staged temp file over ``path`` (durability
    left to :func:`sync_files`)."""
    try:
        ops.rename(temp, path)
    except OSError as exc:
        raise with_path(exc, path) from None


def _make_parent(path: str) -> None:
    """After a write into ``path`` found no directory: make it, one level
    only and durably, or raise ``FileNotFoundError`` if its parent is gone too."""
    if type(path) is At:
        _make_parent_at(path)
        return
    directory = os.path.dirname(path)
    grandparent = os.path.dirname(directory)
    if not directory or not os.path.isdir(grandparent):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if os.path.isdir(directory):
        # Made since our open failed, by another thread of the same group
        # commit or another process, which may not have synced it into its
        # parent yet: do that before relying on it.
        ops.fsync_dir(grandparent)
    else:
        make_dirs(directory)


def _make_parent_at(path: At) -> None:
    """Make the one missing directory level under the held directory, durably
    (a removed held directory makes nothing: ``mkdirat`` fails there)."""
    directory = parent(path)
    if type(directory) is not At or not directory.rel:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    # Made since our open failed (FileExistsError), by another thread of the
    # same group commit or another process, which may not have synced it into
    # its parent yet: the fsync below is done either way.
    with contextlib.suppress(FileExistsError):
        ops.mkdir(directory)
    ops.fsync_dir(parent(directory))


def _write_once(path: str, data: bytes, sync_dir: bool, sync_data: bool = True) -> None:
    try:
        with _Writer(path, sync_dir=sync_dir, sync_data=sync_data).open() as f:
            f.write(data)
    except OSError as exc:
        raise with_path(exc, path) from None


def with_path(exc: OSError, path: str) -> OSError:
    """``exc`` naming ``path``: an error from write, fsync, read or flock on a
    descriptor carries no file name, and a message must say which file."""
    if exc.filename is not None or isinstance(exc, NotDurableError):
        return exc
    named = type(exc)(exc.errno, exc.strerror, path)
    named.__cause__ = exc
    return named


def write_files(entries: Sequence[tuple[str, bytes]], *, threads: int = 8) -> None:
    """Write many files with the cost shared (group commit).

    Each file is written and fsynced in a pool of threads (fsync releases the
    GIL and the journal commits them together), renamed into place, then each
    directory touched is fsynced once. Every file holds its old or new bytes
    after a crash; all are durable when this returns.
    """
    if not entries:
        return
    if len(entries) == 1 or threads <= 1:
        for path, data in entries:
            write_file(path, data, sync_dir=False)
    else:
        with ThreadPoolExecutor(max_workers=min(threads, len(entries))) as pool:
            for future in [pool.submit(write_file, p, d, sync_dir=False) for p, d in entries]:
                future.result()
    _sync_after_commit({parent(p) for p, _ in entries}, entries[0][0])


def remove_files(paths: Iterable[str]) -> list[str]:
    """Unlink ``paths`` (missing ones are skipped), then fsync each directory once.

    Returns the paths that existed.
    """
    removed = unlink_files(paths)
    if removed:
        _sync_after_commit({parent(p) for p in removed}, removed[0])
    return removed


def _sync_after_commit(directories: Iterable[str], path: str) -> None:
    """fsync directories whose renames or unlinks already happened.

    The change is visible by now: a failure here cannot undo it, so it is
    raised as :class:`NotDurableError` ("applied, durability unknown"),
    never as the plain ``OSError`` that means "nothing happened".
    """
    for directory in sorted(directories):
        try:
            ops.fsync_dir(directory)
        except OSError as exc:
            raise NotDurableError(
                f"{path}: the change is made but the directory fsync failed ({exc}); "
                "it may not survive a power loss",
                path,
            ) from exc


def move_file(source: str, target: str) -> None:
    """Rename ``source`` over ``target`` (same filesystem); durable when it returns."""
    ops.rename(source, target)
    _sync_after_commit({parent(source), parent(target)}, target)


def unlink_files(paths: Iterable[str]) -> list[str]:
    """Unlink ``paths`` (missing ones skipped) with no directory fsync; the
    caller makes it durable later (:func:`sync_files`)."""
    removed = []
    for path in paths:
        try:
            ops.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def sync_files(paths: Sequence[str], *, threads: int = 8) -> None:
    """Make earlier unsynced writes and unlinks of ``paths`` durable: fsync
    each file still there (in a pool of threads), then each directory once;
    or, for many files on Linux, one ``syncfs`` of their filesystem."""
    if len(paths) >= SYNCFS_FROM and ops.syncfs(parent(paths[0])):
        return

    if len(paths) > 1 and threads > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(paths))) as pool:
            for future in [pool.submit(ops.fsync_file, p) for p in paths]:
                future.result()
    else:
        for path in paths:
            ops.fsync_file(path)
    for directory in sorted({parent(p) for p in paths}):
        with contextlib.suppress(FileNotFoundError):  # never made: nothing to sync
            ops.fsync_dir(directory)


def sync_dir(path: str) -> None:
    ops.fsync_dir(path)


def make_dirs(path: str) -> None:
    """``mkdir -p`` where every directory created is durable in its parent."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        # Not lexists() alone: another thread may make the directory between
        # the two checks, and it is then ours to sync (below), not an error.
        if os.path.lexists(path) and not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        missing.append(path)
        up = os.path.dirname(path)
        if up == path:  # pragma: no cover - the root always exists
            break
        path = up
    for directory in reversed(missing):
        try:
            ops.mkdir(directory)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            # Another thread or process made it and may not have synced its
            # parent yet: sync it ourselves before relying on it.
        ops.fsync_dir(os.path.dirname(directory))

"""Durable, atomic file replacement and removal. Knows no JSON.

This module and :mod:`sos.storage.plain` (a plain set's same steps, in one
frame) are the only ones that make temporary files or call ``fsync``. Every
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

One durable replace is :func:`replace`, one frame whose every step is an
``ops`` call (``atomicwrites.AtomicWriter``'s commit-or-rollback, without its
layers, which cost as much as the system calls on tmpfs and cannot work
relative to a held descriptor); ``atomicwrites`` itself is used where a
path-based replace outside a store is what is needed (see
docs/architecture.md, "Durable writes").
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence

from sos.errors import NotDurableError
from sos.storage.fileops import SYNCFS_FROM, At, FileOps, parent, with_path

_WINDOWS = os.name == "nt"  # no rename of an open file there

ops = FileOps()

#: A group commit (:func:`write_files`, :func:`sync_files`) spreads its
#: files over a pool of threads only where a file took this long: then its
#: fsync waited for the device, and fsyncs issued together are committed
#: together by the journal. Where an fsync returns at once (tmpfs, a
#: write-back cache) threads only add their start-up and the GIL's
#: hand-offs: 10-13% more CPU in the test suite's store-heavy modules. The
#: first group commit under a directory does its first file alone, timed;
#: the choice is remembered for that directory (``_pooled``), so later ones
#: on a slow device go to the pool whole (one journal commit, as before).
PARALLEL_FROM_SECONDS = 0.0005
_pooled: dict[str, bool] = {}


def _pool_or_not(paths: Sequence[str], first: Callable[[str], None]) -> tuple[bool, int]:
    """Whether the group commit of ``paths`` goes to the pool, and how many
    of them are done already (its first, when this decided by timing it)."""
    key = str(parent(parent(paths[0])))
    known = _pooled.get(key)
    if known is not None:
        return known, 0
    started = time.perf_counter()
    first(paths[0])
    pooled = time.perf_counter() - started >= PARALLEL_FROM_SECONDS
    if len(_pooled) >= 256:
        _pooled.clear()
    _pooled[key] = pooled
    return pooled, 1


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


def write_file(
    path: str, data: bytes, *, sync_dir: bool = True, sync_data: bool = True, keep_mode: bool = True
) -> None:
    """Replace ``path`` with ``data``, atomically; durable when it returns.

    With ``sync_dir=False`` the caller promises to :func:`sync_dir` the parent
    before it reports success (group commit). With ``sync_data=False`` the
    file's bytes are not fsynced either: only for a transaction's apply step,
    whose durable copy is its record (see :func:`sync_files`). A missing parent directory is
    created, durably, but only one level: a store whose directory was removed
    is not silently re-created without its metadata. With ``keep_mode=False``
    the caller knows ``path`` names no file yet (a fresh List item id): no
    stat of an old file whose mode to keep.
    """
    try:
        try:
            replace(path, data, sync_dir, sync_data, keep_mode)
        except FileNotFoundError:
            _make_parent(path)
            replace(path, data, sync_dir, sync_data, keep_mode)
    except OSError as exc:
        raise with_path(exc, path) from None


def replace(
    path: str, data: bytes, sync_dir: bool = True, sync_data: bool = True, keep_mode: bool = True
) -> None:
    """One durable replace in one frame, every step through :data:`ops`: a temp
    file beside ``path`` (with ``path``'s mode, when ``keep_mode``), write,
    fsync, close, rename, directory fsync. A failure before the rename removes
    the temp file and changes nothing (the first error is the one raised);
    after it, the change stands and the error is a :class:`NotDurableError`.
    A missing directory is the caller's (:func:`write_file` makes it)."""
    up = path.up if type(path) is At else None  # parent(), remembered: every write
    directory = parent(path) if up is None else up
    fd, temp = ops.open_temp(directory)
    try:
        try:
            if keep_mode:  # a user's chmod 600 survives
                mode = _mode_to_keep(path, fd)
                if mode is not None:
                    ops.chmod(fd, mode)
            ops.write(fd, data)
            if sync_data:
                ops.fsync(fd)
        except BaseException:
            _close_quietly(fd)
            raise
        ops.close(fd)
        ops.rename(temp, path)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to see
            ops.unlink(temp)
        raise
    if sync_dir:
        try:
            ops.fsync_dir(directory)
        except OSError as exc:
            raise not_durable(path, exc) from exc


def replace_file(path: str, data: bytes, mode: int | None) -> tuple[int, int, int, int, int]:
    """:func:`write_file` that also says what it wrote: ``(inode, size,
    mtime_ns, mode)`` of the new file, from one ``fstat`` of the temp file
    after its write (rename and fsync change none of them).

    That ``fstat`` is also the temp file's mode check, so it costs nothing
    extra: ``mode`` is the replaced file's mode if the caller has just read
    it (its stat is then skipped), ``None`` to stat the target here. The
    temp file gets ``mode`` with ``fchmod`` only if the umask in force now
    gave it another one.

    The fifth value is the new file's descriptor, left open (POSIX; -1 on
    Windows, which cannot rename an open file): while the caller holds it,
    the inode cannot be freed and handed to another writer's file, so
    ``(inode, size, mtime)`` cannot match a later replace even where the
    clock's tick is coarse. It costs no system call: the close happens at
    the caller's next replace instead of here."""
    try:
        return _replace_once(path, data, mode)
    except FileNotFoundError:
        _make_parent(path)
        return _replace_once(path, data, mode)


def _replace_once(path: str, data: bytes, mode: int | None) -> tuple[int, int, int, int, int]:
    try:
        if mode is None:
            mode = _target_mode(path)
        directory = parent(path)
        fd, temp = ops.open_temp(directory)
        try:
            ops.write(fd, data)
            st = os.fstat(fd)  # what was written, and the temp file's mode check
            got = stat.S_IMODE(st.st_mode)
            if mode is not None and got != mode:
                ops.chmod(fd, mode)
                got = mode
            ops.fsync(fd)
            if _WINDOWS:
                fd, closing = -1, fd  # -1 first: a failed close is not closed again
                ops.close(closing)
            ops.rename(temp, path)
        except BaseException:
            _close_quietly(fd)
            with contextlib.suppress(Exception):  # the first error is the one to see
                ops.unlink(temp)
            raise
        try:
            ops.fsync_dir(directory)
        except BaseException as exc:
            _close_quietly(fd)
            if isinstance(exc, OSError):
                raise not_durable(path, exc) from exc
            raise
    except OSError as exc:
        raise with_path(exc, path) from None
    return st.st_ino, len(data), st.st_mtime_ns, got, fd


def _close_quietly(fd: int) -> None:
    """Close ``fd`` (unless it is closed already: -1) after an earlier error,
    which is the one to see: a failed close never replaces it."""
    if fd >= 0:
        with contextlib.suppress(Exception):
            ops.close(fd)


def _target_mode(target: str) -> int | None:
    try:
        if type(target) is At:
            return stat.S_IMODE(os.stat(target.rel, dir_fd=target.fd).st_mode)
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return None


def stage_file(path: str, data: bytes, *, keep_mode: bool = True) -> str:
    """The first half of a lazy :func:`write_file`: ``data`` in a new temp
    file beside ``path`` (mode kept, not fsynced, not renamed). Returns the
    temp file's path for :func:`publish`; on failure nothing is left.

    A transaction stages every file before it renames any, so running out of
    room (or descriptors) leaves every file as it was. ``keep_mode=False``:
    the caller knows ``path`` names no file (no stat of an old one)."""
    try:
        return _stage_once(path, data, keep_mode)
    except FileNotFoundError:
        _make_parent(path)
        return _stage_once(path, data, keep_mode)


def _stage_once(path: str, data: bytes, keep_mode: bool) -> str:
    try:
        fd, temp = ops.open_temp(parent(path))
    except OSError as exc:
        raise with_path(exc, path) from None
    try:
        try:
            if keep_mode:
                mode = _mode_to_keep(path, fd)
                if mode is not None:
                    ops.chmod(fd, mode)
            ops.write(fd, data)
        except BaseException:
            _close_quietly(fd)
            raise
        ops.close(fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            ops.unlink(temp)
        if isinstance(exc, OSError):
            raise with_path(exc, path) from None
        raise
    return temp


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


def write_files(
    entries: Sequence[tuple[str, bytes]], *, threads: int = 8, keep_mode: bool = True
) -> None:
    """Write many files with the cost shared (group commit).

    Each file is written and fsynced, in a pool of threads where fsync waits
    for the device (it releases the GIL and the journal commits them
    together; see ``PARALLEL_FROM_SECONDS``), renamed into place, then each
    directory touched is fsynced once. Every file holds its old or new bytes
    after a crash; all are durable when this returns.
    """
    if len(entries) < 2:  # one file (an append): the whole replace, directory fsync included
        for path, data in entries:
            write_file(path, data, keep_mode=keep_mode)
        return
    rest = entries
    if threads > 1:
        first_data = entries[0][1]
        pooled, done = _pool_or_not(
            [entries[0][0]],
            lambda p: write_file(p, first_data, sync_dir=False, keep_mode=keep_mode),
        )
        rest = entries[done:]
        if pooled:
            from concurrent.futures import ThreadPoolExecutor  # only when pooled: 8 ms

            with ThreadPoolExecutor(max_workers=min(threads, len(rest))) as pool:
                futures = [
                    pool.submit(write_file, p, d, sync_dir=False, keep_mode=keep_mode)
                    for p, d in rest
                ]
                for future in futures:
                    future.result()
            rest = []
    for path, data in rest:
        write_file(path, data, sync_dir=False, keep_mode=keep_mode)
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
            raise not_durable(path, exc) from exc


def not_durable(path: str, exc: OSError) -> NotDurableError:
    """The error for a directory fsync that failed after ``path``'s change was made."""
    return NotDurableError(
        f"{path}: the change is made but the directory fsync failed ({exc}); "
        "it may not survive a power loss",
        path,
    )


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

    rest = paths
    if len(paths) > 1 and threads > 1:
        pooled, done = _pool_or_not(paths, ops.fsync_file)
        rest = paths[done:]
        if pooled:
            from concurrent.futures import ThreadPoolExecutor  # only when pooled: 8 ms

            with ThreadPoolExecutor(max_workers=min(threads, len(rest))) as pool:
                for future in [pool.submit(ops.fsync_file, p) for p in rest]:
                    future.result()
            rest = []
    for path in rest:
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

"""The local storage: a directory on a POSIX filesystem.

Every write goes through :mod:`sos.storage.atomic` (temp file, fsync, rename, directory
fsync) and so through its ``ops`` seam, which the crash tests replace; every read through
:func:`read_file`, which refuses anything that is not a regular file at once (a FIFO would
block ``open`` forever, a symlink to ``/dev/zero`` would be read until memory runs out).

Staying inside the store: a document is opened with ``O_NOFOLLOW`` (a symlink in its
place is refused), and each fan-out directory is checked with ``lstat`` the first time a
handle uses it (a symlinked or non-directory entry is refused), so nothing outside the
store's tree is read, written or removed through what git or rsync planted there.

Writes are made relative to the store directory's descriptor, held from the first write
to ``close`` (the one the lock is taken on): a store directory removed under an open handle,
even if made again, then fails the next write, reported as :class:`~sos.Error`. A plain
set's write is :mod:`sos.storage.plain`'s, in one frame."""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from sos.errors import CorruptError, Error
from sos.format.names import NAME_MEMORY, RESERVED_DIR
from sos.storage import atomic as _atomic
from sos.storage import forks
from sos.storage import plain as _plain
from sos.storage.base import Storage, Version
from sos.storage.fileops import At, hold_directory, let_go
from sos.storage.locks import StoreLock
from sos.storage.reading import _kind_of, _read, read_file, read_head

__all__ = ["LocalStorage", "read_file"]

_WINDOWS = os.name == "nt"
_S_IFREG = stat.S_IFREG
# A local version is trusted as "unchanged" only once the file is older than the
# filesystem clock's granularity when it was read; a younger one is read again and
# compared, as git does with "racily clean" index entries.
RACY_NS = 100_000_000
_PATH_LIMIT = NAME_MEMORY


def _version(st: os.stat_result, now: int) -> tuple[int, int, int, int, bool]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, now - st.st_ctime_ns < RACY_NS)


class LocalStorage(Storage):
    """A store directory on a local POSIX filesystem."""

    def __init__(self, root: str) -> None:
        self.url = root
        self._root = root
        self._prefix = os.path.join(root, "")
        self._lock = StoreLock(root)
        # Sub-directories checked to be real directories, not symlinks, and
        # names whose directory was checked -> their paths.
        self._safe_dirs: set[str] = set()
        self._paths: dict[str, str] = {}
        self._probed: dict[str, str] = {}  # store keys -> paths of _paths: probe()
        self._safe_lock = threading.Lock()
        # Names -> their sos.storage.fileops.At for writes, valid for the descriptor they were
        # made with (another after a fork); the fan-out directories' own At paths, shared by
        # every name in them, each keeping its directory's descriptor from its second fsync.
        self._ats: dict[str, str] = {}
        self._ats_fd = -1
        self._dir_ats: dict[str, At] = {}
        # name -> the descriptor of the file write_replacing made last
        self._pins: dict[str, int] = {}
        self._pins_forks = forks.count

    # -- names -----------------------------------------------------------------

    def path(self, name: str) -> str:
        """The file system path of ``name`` (for messages, editors and grep)."""
        return self._prefix + name

    def _checked(self, name: str) -> str:
        """The path of ``name`` after its directory is known to be a real one
        (remembered: this is on every read's path)."""
        path = self._paths.get(name)
        if path is not None:
            return path
        directory, sep, _ = name.rpartition("/")
        if sep and directory not in self._safe_dirs:
            self._check_dir(directory)
        path = self._prefix + name
        if not sep or directory in self._safe_dirs:  # not for a directory yet to be made
            if len(self._paths) >= _PATH_LIMIT:
                self._paths.clear()
            self._paths[name] = path
        return path

    def _check_dir(self, directory: str) -> None:
        if directory.startswith("/") or ".." in directory.split("/"):
            raise Error(f"{self._root}: {directory!r} is outside the store", self._root)
        path = self._prefix + directory
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return  # made by the first write into it, as a real directory
        if not stat.S_ISDIR(st.st_mode):  # lstat: a symlink is not one
            what = (
                "is a symbolic link; sos never follows one out of the store"
                if stat.S_ISLNK(st.st_mode)
                else f"is {_kind_of(st.st_mode)} where a directory belongs"
            )
            raise CorruptError(f"{path}: {what} (sos check reports it)", path)
        with self._safe_lock:
            self._safe_dirs.add(directory)

    # -- reads -----------------------------------------------------------------

    def read(self, name: str) -> bytes:
        return _read(self._paths.get(name) or self._checked(name))[0]

    def read_heads(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | None]]:
        """At most the first ``size`` bytes of each file (a whole read where
        only that can say what a file is), ``None`` for one that is gone."""
        for name in names:  # each read once: not worth a place in the path memory
            directory, sep, _ = name.rpartition("/")
            if sep and directory in self._safe_dirs:
                path = self._prefix + name
            else:
                path = self._checked(name)
            try:
                head = read_head(path, size)
                yield name, _read(path)[0] if head is None else head
            except FileNotFoundError:
                yield name, None

    def read_versioned(self, name: str) -> tuple[bytes, Version]:
        data, st = _read(self._checked(name))
        return data, _version(st, time.time_ns())

    def read_if_changed(self, name: str, version: Version | None) -> tuple[bytes, Version] | None:
        path = self._paths.get(name) or self._checked(name)
        st = os.stat(path)
        if version is not None and not version[4]:  # type: ignore[index]
            if version[3] is None:  # type: ignore[index]  # our own write's: see write_replacing
                if version == (st.st_ino, st.st_size, st.st_mtime_ns, None, False, st.st_mode):
                    return None
            elif version[:4] == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):  # type: ignore[index]
                return None
        now = time.time_ns()
        data, st = _read(path)
        return data, _version(st, now)

    def directory_version(self, name: str) -> Version | None:
        try:
            st = os.stat(os.path.join(self._root, name))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)

    def version(self, name: str) -> Version | None:
        try:
            st = os.stat(self._checked(name))
        except FileNotFoundError:
            return None
        return _version(st, time.time_ns())

    def exists(self, name: str) -> bool:
        path = self._paths.get(name)
        if path is None:
            if ".." not in name:  # _exists_unchecked's first stat inline: every set's record check
                try:
                    os.stat(self._prefix + name)
                except FileNotFoundError:
                    return False
                except NotADirectoryError:
                    pass  # a file where a directory belongs: _checked says so
            return self._exists_unchecked(name)
        try:
            os.stat(path)
        except FileNotFoundError:
            return False
        return True

    def probe(self) -> tuple[Callable[[str], object], dict[str, str]] | None:
        if type(self).exists is not LocalStorage.exists:  # a subclass's own exists decides
            return None
        return os.stat, self._probed

    def probe_path(self, name: str) -> str | None:
        return self._paths.get(name)

    def _exists_unchecked(self, name: str) -> bool:
        """:meth:`exists` of a name whose directory is not yet known to be a
        real one (the transaction record's, before each write), after one
        stat found something (or could not look): its directory is checked
        before it counts. Found nothing: nothing to refuse, nothing read."""
        try:
            os.stat(self._checked(name))
        except FileNotFoundError:
            return False
        return True

    def modified(self, name: str) -> float | None:
        try:
            return os.stat(self._checked(name)).st_mtime  # Windows too: the same call
        except FileNotFoundError:
            return None

    def list(self, directory: str = "") -> builtins.list[str]:
        path = self._root
        if directory:
            if directory not in self._safe_dirs:
                self._check_dir(directory)
            path = self._prefix + directory
        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_dir(self, name: str) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(self._prefix + name).st_mode)
        except FileNotFoundError:
            return False

    # -- writes ----------------------------------------------------------------

    def _at(self, name: str) -> str:
        """``name``'s path for a write: relative to the held directory
        descriptor (POSIX), remembered per name like :meth:`_checked`."""
        if _WINDOWS:  # no openat there; sos.storage.windows keeps its own protection
            return self._checked(name)
        fd = self._lock.descriptor()
        if fd != self._ats_fd:  # a fork's, or a first one
            self._let_go_dirs(fd)
        at = self._ats.get(name)
        if at is None:
            path = self._checked(name)
            at = At(path, fd, name)
            cut = name.rfind("/")
            if cut > 0:
                directory = name[:cut]
                up = self._dir_ats.get(directory)
                if up is None:
                    up = At(path[: path.rfind("/")], fd, directory)
                    if len(self._dir_ats) < _PATH_LIMIT:  # only these keep a descriptor
                        self._dir_ats[directory] = hold_directory(up)
                at.up = up
            if len(self._ats) >= _PATH_LIMIT:
                self._ats.clear()
            if name in self._paths:  # its directory is known to be a real one
                self._ats[name] = at
        return at

    def _gone(self, exc: OSError) -> BaseException:
        """The error for a write that failed: a clear one if the store's
        directory was removed under this handle (checked only now, on the
        failure path), else ``exc``."""
        err = None if _WINDOWS else self._lock.gone()
        if err is None:
            return exc
        err.__cause__ = exc
        return err

    def write(self, name: str, data: bytes) -> None:
        try:
            _atomic.write_file(self._at(name), data)
        except FileNotFoundError as exc:
            raise self._gone(exc) from None

    write_plain = _plain.write_plain

    def write_replacing(self, name: str, data: bytes, previous: Version | None) -> Version | None:
        """:meth:`write`, and the version of what it wrote: ``(inode, size, mtime, None,
        False, mode)`` from the ``fstat`` the temp file's mode check pays anyway, which
        :meth:`read_if_changed` takes as "unchanged" while the file keeps that inode,
        size, mtime and mode (not ctime: the rename changes it). Another writer's replace
        (a new inode: the file written is kept open, its inode never reused), an in-place
        edit (mtime) or a chmod (mode) is read on the next call."""
        mode = None
        if type(previous) is tuple and len(previous) == 6 and previous[3] is None:
            mode = stat.S_IMODE(previous[5])  # checked by the stat just made under the lock
        try:
            ino, size, mtime, got, fd = _atomic.replace_file(self._at(name), data, mode)
        except FileNotFoundError as exc:
            raise self._gone(exc) from None
        if _WINDOWS:
            return None
        # The file stays open (one descriptor per name written this way: order.txt), so its
        # inode cannot be reused by another writer's replace within one clock tick.
        pins = self._live_pins()
        old = pins.pop(name, -1)
        pins[name] = fd
        if old >= 0:
            os.close(old)
        return (ino, size, mtime, None, False, _S_IFREG | got)

    def write_new_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        try:
            _atomic.write_files([(self._at(n), d) for n, d in entries], keep_mode=False)
        except FileNotFoundError as exc:
            raise self._gone(exc) from None

    def write_lazy(self, name: str, data: bytes) -> None:
        try:
            _atomic.write_file(self._at(name), data, sync_dir=False, sync_data=False)
        except FileNotFoundError as exc:
            raise self._gone(exc) from None

    def stages_writes(self) -> bool:
        return True

    def stage(self, name: str, data: bytes, *, fresh: bool = False) -> str:
        """``data`` in a temp file beside ``name``, not yet renamed (a
        transaction stages all its files first): the temp file's path."""
        try:
            return _atomic.stage_file(self._at(name), data, keep_mode=not fresh)
        except FileNotFoundError as exc:
            raise self._gone(exc) from None

    def publish(self, staged: Sequence[tuple[str, str]]) -> None:
        """Rename each staged (temp path, name) into place, durability left
        to :meth:`sync_names`."""
        for temp, name in staged:
            _atomic.publish(temp, self._at(name))

    def unstage(self, temps: Iterable[str]) -> None:
        """Remove staged temp files that will not be published."""
        for temp in temps:
            with contextlib.suppress(OSError):
                _atomic.ops.unlink(temp)

    def remove_lazy(self, names: Iterable[str]) -> builtins.list[str]:
        paths = {self._at(name): name for name in names}
        removed = [paths[p] for p in _atomic.unlink_files(paths)]
        if len(removed) < len(paths):
            self._refuse_if_removed()
        return removed

    def _refuse_if_removed(self) -> None:
        """Some name to remove was not there: because the store's directory
        was removed under this handle? (One fstat, on that path only.)"""
        err = None if _WINDOWS else self._lock.gone()
        if err is not None:
            raise err

    def sync_names(self, names: Sequence[str]) -> None:
        if names:
            _atomic.sync_files([self._at(name) for name in names])

    def write_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        try:
            _atomic.write_files([(self._at(name), data) for name, data in entries])
        except FileNotFoundError as exc:
            raise self._gone(exc) from None

    def write_if_absent(self, name: str, data: bytes) -> bool:
        with self.lock():
            if self.exists(name):
                return False
            self.write(name, data)
            return True

    def write_if_version(self, name: str, data: bytes, version: Version) -> bool:
        with self.lock():
            current = self.version(name)
            if current is None or current[:4] != version[:4]:  # type: ignore[index]
                return False
            self.write(name, data)
            return True

    def remove(self, names: Iterable[str]) -> builtins.list[str]:
        paths = {self._at(name): name for name in names}
        removed = [paths[p] for p in _atomic.remove_files(paths)]
        if len(removed) < len(paths):
            self._refuse_if_removed()
        return removed

    def remove_if_version(self, name: str, version: Version) -> bool:
        with self.lock():
            current = self.version(name)
            if current is None or current[:4] != version[:4]:  # type: ignore[index]
                return False
            return bool(self.remove([name]))

    def move(self, source: str, target: str) -> None:
        try:
            _atomic.move_file(self._at(source), self._at(target))
        except FileNotFoundError as exc:
            raise self._gone(exc) from None

    def make_root(self) -> None:
        try:
            _atomic.make_dirs(self._root)
        except (NotADirectoryError, FileExistsError):
            raise Error(f"{self._root}: a parent of the store is a file", self._root) from None

    # -- the store as a whole ------------------------------------------------------

    def where(self, name: str) -> str:
        """The file's path as this system writes paths (``where("")`` ends with
        the separator)."""
        return os.path.join(self._root, *name.split("/")) if name else self._root + os.sep

    def local_directory(self) -> str | None:
        return self._root

    def location(self) -> str:
        return os.path.realpath(self._root).replace(os.sep, "/")

    def usage(self) -> Iterator[tuple[str, int, int | None]]:
        """One lstat per file; disk bytes from the blocks allocated (None
        where the platform does not say, as on Windows)."""
        for top, dirs, files in os.walk(self._root):
            rel = os.path.relpath(top, self._root).replace(os.sep, "/")
            if rel == ".":
                rel = ""
                dirs[:] = [d for d in dirs if d not in (RESERVED_DIR, ".git")]
            for file in files:
                name = f"{rel}/{file}" if rel else file
                try:
                    st = os.lstat(os.path.join(top, file))
                except FileNotFoundError:
                    continue  # removed while we looked
                blocks = getattr(st, "st_blocks", None)
                yield name, st.st_size, None if blocks is None else blocks * 512

    def root_exists(self) -> bool:
        return os.path.isdir(self._root)

    def root_problem(self) -> str | None:
        if os.path.isdir(self._root):
            return None
        if os.path.lexists(self._root):
            return "is a file, not a store directory"
        parent = os.path.dirname(os.path.abspath(self._root))
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        return None if os.path.isdir(parent) else "a parent of the store is a file"

    def remove_all(self, *, keep_root: bool = False) -> None:
        self._lock.close(self._close_held)  # the lock holds the directory open
        if not keep_root:
            shutil.rmtree(self._root, ignore_errors=True)
        else:
            for entry in self.list(""):
                path = os.path.join(self._root, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        self._safe_dirs.clear()
        self._paths.clear()

    # -- locking ---------------------------------------------------------------

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        return self._lock.acquire(exclusive, blocking)

    def release(self) -> None:
        self._lock.release()

    def held(self) -> bool:
        return self._lock.held

    def pin(self) -> None:
        """Remember which directory was opened: a replaced one is refused later."""
        self._lock.pin()

    def close(self) -> None:
        self._lock.close(self._close_held)

    def _live_pins(self) -> dict[str, int]:
        """The pins; a forked child forgets its parent's, unclosed (sos.storage.forks)."""
        if self._pins_forks != forks.count:
            self._pins, self._pins_forks = {}, forks.count
        return self._pins

    def _close_held(self) -> None:
        pins, self._pins = self._live_pins(), {}
        for fd in pins.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._let_go_dirs()
        self._probed.clear()  # a closed Dict's `in` must say so, not ask the disk

    def _let_go_dirs(self, fd: int = -1) -> None:
        """Forget the write paths (now made relative to ``fd``), closing the
        fan-out directories' kept descriptors."""
        dirs, self._dir_ats, self._ats, self._ats_fd = self._dir_ats, {}, {}, fd
        for up in dirs.values():
            let_go(up)

    def __del__(self) -> None:  # a store dropped without close() must not leak a pin
        with contextlib.suppress(Exception):
            self._close_held()

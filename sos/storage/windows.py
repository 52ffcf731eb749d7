"""The Windows pieces of the local storage, through ctypes (no pywin32).

Three things differ from POSIX and live here:

- :func:`replace`: ``MoveFileExW`` with ``MOVEFILE_WRITE_THROUGH`` (the rename
  itself is committed to the NTFS journal before the call returns;
  ``os.replace`` does not pass the flag), retried while another process holds
  the target open, which Windows refuses where POSIX would not care.
- :func:`read_file`: a reader that opens with ``FILE_SHARE_DELETE`` as well
  as read and write sharing, so it never stands in a writer's way longer than
  its one read, and never in a rename-by-handle's way at all.
- :class:`FileLock`: shared and exclusive locks across processes with
  ``LockFileEx`` on one lock file, ``.sos/lock`` in the store's reserved
  name space (a directory cannot be locked on Windows, and a byte-range lock
  on a tracked file would make ``git pull`` fail while it is held).

Importable everywhere (the tests read the constants), usable only on Windows.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from sos.errors import Error
from sos.storage.holders import HOLDERS, LockContext

__all__ = ["RETRY_SECONDS", "FileLock", "WindowsStoreLock", "open_read", "read_file", "replace"]

# Retried while another process holds the target (or the temp file) open.
# git for Windows retries a rename after 0, 1, 10, 20, 40 ms and then asks the
# user; sos cannot ask, and what it usually meets is different: a sos reader
# holds a file for one read (tens of microseconds), but one polling a key in a
# loop holds it almost all the time, with only short gaps between reads. Few
# long sleeps then miss every gap (measured under Wine: 11 tries over 2.6 s
# all failed against such a reader); many short tries land in one. So: 0.5 ms
# doubling to at most 10 ms, each jittered (0.5-1.5x) so as not to keep step
# with a periodic reader, for RETRY_SECONDS in all (about 250 tries), which
# also waits out a virus scanner or indexer holding a fresh file for tens to
# hundreds of milliseconds; then the error that names the file.
RETRY_SECONDS = 2.5
_FIRST_DELAY = 0.0005
_MAX_DELAY = 0.01

_MOVEFILE_REPLACE_EXISTING = 0x1
_MOVEFILE_WRITE_THROUGH = 0x8
_ERROR_FILE_NOT_FOUND = 2
_ERROR_PATH_NOT_FOUND = 3
_ERROR_ACCESS_DENIED = 5
_ERROR_SHARING_VIOLATION = 32
_ERROR_LOCK_VIOLATION = 33
_ERROR_INVALID_PARAMETER = 87
_ERROR_NOT_SUPPORTED = 50
_ERROR_IO_PENDING = 997
_BUSY = (_ERROR_ACCESS_DENIED, _ERROR_SHARING_VIOLATION, _ERROR_LOCK_VIOLATION)

_GENERIC_READ = 0x80000000
_GENERIC_WRITE = 0x40000000
_DELETE = 0x00010000
_FILE_SHARE_ALL = 0x1 | 0x2 | 0x4  # read, write, delete
_OPEN_EXISTING = 3
_OPEN_ALWAYS = 4
_FILE_ATTRIBUTE_NORMAL = 0x80
_FILE_FLAG_WRITE_THROUGH = 0x80000000
_FILE_FLAG_BACKUP_SEMANTICS = 0x02000000  # lets a directory open, so fstat can name it
_LOCKFILE_FAIL_IMMEDIATELY = 0x1
_LOCKFILE_EXCLUSIVE_LOCK = 0x2
_FILE_RENAME_INFO_EX = 22  # FILE_INFO_BY_HANDLE_CLASS.FileRenameInfoEx
_FILE_RENAME_REPLACE_IF_EXISTS = 0x1
_FILE_RENAME_POSIX_SEMANTICS = 0x2

_kernel32: Any = None


def _k32() -> Any:
    """kernel32 with argument types set, loaded on first use (Windows only)."""
    global _kernel32
    if _kernel32 is None:
        from ctypes import wintypes as w

        k = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        k.MoveFileExW.argtypes = [w.LPCWSTR, w.LPCWSTR, w.DWORD]
        k.MoveFileExW.restype = w.BOOL
        k.CreateFileW.argtypes = [
            w.LPCWSTR,
            w.DWORD,
            w.DWORD,
            ctypes.c_void_p,
            w.DWORD,
            w.DWORD,
            w.HANDLE,
        ]
        k.CreateFileW.restype = w.HANDLE
        k.CloseHandle.argtypes = [w.HANDLE]
        k.CloseHandle.restype = w.BOOL
        k.LockFileEx.argtypes = [
            w.HANDLE,
            w.DWORD,
            w.DWORD,
            w.DWORD,
            w.DWORD,
            ctypes.POINTER(_Overlapped),
        ]
        k.LockFileEx.restype = w.BOOL
        k.UnlockFileEx.argtypes = [w.HANDLE, w.DWORD, w.DWORD, w.DWORD, ctypes.POINTER(_Overlapped)]
        k.UnlockFileEx.restype = w.BOOL
        k.SetFileInformationByHandle.argtypes = [w.HANDLE, ctypes.c_int, ctypes.c_void_p, w.DWORD]
        k.SetFileInformationByHandle.restype = w.BOOL
        _kernel32 = k
    return _kernel32


class _Overlapped(ctypes.Structure):
    # Offset/OffsetHigh are the start of the locked range: byte 0.
    _fields_ = [
        ("Internal", ctypes.c_void_p),
        ("InternalHigh", ctypes.c_void_p),
        ("Offset", ctypes.c_uint32),
        ("OffsetHigh", ctypes.c_uint32),
        ("hEvent", ctypes.c_void_p),
    ]


_INVALID_HANDLE = ctypes.c_void_p(-1).value


def _os_error(code: int, path: str, other: str | None = None) -> OSError:
    # OSError maps winerror to errno and to the subclass (FileNotFoundError...).
    return OSError(None, ctypes.FormatError(code).strip(), path, code, other)  # type: ignore[attr-defined]


def _open(path: str, access: int, disposition: int, flags: int = 0) -> int:
    handle = _k32().CreateFileW(
        path, access, _FILE_SHARE_ALL, None, disposition, _FILE_ATTRIBUTE_NORMAL | flags, None
    )
    if handle is None or handle == _INVALID_HANDLE:
        raise _os_error(ctypes.get_last_error(), path)  # type: ignore[attr-defined]
    return int(handle)


# -- replace -------------------------------------------------------------------

# None until tried: does this system rename over a file that share-delete
# readers hold open (Windows 10 1709+ on NTFS)? Wine 8 and FAT say no.
_posix_rename: bool | None = None


def _rename_posix(src: str, dst: str) -> bool:
    """Rename ``src`` over ``dst`` with POSIX semantics: True if done.

    Replaces ``dst`` even while share-delete handles (every sos reader) hold it
    open, as ``rename(2)`` would. False where the system lacks it, once and for
    all, or where the target is held without share-delete (the caller retries).
    """
    global _posix_rename
    if _posix_rename is False:
        return False
    k = _k32()
    try:
        handle = _open(src, _DELETE | _GENERIC_READ, _OPEN_EXISTING, _FILE_FLAG_WRITE_THROUGH)
    except OSError:
        return False
    try:
        from ctypes import wintypes as w

        class _RenameInfo(ctypes.Structure):
            _fields_ = [
                ("Flags", w.DWORD),
                ("RootDirectory", w.HANDLE),
                ("FileNameLength", w.DWORD),
                ("FileName", w.WCHAR * (len(dst) + 1)),
            ]

        info = _RenameInfo(
            _FILE_RENAME_REPLACE_IF_EXISTS | _FILE_RENAME_POSIX_SEMANTICS, None, len(dst) * 2, dst
        )
        if k.SetFileInformationByHandle(
            handle, _FILE_RENAME_INFO_EX, ctypes.byref(info), ctypes.sizeof(info)
        ):
            _posix_rename = True
            return True
        if ctypes.get_last_error() in (_ERROR_INVALID_PARAMETER, _ERROR_NOT_SUPPORTED):  # type: ignore[attr-defined]
            _posix_rename = False
        return False
    finally:
        k.CloseHandle(handle)


def replace(src: str, dst: str, seconds: float | None = None) -> None:
    """Rename ``src`` over ``dst``, atomically and write-through.

    While another process holds either file open (access denied, sharing
    violation) it retries for ``seconds`` (default :data:`RETRY_SECONDS`,
    read at call time); then raises :class:`sos.Error` naming ``dst``. Any
    other failure is an OSError at once.
    """
    k = _k32()
    flags = _MOVEFILE_REPLACE_EXISTING | _MOVEFILE_WRITE_THROUGH
    start = time.monotonic()
    deadline = start + (RETRY_SECONDS if seconds is None else seconds)
    delay = _FIRST_DELAY
    tries = 0
    while True:
        tries += 1
        if k.MoveFileExW(src, dst, flags):
            return
        code = ctypes.get_last_error()  # type: ignore[attr-defined]
        if code not in _BUSY:
            raise _os_error(code, src, dst)
        if _rename_posix(src, dst):
            return
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(delay * random.uniform(0.5, 1.5), deadline - now))
        delay = min(delay * 2, _MAX_DELAY)
    shown = os.path.normpath(dst)  # storage names carry "/"
    raise Error(
        f"{shown}: cannot replace it, another program holds it open"
        f" (Windows error {code}: {ctypes.FormatError(code).strip()};"  # type: ignore[attr-defined]
        f" {tries} tries in {time.monotonic() - start:.2f} s)",
        shown,
    )


# -- read ------------------------------------------------------------------------


def open_read(path: str) -> int:
    """A binary, read-only descriptor that lets writers replace or delete the file.

    ``FILE_SHARE_DELETE`` with read and write sharing, so a sos reader stands
    in a writer's way at most for its one read; binary, never the CRT's text
    mode, which turns CRLF into LF and stops at Ctrl-Z. A directory opens too
    (fstat then says what it is), as on POSIX. Raises as ``os.open`` would.
    """
    import msvcrt

    handle = _open(path, _GENERIC_READ, _OPEN_EXISTING, _FILE_FLAG_BACKUP_SEMANTICS)
    fd: int = msvcrt.open_osfhandle(handle, os.O_RDONLY | os.O_BINARY)  # type: ignore[attr-defined]
    return fd


def read_file(path: str) -> bytes:
    """The whole file, read through :func:`open_read`."""
    fd = open_read(path)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 16))
        return b"".join(chunks)
    finally:
        os.close(fd)


# -- lock ------------------------------------------------------------------------


class FileLock(LockContext):
    """A store's lock on Windows: shared or exclusive, across processes and handles.

    ``LockFileEx`` on byte 0 of ``path`` (created with its directory when
    first taken), not ``msvcrt.locking``: that one is exclusive only, gives up
    after 10 one-second tries instead of waiting, and locks from the file
    position of a CRT descriptor. Locks belong to the open handle, so two
    handles in one process exclude each other (as ``flock`` does on POSIX),
    and Windows drops them when the process dies. Re-entrant in the thread
    that holds it; other threads of the same object wait (as
    :meth:`sos.storage.base.Storage.acquire` says).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._exclusive = False
        self._handle: int | None = None

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        if not self._thread_lock.acquire(blocking):
            return False
        try:
            if self._depth:
                if exclusive and not self._exclusive:
                    raise Error(
                        f"{self._path}: asked for the exclusive lock while holding it shared"
                        " (release the shared lock first)",
                        self._path,
                    )
                taken = True
                self._depth += 1
            else:
                taken = self._lock(exclusive, blocking)
                if taken:
                    self._exclusive = exclusive
                    self._depth = 1  # last: until here, the except below undoes the take
        except BaseException:  # the thread lock taken above is still held, on every path
            if not self._depth:  # e.g. an interrupt as LockFileEx returned
                self._let_go_untaken()
            self._thread_lock.release()
            raise
        if not taken:  # outside the try: nothing to undo after it
            self._thread_lock.release()
        return taken

    def _let_go_untaken(self) -> None:
        """Undo a first take that did not complete. No other thread of this
        object holds the lock (the thread lock keeps them out), so the unlock
        releases only what the failed take may have got; it fails harmlessly
        (not locked) where the take got nothing."""
        if self._handle is not None:
            with contextlib.suppress(Exception):
                _k32().UnlockFileEx(self._handle, 0, 1, 0, ctypes.byref(_Overlapped()))

    @property
    def held(self) -> bool:
        """True if the calling thread holds this lock."""
        return self._depth > 0 and self._thread_lock._is_owned()  # type: ignore[attr-defined]

    def release(self) -> None:
        if self._depth <= 0 or not self._thread_lock._is_owned():  # type: ignore[attr-defined]
            # Unbalanced, or another thread's hold: change nothing (as StoreLock on POSIX).
            raise RuntimeError(f"{self._path}: the store's lock released but not held")
        try:
            if self._depth == 1:
                # Unlocked first, never raising: it comes after a commit, and a failed
                # unlock must not turn a change made into an error; closing the handle
                # releases the lock just as well (the next take opens it again).
                close_handle = None
                unlocked = False
                try:
                    k32 = _k32()
                    close_handle = k32.CloseHandle  # looked up before: see below
                    unlocked = k32.UnlockFileEx(
                        self._handle, 0, 1, 0, ctypes.byref(_Overlapped())
                    )
                finally:  # not unlocked (it failed, or an interrupt came first): close
                    try:
                        if not unlocked:
                            if close_handle is None:
                                close_handle = _k32().CloseHandle
                            # Forgotten, then closed, with no Python call between (an
                            # interrupt is raised only at one): never a closed handle
                            # kept (its value may be another file's), nor an open one lost.
                            handle, self._handle = self._handle, None
                            if handle is not None:
                                close_handle(handle)
                    finally:
                        self._depth = 0
            else:
                self._depth -= 1
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close the lock file's handle (the lock goes with it). A hold of the
        calling thread stays counted: its release still comes, and balances it."""
        with self._thread_lock:
            close_handle = _k32().CloseHandle
            handle, self._handle = self._handle, None  # as in release: forgotten, then closed
            if handle is not None:
                close_handle(handle)

    def __del__(self) -> None:
        try:
            if self._handle is not None:
                _k32().CloseHandle(self._handle)
        except Exception:
            pass

    def _lock(self, exclusive: bool, blocking: bool) -> bool:
        if self._handle is None:
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            self._handle = _open(self._path, _GENERIC_READ | _GENERIC_WRITE, _OPEN_ALWAYS)
        flags = (_LOCKFILE_EXCLUSIVE_LOCK if exclusive else 0) | (
            0 if blocking else _LOCKFILE_FAIL_IMMEDIATELY
        )
        overlapped = _Overlapped()
        if _k32().LockFileEx(self._handle, flags, 0, 1, 0, ctypes.byref(overlapped)):
            return True
        code = ctypes.get_last_error()  # type: ignore[attr-defined]
        if not blocking and code in (_ERROR_LOCK_VIOLATION, _ERROR_IO_PENDING):
            return False
        raise _os_error(code, self._path)



class WindowsStoreLock(LockContext):
    """:class:`sos.storage.locks.StoreLock` on Windows: a :class:`FileLock` on ``.sos/lock``.

    A directory cannot be locked there, so the store holds this one file in
    its reserved name space. As on POSIX, a second handle of the same store
    in a thread that holds the first is refused (it would wait for itself).
    :meth:`pin` does nothing: a replaced store directory is not detected.
    """

    def __init__(self, directory: str) -> None:
        from sos.format.names import RESERVED_DIR

        self._directory = directory
        self._key = os.path.normcase(os.path.abspath(directory))
        self._file = FileLock(os.path.join(directory, RESERVED_DIR, "lock"))

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        first = not self._file.held
        if first:
            HOLDERS.refuse_another(self._key, self, self._directory)
        taken = False
        try:
            taken = self._file.acquire(exclusive, blocking)
            if not taken:
                return False
            HOLDERS.add(self._key, self)
        except BaseException:
            if taken:  # e.g. an interrupt before the record: this take undone, not kept by nobody
                try:
                    self._file.release()
                finally:
                    if first:
                        HOLDERS.discard(self._key, self)
            raise
        return True

    def release(self) -> None:
        if not self._file.held:  # unbalanced, or another thread's: nothing changes
            raise RuntimeError(f"{self._directory}: the store's lock released but not held")
        try:
            self._file.release()
        finally:  # as StoreLock: the hold and its record end together
            if not self._file.held:
                HOLDERS.discard(self._key, self)

    @property
    def held(self) -> bool:
        return self._file.held

    def pin(self) -> None:
        """POSIX remembers the directory's inode here; Windows does not (yet)."""

    def close(self, first: Callable[[], None] | None = None) -> None:
        if first is not None:  # nothing of the storage's is kept open on Windows
            first()
        self._file.close()

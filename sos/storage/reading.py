"""Reading a local store's files: whole (refusing anything that is not a
regular file) or only their head (listing keys).

Every read opens with ``O_NOFOLLOW`` (a symlink in a document's place is
refused) and ``O_NONBLOCK`` (a FIFO opens at once instead of waiting for a
writer); a whole read is sized by ``fstat`` and refuses a FIFO, a device,
a socket or a directory at once (a symlink to ``/dev/zero`` would be read
until memory runs out).
"""

from __future__ import annotations

import errno
import os
import stat

from sos.errors import CorruptError
from sos.storage.fileops import with_path

__all__ = ["read_file", "read_head"]

_WINDOWS = os.name == "nt"
if _WINDOWS:  # binary, share-delete reads (sos.storage.windows.open_read)
    from sos.storage import windows as _win

_O_READ = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
)
_CHUNK = 1 << 16
_S_IFMT = 0o170000
_S_IFREG = stat.S_IFREG


def read_file(path: str) -> bytes:
    """A regular file's whole content: open, fstat, read, close.

    Anything else (a FIFO, a device, a socket, a directory, a symlink) is a
    :class:`CorruptError` naming ``path``. The read is sized by ``fstat``.
    """
    return _read(path)[0]


def _read(path: str) -> tuple[bytes, os.stat_result]:
    try:
        fd = _win.open_read(path) if _WINDOWS else os.open(path, _O_READ)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise CorruptError(f"{path}: is a symbolic link, not a document", path) from None
        if exc.errno == errno.ENXIO:
            raise CorruptError(f"{path}: is a socket or device, not a file", path) from None
        raise
    try:  # inline, not a call: this is every read's path
        st = os.fstat(fd)
        size = st.st_size
        if st.st_mode & _S_IFMT != _S_IFREG:  # stat.S_ISREG, without the call
            raise CorruptError(f"{path}: is {_kind_of(st.st_mode)}, not a regular file", path)
        chunk = os.read(fd, size + 1)  # one read up to end of file in the common case
        if len(chunk) <= size:
            return chunk, st
        chunks = [chunk]  # grew since fstat: read on to the end
        while chunk:
            chunk = os.read(fd, _CHUNK)
            chunks.append(chunk)
        return b"".join(chunks), st
    except OSError as exc:
        raise with_path(exc, path) from None
    finally:
        os.close(fd)


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_head(path: str, size: int) -> bytes | None:
    """At most the first ``size`` bytes of ``path`` (open, read, close: no
    ``fstat``, the read is bounded whatever the file is), or None if it
    cannot be read that way (a directory, a socket, a symlink, Windows):
    the caller then reads it whole, which says what is wrong.
    FileNotFoundError if there is no file."""
    if _WINDOWS:
        return None
    try:
        fd = os.open(path, _O_READ)
    except FileNotFoundError:
        raise
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)

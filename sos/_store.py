"""What Dict and List share: finding or creating the store, locking, closing."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import _atomic, _format
from ._errors import ClosedError, CorruptError, Error
from ._lock import StoreLock

__all__ = [
    "Store",
    "read_document",
    "read_document_bytes",
    "read_file",
    "read_kind",
    "read_value",
]

StrPath = str | os.PathLike[str]


_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 16


def read_file(path: str) -> bytes:
    """The whole file in the fewest syscalls: open, read until end of file, close.

    (``open()`` adds an fstat, an lseek and a second fstat: a sixth of a read.)
    """
    fd = os.open(path, _O_RDONLY)
    try:
        chunks = [os.read(fd, _CHUNK)]
        while chunks[-1]:
            chunks.append(os.read(fd, _CHUNK))
        return chunks[0] if len(chunks) == 2 else b"".join(chunks)
    finally:
        os.close(fd)


def read_document(path: str) -> tuple[str, Any]:
    """Read and check one document: its key must hash to its file name."""
    _, key, value = read_document_bytes(path)
    return key, value


def read_document_bytes(path: str) -> tuple[bytes, str, Any]:
    """As :func:`read_document`, also returning the bytes read (writeback compares them)."""
    try:
        data = read_file(path)
    except IsADirectoryError:
        raise CorruptError(f"{path}: is a directory, not a document", path) from None
    key, value = _format.decode_document(data, path)
    _format.check_document_name(key, path, os.path.basename(path))
    return data, key, value


def read_value(path: str, key: str) -> tuple[bytes, Any]:
    """Read the document that must hold ``key``: its bytes and its value.

    A document holding ``key`` is in the right file by construction (the path
    was computed from ``key``), so only a different key needs the name check.
    """
    try:
        data = read_file(path)
    except IsADirectoryError:
        raise CorruptError(f"{path}: is a directory, not a document", path) from None
    found, value = _format.decode_document(data, path)
    if found != key:
        _format.check_document_name(found, path, os.path.basename(path))
        raise CorruptError(f"{path}: holds key {found!r:.80}, not {key!r:.80}", path)
    return data, value


def read_kind(path: StrPath) -> str | None:
    """The kind named by the store's metadata, or None where there is none.

    Raises :class:`Error` if ``path`` exists but is not a directory, and
    :class:`CorruptError` if the metadata file is damaged.
    """
    root = os.fspath(path)
    meta_path = os.path.join(root, _format.METADATA_NAME)
    try:
        data = read_file(meta_path)
    except FileNotFoundError:
        if os.path.lexists(root) and not os.path.isdir(root):
            raise Error(f"{root}: is a file, not a store directory", root) from None
        return None
    except NotADirectoryError:
        if os.path.isdir(os.path.dirname(os.path.abspath(root))):
            raise Error(f"{root}: is a file, not a store directory", root) from None
        raise Error(f"{root}: a parent of the store is a file", root) from None
    except IsADirectoryError:
        raise CorruptError(
            f"{meta_path}: is a directory, not the store's metadata", meta_path
        ) from None
    return _format.decode_metadata(data, meta_path)


def _is_claimable(root: str) -> bool:
    """True if ``root`` holds nothing but what a half-made store leaves."""
    for name in os.listdir(root):
        if name in _format.SUPPORT_FILES or name == _format.ORDER_NAME:
            continue
        if _atomic.is_temp_name(name):
            continue
        if name == ".sos":  # the reserved name space: Windows' lock file lives there
            continue
        return False
    return True


# Key -> file path, so a read or ``in`` does not hash the key again (the
# syscall floor has its paths for free). Emptied when full: bounded memory.
PATH_CACHE_LIMIT = 1 << 16


class Store:
    """Base of Dict and List: a directory with a metadata file naming its kind."""

    _kind: str = ""

    def __init__(self, path: StrPath, *, create: bool = True, writeback: bool = False) -> None:
        self._path = Path(path)
        self._root = os.fspath(self._path)
        self._closed = True
        self._writeback = writeback
        self._batch_thread: int | None = None
        self._paths: dict[str, str] = {}
        self._lock = StoreLock(self._root) if os.path.isdir(self._root) else None
        kind = read_kind(self._root)
        if kind is None:
            if not create:
                raise Error(
                    f"{self._root}: not a sos store (no {_format.METADATA_NAME})", self._root
                )
            self._create()
        elif kind != self._kind:
            raise Error(
                f"{self._root}: is a sos {kind} store, not a {self._kind}; "
                f"open it with sos.{kind.capitalize()} or sos.open",
                self._root,
            )
        if self._lock is None:
            self._lock = StoreLock(self._root)
        self._closed = False

    def _create(self) -> None:
        try:
            _atomic.make_dirs(self._root)
        except (NotADirectoryError, FileExistsError):
            raise Error(f"{self._root}: a parent of the store is a file", self._root) from None
        if self._lock is None:
            self._lock = StoreLock(self._root)
        with self._lock:
            kind = read_kind(self._root)  # another process may have won the race
            if kind is not None:
                if kind != self._kind:
                    raise Error(
                        f"{self._root}: is a sos {kind} store, not a {self._kind}", self._root
                    )
                return
            if not _is_claimable(self._root):
                raise Error(
                    f"{self._root}: is a non-empty directory without {_format.METADATA_NAME}, "
                    "not a sos store; refusing to turn it into one",
                    self._root,
                )
            files = [(name, data) for name, data in _format.SUPPORT_FILES.items()]
            files += self._initial_files()
            for name, data in files:
                _atomic.write_file(os.path.join(self._root, name), data, sync_dir=False)
            # Their names must be durable before the metadata's: renames in one
            # directory may reach the disk in any order, and a List whose
            # sos.json survived a power cut without its order.txt is unreadable.
            _atomic.sync_dir(self._root)
            # The metadata comes last and alone: a store exists once it is durable.
            _atomic.write_file(
                os.path.join(self._root, _format.METADATA_NAME), _format.encode_metadata(self._kind)
            )

    def _initial_files(self) -> list[tuple[str, bytes]]:
        return []

    # -- life cycle ----------------------------------------------------------

    @property
    def _in_batch(self) -> bool:
        """True in the thread running this handle's batch, and only there:
        other threads sharing the handle neither see its buffer nor write
        into it (their writes wait for the lock the batch holds)."""
        return self._batch_thread is not None and self._batch_thread == threading.get_ident()

    @_in_batch.setter
    def _in_batch(self, value: bool) -> None:
        self._batch_thread = threading.get_ident() if value else None

    @property
    def path(self) -> Path:
        """The store's directory, as given."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Write back changed values (writeback mode), then release the store's
        resources. Closing twice is allowed; closing inside a batch is not (the
        batch would commit through a released lock)."""
        if self._in_batch:
            raise Error(f"{self._root}: close() inside a batch; close after the block", self._root)
        if not self._closed:
            try:
                if self._writeback:
                    self.sync()
            finally:
                self._closed = True
                if self._lock is not None:
                    self._lock.close()

    # -- batches and writeback -------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[Any]:
        """Buffer the writes of a block and commit them together (group commit).

        Inside the block, writes go to a buffer on this handle and reads see
        them. When the block ends normally, every buffered file is written and
        fsynced in parallel, each directory is fsynced once and (for a List)
        the manifest is replaced once; all of it is durable when the ``with``
        statement returns. If the block raises, the buffer is discarded and
        the store is untouched. The writer lock is held for the whole block
        (other writers wait; readers never do). Nested batches join the
        outermost one. The buffer belongs to the handle: batch from one thread.

        After a crash during the commit, each Dict key holds its old or its
        new value: the batch as a whole is not atomic. A List shows its old
        or its new sequence (the manifest is the commit point).
        """
        self._check_open()
        if self._in_batch:
            yield self
            return
        with self._lock:
            self._batch_begin()
            self._in_batch = True
            try:
                yield self
            except BaseException:
                self._in_batch = False
                self._batch_discard()
                raise
            self._in_batch = False
            try:
                self._batch_commit()
            except BaseException:
                self._batch_discard()
                raise

    def sync(self) -> None:
        """Writeback mode: write the values whose JSON changed since they were
        read, as one batch, then forget the cached values so changes made by
        others are seen again. Without writeback every write is already on
        disk and this does nothing.
        """
        self._check_open()
        if not self._writeback:
            return
        if self._in_batch:
            raise Error(
                f"{self._root}: sync() inside a batch; the batch commits on exit", self._root
            )
        with self.batch():
            pass
        self._drop_cache()

    def _batch_begin(self) -> None:
        raise NotImplementedError

    def _batch_commit(self) -> None:
        raise NotImplementedError

    def _batch_discard(self) -> None:
        raise NotImplementedError

    def _drop_cache(self) -> None:
        raise NotImplementedError

    def _document_path(self, key: str) -> str:
        """The file that holds ``key`` (a Dict key or a List item id), remembered:
        hashing is a good part of a read."""
        path = self._paths.get(key)
        if path is None:
            path = os.path.join(self._root, _format.key_relpath(key))
            if len(self._paths) >= PATH_CACHE_LIMIT:
                self._paths.clear()
            self._paths[key] = path
        return path

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"operation on closed store {self._root}", self._root)

    def __enter__(self) -> Any:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"sos.{type(self).__name__}({self._root!r}){state}"

    def _file(self, relpath: str) -> str:
        return os.path.join(self._root, relpath)

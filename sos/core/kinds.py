"""What a path holds: the kind of store its metadata names, if any."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

from sos import format as _format
from sos.errors import Error
from sos.storage.base import Storage
from sos.storage.registry import open_storage

StrPath = str | os.PathLike[str]

# (path, kind) that the caller read just now: sos.open reads the kind to
# choose the class, and the store it opens need not read sos.json again (on
# object storage, a request).
_just_read: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "sos_kind_just_read", default=None
)


@contextlib.contextmanager
def kind_just_read(path: StrPath, kind: str) -> Iterator[None]:
    """Within the block, a store opened at ``path`` takes ``kind`` as read."""
    token = _just_read.set((os.fspath(path), kind))
    try:
        yield
    finally:
        _just_read.reset(token)


def _read_kind(storage: Storage, path: str) -> str | None:
    known = _just_read.get()
    if known is not None and known[0] == path:
        _just_read.set(None)  # once: a later open reads for itself
        return known[1]
    try:
        data = storage.read(_format.METADATA_NAME)
    except (FileNotFoundError, NotADirectoryError):
        problem = storage.root_problem()
        if problem is not None:
            raise Error(f"{path}: {problem}", path) from None
        return None
    return _format.decode_metadata(data, storage.where(_format.METADATA_NAME))


def read_kind(path: StrPath, storage_options: dict[str, Any] | None = None) -> str | None:
    """The kind named by the store's metadata, or None where there is none.

    Raises :class:`Error` if ``path`` exists but is not a directory, and
    :class:`CorruptError` if the metadata file is damaged.
    """
    text = os.fspath(path)
    storage = open_storage(text, **(storage_options or {}))
    try:
        return _read_kind(storage, text)
    finally:
        storage.close()

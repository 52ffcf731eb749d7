"""What a path holds: the kind of store its metadata names, if any."""

from __future__ import annotations

import os
from typing import Any

from sos import format as _format
from sos.errors import Error
from sos.storage.base import Storage
from sos.storage.registry import open_storage, scheme_of

StrPath = str | os.PathLike[str]


def _read_kind(storage: Storage, path: str) -> str | None:
    meta = storage.url + "/" + _format.METADATA_NAME if scheme_of(path) else None
    try:
        data = storage.read(_format.METADATA_NAME)
    except FileNotFoundError:
        if scheme_of(path) is None and os.path.lexists(path) and not os.path.isdir(path):
            raise Error(f"{path}: is a file, not a store directory", path) from None
        return None
    except NotADirectoryError:
        if os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise Error(f"{path}: is a file, not a store directory", path) from None
        raise Error(f"{path}: a parent of the store is a file", path) from None
    if meta is None:
        meta = os.path.join(path, _format.METADATA_NAME)
    return _format.decode_metadata(data, meta)


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

"""sos: persistent dicts and lists kept as plain, readable JSON files.

>>> import sos
>>> db = sos.Dict("somefile")        # a directory; each key is one JSON file
>>> db["hello"] = "persistence!"     # on disk, durably, when the call returns
"""

from __future__ import annotations

from typing import Any

from sos.check.problems import Code, Problem
from sos.check.run import check
from sos.check.salvage import iter_readable
from sos.core.dict import Dict
from sos.core.list import List
from sos.core.store import StrPath, read_kind
from sos.errors import ClosedError, CorruptError, Error, NotDurableError
from sos.watch.change import Change

__all__ = [
    "Change",
    "ClosedError",
    "Code",
    "CorruptError",
    "Dict",
    "Error",
    "List",
    "NotDurableError",
    "Problem",
    "__version__",
    "check",
    "iter_readable",
    "open",
]

__version__ = "0.3.0"


def open(  # noqa: A001 - as shelve.open
    path: StrPath, *, writeback: bool = False, storage_options: dict[str, Any] | None = None
) -> Dict | List:
    """Open the existing store at ``path`` as the Dict or List its metadata names.

    Raises :class:`Error` if ``path`` is not a store; never creates one.
    ``writeback`` and ``storage_options`` (an S3 store's endpoint, profile,
    credentials: docs/s3.md) are passed on to :class:`Dict` or :class:`List`.
    """
    kind = read_kind(path, storage_options)
    if kind is None:
        raise Error(f"{path}: not a sos store (no sos.json)", path)
    if kind == "dict":
        return Dict(path, create=False, writeback=writeback, storage_options=storage_options)
    return List(path, create=False, writeback=writeback, storage_options=storage_options)

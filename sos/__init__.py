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
from sos.core.kinds import StrPath, kind_just_read, read_kind
from sos.core.list import List
from sos.errors import (
    ClosedError,
    ConflictError,
    CorruptError,
    Error,
    NotDurableError,
    SchemaMismatch,
    UnwritableError,
    ValidationError,
)
from sos.watch.change import Change

__all__ = [
    "Change",
    "ClosedError",
    "Code",
    "ConflictError",
    "CorruptError",
    "Dict",
    "Error",
    "List",
    "NotDurableError",
    "Problem",
    "SchemaMismatch",
    "UnwritableError",
    "ValidationError",
    "__version__",
    "check",
    "iter_readable",
    "open",
]

__version__ = "0.3.0"


def open(  # noqa: A001 - as shelve.open
    path: StrPath,
    *,
    writeback: bool = False,
    value_type: Any = None,
    update_schema: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Dict[Any] | List[Any]:
    """Open the existing store at ``path`` as the Dict or List its metadata names.

    Raises :class:`Error` if ``path`` is not a store; never creates one.
    ``writeback``, ``value_type``, ``update_schema`` and ``storage_options``
    (an S3 store's endpoint, profile, credentials: docs/s3.md) are passed on
    to :class:`Dict` or :class:`List`.
    """
    kind = read_kind(path, storage_options)
    if kind is None:
        raise Error(f"{path}: not a sos store (no sos.json)", path)
    cls = Dict if kind == "dict" else List
    with kind_just_read(path, kind):  # the store does not read sos.json again
        store: Dict[Any] | List[Any] = cls(
            path,
            create=False,
            writeback=writeback,
            value_type=value_type,
            update_schema=update_schema,
            storage_options=storage_options,
        )
    return store

"""sos: persistent dicts and lists kept as plain, readable JSON files.

>>> import sos
>>> db = sos.Dict("somefile")        # a directory; each key is one JSON file
>>> db["hello"] = "persistence!"     # on disk, durably, when the call returns
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sos.check.run import check
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

if TYPE_CHECKING:
    from sos.check.problems import Code, Problem
    from sos.check.salvage import iter_readable
    from sos.watch.change import Change

# The checker's and the watcher's names are imported when first used (and
# check() imports the checker when called): a program that only reads and
# writes stores does not pay for loading the checker, repair and watch (~40
# ms of CPU per process; the `sos` command still loads them).
_LAZY = {
    "Change": "sos.watch.change",
    "Code": "sos.check.problems",
    "Problem": "sos.check.problems",
    "iter_readable": "sos.check.salvage",
}


def __getattr__(name: str) -> Any:
    """The lazily imported public names (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sos' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next use is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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

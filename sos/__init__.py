"""sos: persistent dicts and lists kept as plain, readable JSON files.

>>> import sos
>>> db = sos.Dict("somefile")        # a directory; each key is one JSON file
>>> db["hello"] = "persistence!"     # on disk, durably, when the call returns
"""

from __future__ import annotations

from sos.check.problems import Code, Problem
from sos.check.run import check
from sos.check.salvage import iter_readable
from sos.core.dict import Dict
from sos.core.list import List
from sos.core.store import StrPath, read_kind
from sos.errors import ClosedError, ConflictError, CorruptError, Error, NotDurableError
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
    "__version__",
    "check",
    "iter_readable",
    "open",
]

__version__ = "0.3.0"


def open(path: StrPath, *, writeback: bool = False) -> Dict | List:  # noqa: A001 - as shelve.open
    """Open the existing store at ``path`` as the Dict or List its metadata names.

    Raises :class:`Error` if ``path`` is not a store; never creates one.
    ``writeback`` is passed on to :class:`Dict` or :class:`List`.
    """
    kind = read_kind(path)
    if kind is None:
        raise Error(f"{path}: not a sos store (no sos.json)", path)
    if kind == "dict":
        return Dict(path, create=False, writeback=writeback)
    return List(path, create=False, writeback=writeback)

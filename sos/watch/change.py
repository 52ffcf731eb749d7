"""One change a watcher reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sos.errors import CorruptError, ValidationError


@dataclass(frozen=True)
class Change:
    """One change to a store.

    ``kind`` is one of:

    - ``"set"`` (Dict): ``key`` now holds ``value``;
    - ``"deleted"`` (Dict): ``key`` is gone (``key`` is None only for a damaged
      file whose key was never known);
    - ``"error"``: the file ``path`` is damaged; ``error`` is the
      :class:`~sos.CorruptError`, ``key`` the key it held before, if known.
      Watching goes on: a later good version is reported as ``"set"``. On
      a handle with a ``value_type``, also a document the type rejects:
      ``error`` is the :class:`~sos.ValidationError`, ``key`` its key;
    - ``"changed"`` (List): the sequence changed; ``length`` is its new
      length, ``added``/``removed`` count item ids that entered or left the
      order and ``edited`` items whose value changed in place;
    - ``"resync"``: events may have been lost (or the directory was
      replaced); the changes that follow are the differences found by
      re-reading the whole store.

    ``path`` is the store-relative file name concerned, where there is one.
    ``value`` is the JSON value, or on a Dict handle with a ``value_type``
    the type's value (a ``User``), as a read of the key would give it.
    """

    kind: str
    key: str | None = None
    value: Any = None
    error: CorruptError | ValidationError | None = None
    path: str | None = None
    length: int | None = None
    added: int = 0
    removed: int = 0
    edited: int = 0

    @property
    def deleted(self) -> bool:
        return self.kind == "deleted"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: what ``sos watch`` prints, one per line."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("set", "deleted", "error"):
            out["key"] = self.key
        if self.kind == "set":
            out["value"] = self.value
        if self.kind == "error":
            out["error"] = str(self.error)
        if self.path is not None:
            out["path"] = self.path
        if self.kind == "changed":
            out.update(length=self.length, added=self.added, removed=self.removed)
            out["edited"] = self.edited
        return out

"""The exception classes. No I/O here, so every layer can import them."""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "ClosedError",
    "ConflictError",
    "CorruptError",
    "Error",
    "NotDurableError",
    "SchemaMismatch",
    "UnwritableError",
    "ValidationError",
]


class Error(Exception):
    """Base class of every error sos raises on purpose.

    ``path`` names the store, file or directory concerned (or is ``None``).
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # keep path across pickling (multiprocessing)
        return (self.__class__, (self.message, self.path))


class CorruptError(Error, ValueError):
    """A file in a store is not a valid document: bad JSON, conflict markers,
    wrong shape, or a key that does not hash to its file name.

    A ``ValueError`` too, because the bytes on disk are a bad value.
    ``line`` and ``column`` are set (1-based) for JSON syntax errors.
    """

    def __init__(
        self,
        message: str,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message, path)
        self.line = line
        self.column = column

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message, self.path, self.line, self.column))


class UnwritableError(Error, ValueError):
    """A key or value that sos cannot write as JSON faithfully: a lone
    surrogate (not UTF-8), NaN or an infinity, nesting deeper than the
    format allows, an integer too long for Python to print, a circular
    reference. Raised before anything is written; the message names the
    key and the place in the value, and says what to do.

    A ``ValueError`` too, as a bad value is (a wrong *type* is a ``TypeError``).
    """


class ClosedError(Error, ValueError):
    """The store was closed; like a closed file, it raises ``ValueError``."""


class ConflictError(Error):
    """A transaction read or wrote a key that another client changed before
    the transaction's commit point (object storage, where a plain set does
    not wait for a transaction's lease). Nothing of the transaction was
    written: run it again on what the store holds now."""


class NotDurableError(Error, OSError):
    """The change was made, but a step after its commit point failed: an
    fsync that makes it durable (it may not survive a power loss), or the
    apply step of a committed transaction (its durable record is finished by
    the next write to the store, or by opening it).

    Do not simply retry the call: the change is already made (a retried
    ``append`` would add the item twice). ``result`` holds what the call
    would have returned (the value ``pop`` removed, for instance), so
    nothing it destroyed is lost to the caller. An ``OSError`` too, for code
    that already catches I/O errors.
    """

    result: object = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message, self.path))


class ValidationError(Error, ValueError):
    """A value, or a stored document, that the store's schema rejects.

    ``key`` names the key (or list item) concerned, ``findings`` holds one
    ``(field path, reason)`` pair per failing field, the path a JSON Pointer
    into the value (``/born``, ``/langs/0``; ``/`` for the value itself).
    The message says all of it in one form, the same for a typed handle and
    ``sos check``: ``ada: /born: expected integer, found string``. Nothing
    was written; on a read, ``path`` is the file.
    """

    def __init__(
        self,
        message: str,
        path: str | os.PathLike[str] | None = None,
        key: str | None = None,
        findings: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message, path)
        self.key = key
        self.findings = tuple(findings)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message, self.path, self.key, self.findings))


class SchemaMismatch(Error):
    """The ``value_type`` a store is opened with does not give the schema the
    store keeps in ``schema.json``. Open it with ``update_schema=True`` to
    check every document against the new type and adopt its schema."""

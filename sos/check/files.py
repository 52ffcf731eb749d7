"""sos.check.files"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sos import format as _format
from sos.errors import CorruptError, Error
from sos.format.order import (
    Run,
)
from sos.storage.base import Version
from sos.storage.registry import open_storage, scheme_of

# -- the files, by store-relative name ------------------------------------------------


class _Files:
    """A store's :class:`~sos.storage.base.Storage`, plus the one thing check adds:
    how a message names a file (the path as the user typed it, or the URL)."""

    def __init__(self, path: str) -> None:
        self.storage = open_storage(path)
        self.local = scheme_of(path) is None
        # A URL's query (?endpoint=…) is not part of the names messages show.
        self.url = path if self.local else self.storage.url

    def where(self, name: str) -> str:
        """What a message calls ``name``: the storage says (the store itself for "")."""
        return self.storage.where(name) if name else self.url

    def list(self, directory: str = "") -> builtins.list[str]:
        return self.storage.list(directory)

    def is_dir(self, name: str) -> bool:
        return self.storage.is_dir(name)

    def list_directory(self, directory: str) -> tuple[builtins.list[str], int | None] | None:
        return self.storage.list_directory(directory)

    def exists(self, name: str) -> bool:
        try:
            return self.storage.exists(name)
        except CorruptError:  # below a symlinked directory: there, but not a file
            return True

    def read(self, name: str) -> bytes:
        return self.storage.read(name)

    def read_versioned(self, name: str) -> tuple[bytes, Version]:
        return self.storage.read_versioned(name)

    def read_ahead(self, names: Iterable[str]) -> Iterator[Callable[[], bytes]]:
        """For each name in order, a call that returns its bytes or raises
        what :meth:`read` would; where the storage has a pool the files are
        read ahead through it (:meth:`~sos.storage.base.Storage.read_many`)."""
        names = builtins.list(names)
        if self.storage.parallelism() <= 1:
            yield from (functools.partial(self.read, name) for name in names)
            return
        ahead = self.storage.read_many(names)
        for index, name in enumerate(names):
            try:
                _, data = next(ahead)
            except (OSError, Error):  # from here on one by one, each raising its own error
                yield from (functools.partial(self.read, n) for n in names[index:])
                return
            yield functools.partial(_found, name, data)

    def write(self, name: str, data: bytes) -> None:
        self.storage.write(name, data)

    def swap(self, name: str, data: bytes, version: Version | None) -> bool:
        """Replace ``name`` only if it still has ``version`` (None: only if
        absent); False if another writer changed it first."""
        return self.storage.swap(name, data, version) is not None

    def remove(self, names: Iterable[str]) -> builtins.list[str]:
        return self.storage.remove(names)

    def move(self, source: str, target: str) -> None:
        """Copy, durably, then remove the source: a crash leaves two copies,
        never none (and the target's directory may not exist yet)."""
        self.storage.write(target, self.storage.read(source))
        self.storage.remove([source])

    def modified(self, name: str) -> float | None:
        return self.storage.modified(name)

    def orphan_grace(self) -> float:
        """Seconds an orphan item is left alone: 0 where the store lock
        excludes appenders (locally), an hour on object storage (docs/s3.md)."""
        return float(self.storage.orphan_grace)

    def age(self, name: str) -> float | None:
        """Seconds since ``name`` was written, on the storage's own clock, if it can say."""
        age = self.storage.age(name)
        return None if age is None else float(age)

    def marker(self, directory: str) -> int | None:
        """The size of ``directory``'s directory-marker object, on object storage."""
        return self.storage.marker(directory)

    def remove_marker(self, directory: str) -> bool:
        return self.storage.remove_marker(directory)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return self.storage.lock(exclusive=True)

    def close(self) -> None:
        self.storage.close()


def _open_files(path: str | os.PathLike[str]) -> _Files:
    root = os.fspath(path)
    if scheme_of(root) is None and not os.path.isdir(root):
        raise Error(f"{root}: no such store directory", root)
    return _Files(root)


def _found(name: str, data: bytes | None) -> bytes:
    if data is None:
        raise FileNotFoundError(errno.ENOENT, "no such file", name)
    return data


def _data_names(files: _Files) -> list[str]:
    """Every well-placed data file name of a store, sorted. Where the
    storage has a pool, the fan-out directories are listed through it (a
    name there that is not a directory lists as empty: object storage)."""
    tops = [top for top in sorted(files.list()) if _format.is_fanout_name(top)]
    if files.storage.parallelism() <= 1:
        tops = [top for top in tops if files.is_dir(top)]
    names = []
    for top, entries in files.storage.list_many(tops):
        names += [f"{top}/{n}" for n in sorted(entries) if _format.is_data_file(top, n)]
    return names


# -- the scan ----------------------------------------------------------------------


@dataclass
class _Doc:
    """A file that holds, or may hold, a document."""

    name: str  # store-relative
    data_name: bool  # named and placed as a data file (else: a candidate to adopt)
    key: str | None = None
    value: Any = None


# Missing runs up to this size are checked file by file (damaged, or gone?).
_STAT_AT_MOST = 4096


@dataclass
class _Manifest:
    """What the scan learnt of a List's manifest, for repair."""

    runs: list[Run] = field(default_factory=list)  # its readable runs, repeats included
    # Missing, empty, cut short or unreadable: repair rebuilds it from the
    # item files (after ``runs``), and no item goes to lost+found for it.
    rebuild: bool = False
    # The version of the bytes judged (None: there was no file): repair
    # replaces the manifest only if it still has it, as an append that takes
    # no lock (object storage) does, so neither loses the other's change.
    version: Version | None = None
    # Every run any line of those bytes names (a cut last line too): what
    # the manifest gained beyond them since was appended (repair keeps it).
    seen: list[Run] = field(default_factory=list)
    # Not readable as a file at all (a symlink, a directory): no append can
    # change it either, so repair replaces it outright.
    unreadable: bool = False

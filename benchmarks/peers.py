"""The stores sos is compared with, behind one small adapter each.

Every adapter answers the same calls on a handle, so the workloads in
``bench.py`` are written once. ``floor`` is not a store: it is the raw syscall
floor a file-per-key store cannot go below (temp write + fsync + rename +
directory fsync for a write; open + read + JSON parse for a read), working
on sos's own files so both read and write exactly the same bytes.

The peers (pysos, sqlitedict, diskcache) come from the ``bench`` extra; an
adapter whose module is missing reports itself unavailable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shelve
from collections.abc import Callable, Iterable
from typing import Any

import sos
from sos import format as _format
from sos.storage import atomic as _atomic
from sos.storage.fileops import FileOps

__all__ = ["DICTS", "LISTS", "Adapter", "NoSync", "available"]



def durable_replace(path: str, data: bytes, temp_name: str | None = None) -> None:
    """temp, write, fsync, rename, directory fsync: the floor of a durable write
    (the temp file beside the target, named ``temp_name`` or PATH.floor-tmp)."""
    directory = os.path.dirname(path)
    temp = os.path.join(directory, temp_name) if temp_name else path + ".floor-tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)

class NoSync(FileOps):
    """FileOps without fsync: only for building big stores before timing."""

    def fsync(self, fd: int) -> None:
        pass

    def fsync_dir(self, path: str) -> None:
        pass


class Adapter:
    """One store behind the calls the workloads use. ``path`` is a fresh location."""

    name = ""
    module = ""  # the optional module it needs
    kind = "dict"

    def open(self, path: str) -> Any:
        raise NotImplementedError

    def close(self, h: Any) -> None:
        h.close()

    def set(self, h: Any, key: str, value: Any) -> None:
        h[key] = value

    def get(self, h: Any, key: str) -> Any:
        return h[key]

    def contains(self, h: Any, key: str) -> bool:
        return key in h

    def length(self, h: Any) -> int:
        return len(h)

    def iterate(self, h: Any) -> int:
        return sum(1 for _ in h)

    def delete(self, h: Any, key: str) -> None:
        del h[key]

    def batch_set(self, h: Any, pairs: Iterable[tuple[str, Any]]) -> None:
        """The store's own way of writing many entries at once (sequential if none)."""
        for key, value in pairs:
            self.set(h, key, value)

    def fill(self, path: str, pairs: Iterable[tuple[str, Any]]) -> None:
        """Build a store fast, durability not needed (setup, never timed)."""
        h = self.open(path)
        self.batch_set(h, pairs)
        self.close(h)

    # List workloads
    def append(self, h: Any, value: Any) -> None:
        h.append(value)

    def index(self, h: Any, i: int) -> Any:
        return h[i]

    def insert(self, h: Any, i: int, value: Any) -> None:
        h.insert(i, value)

    def pop(self, h: Any) -> Any:
        return h.pop()


class SosDict(Adapter):
    name = "sos"

    def open(self, path: str) -> Any:
        return sos.Dict(path)

    def batch_set(self, h: Any, pairs: Iterable[tuple[str, Any]]) -> None:
        with h.batch():
            for key, value in pairs:
                h[key] = value

    def fill(self, path: str, pairs: Iterable[tuple[str, Any]]) -> None:
        saved, _atomic.ops = _atomic.ops, NoSync()
        try:
            with sos.Dict(path) as db:
                db.update(pairs)
        finally:
            _atomic.ops = saved
        _sync_all()


class Floor(Adapter):
    """The syscalls alone, on sos's files (paths and bytes computed beforehand)."""

    name = "floor"

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}
        self._bytes: dict[tuple[str, str], bytes] = {}

    def prepare(self, root: str, keys: Iterable[str], value_of: Callable[[str], Any]) -> None:
        """Hashing, encoding and fan-out directories are the store's work, not the
        floor's: done here."""
        for key in keys:
            path = self._paths[key] = os.path.join(root, _format.key_relpath(key))
            self._bytes[(root, key)] = _format.encode_document(key, value_of(key))
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def open(self, path: str) -> Any:
        with open(os.path.join(path, "sos.json"), "rb") as f:
            json.loads(f.read())
        return path

    def close(self, h: Any) -> None:
        pass

    def set(self, h: Any, key: str, value: Any) -> None:
        path = self._paths[key]
        durable_replace(path, self._bytes[(h, key)], ".sos-tmp-floor")

    def get(self, h: Any, key: str) -> Any:
        fd = os.open(self._paths[key], os.O_RDONLY)
        try:
            chunks = [os.read(fd, 1 << 16)]
            while chunks[-1]:
                chunks.append(os.read(fd, 1 << 16))
        finally:
            os.close(fd)
        return json.loads(b"".join(chunks))["value"]

    def contains(self, h: Any, key: str) -> bool:
        try:
            os.stat(self._paths[key])
        except FileNotFoundError:
            return False
        return True

    def _names(self, root: str) -> Iterable[str]:
        for prefix in os.listdir(root):
            if len(prefix) == 2:
                yield from os.listdir(os.path.join(root, prefix))

    def length(self, h: Any) -> int:
        return sum(1 for _ in self._names(h))

    def iterate(self, h: Any) -> int:
        return sum(1 for _ in self._names(h))

    def delete(self, h: Any, key: str) -> None:
        path = self._paths[key]
        os.unlink(path)
        dfd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class PysosDict(Adapter):
    name = "pysos"
    module = "pysos"

    def open(self, path: str) -> Any:
        import pysos

        return pysos.Dict(path + ".pysos")


class Shelve(Adapter):
    name = "shelve"

    def open(self, path: str) -> Any:
        return shelve.open(path + ".shelf")

    def batch_set(self, h: Any, pairs: Iterable[tuple[str, Any]]) -> None:
        for key, value in pairs:
            h[key] = value
        h.sync()


class SqliteDictAdapter(Adapter):
    name = "sqlitedict"
    module = "sqlitedict"

    def open(self, path: str) -> Any:
        from sqlitedict import SqliteDict

        return SqliteDict(path + ".sqlite", autocommit=True)

    def batch_set(self, h: Any, pairs: Iterable[tuple[str, Any]]) -> None:
        h.autocommit = False
        try:
            for key, value in pairs:
                h[key] = value
            h.commit(blocking=True)
        finally:
            h.autocommit = True


class DiskcacheIndex(Adapter):
    name = "diskcache.Index"
    module = "diskcache"

    def open(self, path: str) -> Any:
        import diskcache

        return diskcache.Index(path + ".dc")

    def close(self, h: Any) -> None:
        h.cache.close()

    def batch_set(self, h: Any, pairs: Iterable[tuple[str, Any]]) -> None:
        with h.transact():
            for key, value in pairs:
                h[key] = value


class SosList(Adapter):
    name = "sos"
    kind = "list"

    def open(self, path: str) -> Any:
        return sos.List(path)

    def fill(self, path: str, pairs: Iterable[tuple[str, Any]]) -> None:
        saved, _atomic.ops = _atomic.ops, NoSync()
        try:
            with sos.List(path) as lst:
                lst.extend(value for _, value in pairs)
        finally:
            _atomic.ops = saved
        _sync_all()


class PysosList(Adapter):
    name = "pysos"
    module = "pysos"
    kind = "list"

    def open(self, path: str) -> Any:
        import pysos

        return pysos.List(path + ".pysos")

    def fill(self, path: str, pairs: Iterable[tuple[str, Any]]) -> None:
        h = self.open(path)
        for _, value in pairs:
            h.append(value)
        self.close(h)


class DiskcacheDeque(Adapter):
    name = "diskcache.Deque"
    module = "diskcache"
    kind = "list"

    def open(self, path: str) -> Any:
        import diskcache

        return diskcache.Deque(directory=path + ".dq")

    def close(self, h: Any) -> None:
        h.cache.close()

    def insert(self, h: Any, i: int, value: Any) -> None:
        raise NotImplementedError("diskcache.Deque has no insert")

    def fill(self, path: str, pairs: Iterable[tuple[str, Any]]) -> None:
        h = self.open(path)
        h.extend(value for _, value in pairs)
        self.close(h)


def _sync_all() -> None:
    os.sync()  # setup writes reach the disk before timing starts


def available(adapter: Adapter) -> bool:
    return not adapter.module or importlib.util.find_spec(adapter.module) is not None


DICTS: list[Adapter] = [
    Floor(),
    SosDict(),
    PysosDict(),
    Shelve(),
    SqliteDictAdapter(),
    DiskcacheIndex(),
]
LISTS: list[Adapter] = [SosList(), PysosList(), DiskcacheDeque()]

"""An in-memory storage: ``memory://name`` stores live as long as the process.

It exists to prove that the storage interface is the whole contract: Dict,
List, check and the CLI run on it unchanged (the conformance and model tests
run against it). Handles opened on the same ``memory://name`` share the
files and the lock, as two handles of one directory do.
"""

from __future__ import annotations

import builtins
import itertools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

from sos.errors import Error
from sos.format.names import RESERVED_DIR
from sos.storage.base import Storage, Version

__all__ = ["MemoryStorage"]


class _Space:
    """The files of one ``memory://`` store and its lock."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, int]] = {}
        self.modified: dict[str, float] = {}  # name -> time.time() of its last write
        self.guard = threading.Lock()  # protects files
        self.lock = threading.Condition()  # the store's lock, shared or exclusive
        self.owner: tuple[object, int] | None = None  # exclusive holder and its thread
        self.shared = 0


_spaces: dict[str, _Space] = {}
_spaces_lock = threading.Lock()
_versions = itertools.count(1)


def _check_name(name: str, url: str) -> None:
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise Error(f"{url}: {name!r} is not a name inside the store", url)


class MemoryStorage(Storage):
    def __init__(self, url: str) -> None:
        self.url = url
        with _spaces_lock:
            self._space = _spaces.setdefault(url, _Space())
        self._local = threading.local()  # per thread: (depth, exclusive)

    # -- reads -----------------------------------------------------------------

    def _get(self, name: str) -> tuple[bytes, int]:
        _check_name(name, self.url)
        entry = self._space.files.get(name)
        if entry is None:
            raise FileNotFoundError(2, "No such file", f"{self.url}/{name}")
        return entry

    def read(self, name: str) -> bytes:
        return self._get(name)[0]

    def read_versioned(self, name: str) -> tuple[bytes, Version]:
        return self._get(name)

    def read_if_changed(self, name: str, version: Version | None) -> tuple[bytes, Version] | None:
        data, current = self._get(name)
        return None if current == version else (data, current)

    def version(self, name: str) -> Version | None:
        entry = self._space.files.get(name)
        return None if entry is None else entry[1]

    def modified(self, name: str) -> float | None:
        with self._space.guard:
            return self._space.modified.get(name) if name in self._space.files else None

    def list(self, directory: str = "") -> builtins.list[str]:
        prefix = f"{directory}/" if directory else ""
        with self._space.guard:
            names = list(self._space.files)
        return sorted({n[len(prefix) :].split("/", 1)[0] for n in names if n.startswith(prefix)})

    def is_dir(self, name: str) -> bool:
        prefix = f"{name}/"
        with self._space.guard:
            return any(n.startswith(prefix) for n in self._space.files)

    # -- writes ----------------------------------------------------------------

    def _put(self, name: str, data: bytes) -> None:
        """Store ``name`` (the guard is held): a new version, a new time."""
        self._space.files[name] = (bytes(data), next(_versions))
        self._space.modified[name] = time.time()

    def write(self, name: str, data: bytes) -> None:
        _check_name(name, self.url)
        with self._space.guard:
            self._put(name, data)

    def write_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        for name, data in entries:
            self.write(name, data)

    def write_if_absent(self, name: str, data: bytes) -> bool:
        _check_name(name, self.url)
        with self._space.guard:
            if name in self._space.files:
                return False
            self._put(name, data)
            return True

    def write_if_version(self, name: str, data: bytes, version: Version) -> bool:
        _check_name(name, self.url)
        with self._space.guard:
            entry = self._space.files.get(name)
            if entry is None or entry[1] != version:
                return False
            self._put(name, data)
            return True

    def remove(self, names: Iterable[str]) -> builtins.list[str]:
        removed = []
        with self._space.guard:
            for name in names:
                self._space.modified.pop(name, None)
                if self._space.files.pop(name, None) is not None:
                    removed.append(name)
        return removed

    def remove_if_version(self, name: str, version: Version) -> bool:
        with self._space.guard:
            entry = self._space.files.get(name)
            if entry is None or entry[1] != version:
                return False
            del self._space.files[name]
            self._space.modified.pop(name, None)
            return True

    def move(self, source: str, target: str) -> None:
        _check_name(target, self.url)
        with self._space.guard:
            entry = self._space.files.pop(source, None)
            if entry is None:
                raise FileNotFoundError(2, "No such file", f"{self.url}/{source}")
            self._space.files[target] = entry
            self._space.modified[target] = self._space.modified.pop(source, time.time())

    def make_root(self) -> None:
        pass

    # -- the store as a whole ------------------------------------------------------

    def usage(self) -> Iterator[tuple[str, int, int | None]]:
        """Sizes from memory; no disk."""
        with self._space.guard:
            files = sorted(self._space.files.items())
        for name, (data, _) in files:
            if name.partition("/")[0] not in (RESERVED_DIR, ".git"):
                yield name, len(data), None

    def remove_all(self, *, keep_root: bool = False) -> None:
        with self._space.guard:
            self._space.files.clear()

    # -- locking -----------------------------------------------------------------

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        depth, held_exclusive = getattr(self._local, "state", (0, False))
        if depth:
            if exclusive and not held_exclusive:
                raise Error(
                    f"{self.url}: an exclusive lock asked for inside a shared one", self.url
                )
            self._local.state = (depth + 1, held_exclusive)
            return True
        space = self._space
        me = threading.get_ident()
        with space.lock:
            if space.owner is not None and space.owner != (self, me) and space.owner[1] == me:
                raise Error(
                    f"{self.url}: this thread already holds the store's lock through another "
                    "handle; use that handle, or finish its block first",
                    self.url,
                )
            while space.owner is not None or (exclusive and space.shared):
                if not blocking:
                    return False
                space.lock.wait()
            if exclusive:
                space.owner = (self, me)
            else:
                space.shared += 1
        self._local.state = (1, exclusive)
        return True

    def held(self) -> bool:
        return bool(getattr(self._local, "state", (0, False))[0])

    def release(self) -> None:
        depth, exclusive = self._local.state
        if depth > 1:
            self._local.state = (depth - 1, exclusive)
            return
        self._local.state = (0, False)
        space = self._space
        with space.lock:
            if exclusive:
                space.owner = None
            else:
                space.shared -= 1
            space.lock.notify_all()


def forget(url: str) -> None:
    """Drop a memory store entirely (tests use it between runs)."""
    with _spaces_lock:
        _spaces.pop(url, None)



"""A model of what a power cut may leave, in the spirit of ALICE
("All File Systems Are Not Created Equal", OSDI 2014).

:class:`recording.Recording` performs a call's filesystem steps for real
and logs them; :func:`inode_log` turns that log into operations on inodes
and :func:`crash_states` replays them, from the
pre-state, every state the disk may hold after a power cut at any point of
the log, under these rules (POSIX promises no more):

* The pre-state is durable (we start from a synced disk).
* File data persists only through ``fsync`` of that file. Data written and
  not yet fsynced may persist in full, not at all, or cut halfway (an append
  persisted partially): all three are tried.
* A directory entry change (create, rename, unlink, mkdir) persists only
  through ``fsync`` of its directory. Until then each such change may or may
  not have persisted, independently of the others: any subset of them is
  allowed, applied in program order. A rename in particular may persist
  while the data of its file has not, which is exactly why a write must fsync
  the file *before* renaming it; and ``fsync`` of a file does not make its
  name durable, which is why the directory must be fsynced too.
* A directory created by an un-synced mkdir may vanish with all it holds.
* Ops are atomic: a rename never leaves both names or neither (POSIX).

When the subsets are too many (more than 2**8), the extremes and a seeded
random sample are tried; the count of distinct states is reported.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Log = list[tuple[Any, ...]]
_DIR_OPS = ("create", "rename", "unlink", "mkdir")


@dataclass
class Disk:
    """Directories as inode -> {name: inode}, files as inode -> bytes."""

    dirs: dict[int, dict[str, int]] = field(default_factory=dict)
    files: dict[int, bytes] = field(default_factory=dict)
    root: int = 0

    @classmethod
    def scan(cls, base: str) -> tuple[Disk, dict[str, int]]:
        """The disk under ``base`` and a map from relative path to inode."""
        disk = cls()
        paths = {".": 0}
        disk.dirs[0] = {}
        counter = itertools.count(1)
        for top, dirnames, filenames in os.walk(base):
            parent = paths[os.path.relpath(top, base)]
            for name in dirnames:
                ino = next(counter)
                paths[os.path.normpath(os.path.join(os.path.relpath(top, base), name))] = ino
                disk.dirs[parent][name] = ino
                disk.dirs[ino] = {}
            for name in filenames:
                ino = next(counter)
                paths[os.path.normpath(os.path.join(os.path.relpath(top, base), name))] = ino
                disk.dirs[parent][name] = ino
                with open(os.path.join(top, name), "rb") as f:
                    disk.files[ino] = f.read()
        return disk, paths

    def materialize(self, target: str) -> None:
        os.makedirs(target)
        self._fill(self.root, target)

    def _fill(self, ino: int, path: str) -> None:
        for name, child in self.dirs[ino].items():
            sub = os.path.join(path, name)
            if child in self.dirs:
                os.mkdir(sub)
                self._fill(child, sub)
            else:
                with open(sub, "wb") as f:
                    f.write(self.files.get(child, b""))

    def reachable_files(self) -> set[int]:
        out: set[int] = set()
        todo = [self.root]
        while todo:
            for child in self.dirs[todo.pop()].values():
                if child in self.dirs:
                    todo.append(child)
                else:
                    out.add(child)
        return out


def inode_log(calls: list[tuple[Any, ...]], base: str, paths: dict[str, int]) -> Log:
    """The calls a :class:`recording.Recording` made below ``base`` (with
    ``keep_data``) as operations on the inodes of :meth:`Disk.scan`'s ``paths``."""
    paths = dict(paths)
    inodes = itertools.count(max(paths.values()) + 1)
    fds: dict[int, int] = {}
    log: Log = []

    def rel(path: str) -> str:
        return os.path.normpath(os.path.relpath(path, base))

    def where(path: str) -> tuple[int, str]:
        return paths[os.path.dirname(rel(path)) or "."], os.path.basename(rel(path))

    def file_of(fd: int) -> int:
        if fd not in fds:
            raise ValueError(f"fd {fd} was not opened by open_temp: the model cannot follow it")
        return fds[fd]

    for call in calls:
        kind = call[0]
        if kind == "open_temp":
            _, fd, path = call
            fds[fd] = paths[rel(path)] = next(inodes)
            log.append(("create", *where(path), fds[fd]))
        elif kind == "write":
            log.append(("data", file_of(call[1]), call[2]))
        elif kind == "fsync":
            log.append(("fsync", file_of(call[1])))
        elif kind == "close":
            fds.pop(call[1], None)
        elif kind == "rename":
            _, src, dst = call
            ino = paths.pop(rel(src))
            paths[rel(dst)] = ino
            log.append(("rename", *where(src), *where(dst), ino))
        elif kind == "unlink":
            log.append(("unlink", *where(call[1])))
            paths.pop(rel(call[1]), None)
        elif kind == "mkdir":
            ino = paths[rel(call[1])] = next(inodes)
            log.append(("mkdir", *where(call[1]), ino))
        elif kind == "fsync_dir":
            log.append(("fsync_dir", paths[rel(call[1])]))
        elif kind == "syncfs":  # the whole filesystem: every name and byte so far
            log.append(("syncfs",))
        elif kind == "fsync_file":  # a transaction's deferred fsync of an applied file
            ino = paths.get(rel(call[1]))
            if ino is not None:
                log.append(("fsync", ino))
        # chmod changes no byte and no name: not part of the model
    return log


def _dirs_of(entry: tuple[Any, ...]) -> tuple[int, ...]:
    if entry[0] == "rename":
        return (entry[1], entry[3])
    return (entry[1],)


def _apply(disk: Disk, entry: tuple[Any, ...]) -> None:
    kind = entry[0]
    if kind == "create":
        disk.dirs[entry[1]][entry[2]] = entry[3]
    elif kind == "mkdir":
        disk.dirs[entry[1]][entry[2]] = entry[3]
        disk.dirs.setdefault(entry[3], {})
    elif kind == "rename":
        _, sdir, sname, ddir, dname, ino = entry
        if disk.dirs[sdir].get(sname) == ino:
            del disk.dirs[sdir][sname]
        disk.dirs[ddir][dname] = ino
    elif kind == "unlink":
        disk.dirs[entry[1]].pop(entry[2], None)


def _subsets(n: int, rng: random.Random) -> Iterator[tuple[bool, ...]]:
    if n <= 8:
        yield from itertools.product((False, True), repeat=n)
        return
    seen = set()
    picks = [tuple([False] * n), tuple([True] * n)]
    for i in range(n):
        picks.append(tuple(j == i for j in range(n)))
        picks.append(tuple(j != i for j in range(n)))
    picks += [tuple(rng.random() < 0.5 for _ in range(n)) for _ in range(200)]
    for pick in picks:
        if pick not in seen:
            seen.add(pick)
            yield pick


def crash_states(pre: Disk, log: Log, seed: int = 0) -> Iterator[tuple[int, Disk]]:
    """Each (crash point, disk) a power cut may leave; crash point ``len(log)``
    means the call had returned."""
    rng = random.Random(seed)
    for c in range(len(log) + 1):
        prefix = log[:c]
        last_sync: dict[int, int] = {}
        last_syncfs = -1
        for j, entry in enumerate(prefix):
            if entry[0] == "fsync_dir":
                last_sync[entry[1]] = j
            elif entry[0] == "syncfs":
                last_syncfs = j
        durable = [
            e[0] not in _DIR_OPS
            or last_syncfs > j
            or all(last_sync.get(d, -1) > j for d in _dirs_of(e))
            for j, e in enumerate(prefix)
        ]
        optional = [j for j, e in enumerate(prefix) if e[0] in _DIR_OPS and not durable[j]]
        written: dict[int, bytes] = {}
        synced: dict[int, int] = {}
        for entry in prefix:
            if entry[0] == "data":
                written[entry[1]] = written.get(entry[1], b"") + entry[2]
            elif entry[0] == "fsync":
                synced[entry[1]] = len(written.get(entry[1], b""))
            elif entry[0] == "syncfs":
                synced.update((ino, len(data)) for ino, data in written.items())
        for pick in _subsets(len(optional), rng):
            chosen = {j for j, keep in zip(optional, pick, strict=True) if keep}
            disk = Disk({d: dict(e) for d, e in pre.dirs.items()}, dict(pre.files), pre.root)
            for j, entry in enumerate(prefix):
                if entry[0] in _DIR_OPS and (durable[j] or j in chosen):
                    _apply(disk, entry)
            live = disk.reachable_files()
            choices = []
            for ino, data in written.items():
                if ino not in live:
                    continue
                keep = synced.get(ino, 0)
                options = {data[:keep], data[: keep + (len(data) - keep) // 2], data}
                choices.append([(ino, o) for o in sorted(options)])
            for combo in itertools.islice(itertools.product(*choices), 64):
                state = Disk(disk.dirs, dict(disk.files), disk.root)
                state.files.update(dict(combo))
                yield c, state


def _layout(disk: Disk) -> list[tuple[str, int | None]]:
    """(path, file inode or None for a directory) of everything reachable,
    in an order fixed by the content alone: names sorted within each
    directory, directories taken depth first."""
    out: list[tuple[str, int | None]] = []
    dirs = disk.dirs
    todo = [(disk.root, "")]
    while todo:
        ino, prefix = todo.pop()
        for name, child in sorted(dirs[ino].items()):
            path = prefix + "/" + name
            if child in dirs:
                out.append((path, None))
                todo.append((child, path))
            else:
                out.append((path, child))
    return out


class Fingerprints:
    """A disk's visible content, to count distinct states: (path, bytes or
    None for a directory) for each path. The states of one crash point
    share their directories and differ in file contents, so the walk of
    the directories is kept for the next state (it was a third of the
    power-loss suites' time when each state was walked and sorted anew)."""

    def __init__(self) -> None:
        self._dirs: object = None
        self._layout: list[tuple[str, int | None]] = []

    def __call__(self, disk: Disk) -> tuple[Any, ...]:
        if disk.dirs is not self._dirs:
            self._dirs, self._layout = disk.dirs, _layout(disk)
        files = disk.files
        return tuple(
            (path, None if ino is None else files.get(ino, b"")) for path, ino in self._layout
        )


def check_power_cuts(
    base: Path,
    name: str,
    prepare: Callable[[Path], None],
    run: Callable[[Path], None],
    verify: Callable[[Path, bool], list[str]],
    broken: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    per_point: int | None = None,
) -> tuple[int, list[str]]:
    """(distinct crash states checked, violations) for one call.

    ``prepare(store)`` makes the pre-state, ``run(store)`` is recorded (with
    ``broken`` breaking the build meanwhile), then every state a power cut
    may leave is rebuilt in a fresh directory and ``verify(store, done)``
    judges it. ``per_point`` caps the states checked per crash point (a
    sample; None checks all): unsynced renames multiply them.
    """
    from recording import Recording, installed

    work = base / "work"
    store = work / "store"
    work.mkdir(parents=True)
    prepare(store)
    pre, paths = Disk.scan(str(work))
    with installed(Recording(keep_data=True)) as recorder, broken():
        run(store)
    log = inode_log(recorder.calls, str(work), paths)
    seen = set()
    found: list[str] = []
    end = len(log)
    counts: dict[int, int] = {}
    fingerprint = Fingerprints()
    for c, disk in crash_states(pre, log):
        key = (c == end, fingerprint(disk))
        if key in seen:
            continue
        if per_point is not None and c != end and counts.get(c, 0) >= per_point:
            continue
        counts[c] = counts.get(c, 0) + 1
        seen.add(key)
        target = base / f"state-{len(seen)}"
        disk.materialize(str(target))
        where = "after it returned" if c == end else f"after step {c}/{end}"
        found += [f"{name}, power cut {where}: {p}" for p in verify(target / "store", c == end)]
        shutil.rmtree(target)
    return len(seen), found

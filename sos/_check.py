"""``sos.check``: read every file of a store, report what is wrong, repair what is safe.

Never imported by the stores: they stay small and fast, and this module may
take its time. Findings are plain :class:`Problem` values so that the command
line, tests and other programs can all act on them.

Concurrency: a writer holds the store lock while any of its temporary files
exists and while the manifest and item files disagree, so a scan done without
the lock can only see *false* problems, never miss one. A scan that finds
something is therefore done again under the lock before it is reported, and
repair always runs under the lock.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from . import _atomic, _format
from ._errors import CorruptError, Error
from ._lock import StoreLock
from ._order import HEADER, Order, Run, decode_runs, parse_lines, split_id

__all__ = ["LOST_FOUND", "Problem", "check", "split_conflict"]

LOST_FOUND = "lost+found"

# A progress reporter: called with the number of files to read, returns an
# object whose ``update(n)`` is called as they are read (``tqdm(total=n)`` fits).
Progress = Callable[[int], Any]


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`check`.

    ``code`` is one of ``temp-file``, ``orphan-item``, ``invalid-json``,
    ``conflict-markers``, ``bad-shape``, ``misplaced``, ``key-conflict``,
    ``metadata``, ``missing-item``, ``duplicate-entry``, ``bad-manifest``.
    ``action`` is what repair did, or the exact command that resolves it.
    """

    code: str
    path: str
    message: str
    key: str | None = None
    line: int | None = None
    column: int | None = None
    action: str | None = None

    def __str__(self) -> str:
        text = self.message
        if self.action:
            text += f" [{self.action}]"
        return text


def check(
    path: str | os.PathLike[str], repair: bool = False, *, progress: Progress | None = None
) -> list[Problem]:
    """Every problem found in the store at ``path``; with ``repair``, fix the safe ones.

    Foreign files (a README, editor swap files, ``*.orig``) are not problems:
    readers ignore them by design. Raises :class:`Error` if ``path`` is not a
    store at all. ``progress``, if given, is called with the number of files
    to read and returns an object whose ``update(1)`` is called per file
    (``functools.partial(tqdm.tqdm, ...)`` fits); the command line uses it.
    """
    root = os.fspath(path)
    if not os.path.isdir(root):
        raise Error(f"{root}: no such store directory", root)
    if not repair:
        problems = _Scan(root, progress).run()
        if not problems:
            return []
        progress = None  # the second pass, under the lock, is quiet
    lock = StoreLock(root)
    try:
        with lock:
            scan = _Scan(root, progress)
            problems = scan.run()
            if repair:
                problems = scan.repair(problems)
    finally:
        lock.close()
    return problems


# -- git conflict markers --------------------------------------------------------

_OURS = re.compile(rb"<{7}(?: .*)?\Z")
_BASE = re.compile(rb"\|{7}(?: .*)?\Z")
_SEP = re.compile(rb"={7}\Z")
_THEIRS = re.compile(rb">{7}(?: .*)?\Z")


def split_conflict(data: bytes) -> tuple[bytes, bytes] | None:
    """``(ours, theirs)`` of a file git left with conflict markers, or None.

    Handles the default and the ``diff3``/``zdiff3`` styles (the base section
    between ``|||||||`` and ``=======`` is dropped). None if there are no
    markers or they are not well nested.
    """
    ours: list[bytes] = []
    theirs: list[bytes] = []
    state = "common"
    seen = False
    for line in data.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if state == "common" and _OURS.match(bare):
            state, seen = "ours", True
        elif state == "ours" and _BASE.match(bare):
            state = "base"
        elif state in ("ours", "base") and _SEP.match(bare):
            state = "theirs"
        elif state == "theirs" and _THEIRS.match(bare):
            state = "common"
        elif state == "common":
            ours.append(line)
            theirs.append(line)
        elif state == "ours":
            ours.append(line)
        elif state == "theirs":
            theirs.append(line)
    if not seen or state != "common":
        return None
    return b"".join(ours), b"".join(theirs)


def _conflict_runs(data: bytes) -> tuple[list[Run], list[int]] | None:
    """A conflicted manifest's runs: common, ours, then theirs; and bad line numbers."""
    sides = split_conflict(data)
    if sides is None:
        return None
    runs: list[Run] = []
    bad: list[int] = []
    for side in sides:
        side_runs, side_bad = _parse_runs(side)
        runs += side_runs
        bad += side_bad
    # The common lines appear in both sides; keeping each id's first place below
    # drops the second copy. Order: ours (with common), then what theirs adds.
    return runs, bad


def _parse_runs(data: bytes) -> tuple[list[Run], list[int]]:
    """The runs of a manifest, skipping (and returning the numbers of) bad lines."""
    runs: list[Run] = []
    bad: list[int] = []
    for number, _, run in parse_lines(data.decode("ascii", errors="replace")):
        if run is None:
            bad.append(number)
        else:
            runs.append(run)
    return runs, bad


# -- the scan ----------------------------------------------------------------------


@dataclass
class _Doc:
    """A file that holds, or may hold, a document."""

    path: str
    data_name: bool  # named and placed as a data file (else: a candidate to adopt)
    key: str | None = None
    value: Any = None


class _Scan:
    def __init__(self, root: str, progress: Progress | None) -> None:
        self.root = root
        self.progress = progress
        self.kind: str | None = None
        self.temps: list[str] = []
        self.docs: list[_Doc] = []
        self.items: dict[str, str] = {}  # List: item id -> its (well placed, valid) file
        self.order: list[str] | None = None  # List: the ids the manifest names
        self.order_runs: list[Run] = []
        self.manifest_missing = False

    def cmd(self, *args: str) -> str:
        return shlex.join(["sos", *args])

    # -- reading ------------------------------------------------------------------

    def run(self) -> list[Problem]:
        problems = self._metadata()
        self._list_files()
        problems += self._read_documents()
        if self.kind == "list":
            problems += self._manifest()
        problems += [
            Problem("temp-file", p, f"{p}: leftover temporary file (a write was interrupted)")
            for p in self.temps
            if os.path.lexists(p)
        ]
        return problems

    def _metadata(self) -> list[Problem]:
        meta = os.path.join(self.root, _format.METADATA_NAME)
        has_order = os.path.lexists(os.path.join(self.root, _format.ORDER_NAME))
        guess = "list" if has_order else "dict"
        try:
            data = _read(meta)
        except FileNotFoundError:
            if not self._looks_like_store():
                raise Error(
                    f"{self.root}: not a sos store (no {_format.METADATA_NAME})", self.root
                ) from None
            self.kind = guess
            return [
                Problem(
                    "metadata",
                    meta,
                    f"{meta}: the store's metadata file is missing",
                    action=f"repair writes it for a {guess} store",
                )
            ]
        except IsADirectoryError:
            data = b""
        try:
            self.kind = _format.decode_metadata(data, meta)
        except CorruptError as exc:
            self.kind = guess
            return [
                Problem(
                    "metadata",
                    meta,
                    exc.message,
                    line=getattr(exc, "line", None),
                    column=getattr(exc, "column", None),
                    action=f"repair rewrites it for a {guess} store",
                )
            ]
        return []

    def _looks_like_store(self) -> bool:
        for name in os.listdir(self.root):
            if name in _format.SUPPORT_FILES or name == _format.ORDER_NAME:
                return True
            if _format.is_fanout_name(name) and os.path.isdir(os.path.join(self.root, name)):
                return True
        return False

    def _list_files(self) -> None:
        """Find temp files, data files and hand-dropped ``*.json`` candidates."""
        for entry in _scandir(self.root):
            name = entry.name
            if _atomic.is_temp_name(name):
                self.temps.append(entry.path)
            elif _format.is_fanout_name(name) and entry.is_dir(follow_symlinks=False):
                for sub in _scandir(entry.path):
                    if _atomic.is_temp_name(sub.name):
                        self.temps.append(sub.path)
                    elif _format.is_data_name(sub.name):
                        self.docs.append(_Doc(sub.path, sub.name.startswith(name)))
                    elif sub.name.endswith(".json") and sub.is_file(follow_symlinks=False):
                        self.docs.append(_Doc(sub.path, False))
            elif (
                name.endswith(".json")
                and name != _format.METADATA_NAME
                and entry.is_file(follow_symlinks=False)
            ):
                self.docs.append(_Doc(entry.path, False))

    def _read_documents(self) -> list[Problem]:
        problems: list[Problem] = []
        bar = self.progress(len(self.docs)) if self.progress else None
        try:
            for doc in self.docs:
                problem = self._read_document(doc)
                if problem is not None:
                    problems.append(problem)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        return problems

    def _read_document(self, doc: _Doc) -> Problem | None:
        path = doc.path
        try:
            data = _read(path)
        except FileNotFoundError:  # removed while we scan
            doc.data_name = False
            return None
        except IsADirectoryError:
            if not doc.data_name:
                return None
            return Problem("bad-shape", path, f"{path}: is a directory, not a document")
        try:
            key, value = _format.decode_document(data, path)
        except CorruptError as exc:
            if not doc.data_name:
                return None  # a foreign .json file: not ours to judge
            doc.data_name = False
            return self._corrupt(path, data, exc)
        if self.kind == "list" and not _is_item_id(key):
            if not doc.data_name:
                return None
            doc.data_name = False
            return Problem(
                "bad-shape",
                path,
                f"{path}: key {key!r:.80} is not a list item id",
                key=key,
                action=f"move the file out of {self.root}",
            )
        doc.key, doc.value = key, value
        expected = os.path.join(self.root, _format.key_relpath(key))
        if os.path.normpath(path) == os.path.normpath(expected):
            if self.kind == "list":
                self.items[key] = path
            return None
        return self._misplaced(doc, expected)

    def _corrupt(self, path: str, data: bytes, exc: CorruptError) -> Problem:
        sides = split_conflict(data)
        if sides is None:
            code = "bad-shape" if _is_json(data) else "invalid-json"
            return Problem(
                code,
                path,
                exc.message,
                line=exc.line,
                column=exc.column,
                action=f"fix the file by hand ({self._edit_hint(path)})",
            )
        key = None
        for side in sides:
            try:
                key = _format.decode_document(side, path)[0]
                break
            except CorruptError:
                continue
        line = data[: data.find(b"<<<<<<<")].count(b"\n") + 1
        where = f" (key {key!r:.80})" if key is not None else ""
        action = "edit the file by hand and remove the markers"
        if key is not None:
            ref = self._ref(key)
            if ref is not None:
                action = (
                    f"{self.cmd('resolve', self.root, ref, '--ours')} (or --theirs), "
                    f"or {self.cmd('edit', self.root, ref)}"
                )
        return Problem(
            "conflict-markers",
            path,
            f"{path}{where}: git conflict markers at line {line}",
            key=key,
            line=line,
            column=1,
            action=action,
        )

    def _ref(self, key: str) -> str | None:
        """How the command line names ``key``: itself, or a List item's index."""
        if self.kind != "list":
            return key
        order = self._manifest_ids()
        if order is None or key not in order:
            return None
        return str(order.index(key))

    def _edit_hint(self, path: str) -> str:
        return f"$EDITOR {shlex.quote(path)}"

    def _misplaced(self, doc: _Doc, expected: str) -> Problem:
        key = doc.key
        assert key is not None
        path = doc.path
        try:
            target = _read(expected)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            target = None
        if target is not None:
            same = False
            with contextlib.suppress(CorruptError):
                same = _format.decode_document(target, expected) == (key, doc.value)
            if not same:
                return Problem(
                    "key-conflict",
                    path,
                    f"{path}: holds key {key!r:.80}, which already has its own file {expected}",
                    key=key,
                    action=f"compare the two files, keep one value "
                    f"({self._edit_hint(expected)}), then remove {shlex.quote(path)}",
                )
        return Problem(
            "misplaced",
            path,
            f"{path}: holds key {key!r:.80}, which belongs in {expected}",
            key=key,
            action="repair moves it there"
            if target is None
            else "an identical copy is in place; repair removes this one",
        )

    # -- the List manifest ----------------------------------------------------------

    def _manifest_ids(self) -> list[str] | None:
        if self.order is None:
            path = os.path.join(self.root, _format.ORDER_NAME)
            with contextlib.suppress(OSError, CorruptError):
                self.order = Order.decode(_read(path), path).ids()
        return self.order

    def _manifest(self) -> list[Problem]:
        path = os.path.join(self.root, _format.ORDER_NAME)
        problems: list[Problem] = []
        try:
            data = _read(path)
        except (FileNotFoundError, IsADirectoryError):
            self.order_runs = []
            self.order = []
            self.manifest_missing = True
            return [
                Problem(
                    "bad-manifest",
                    path,
                    f"{path}: the list's manifest is missing",
                    action="repair writes one naming every item, in id order",
                )
            ]
        try:
            runs = Order(decode_runs(data, path)).runs  # repeats included
        except CorruptError as exc:
            conflict = _conflict_runs(data)
            if conflict is not None:
                runs, _ = conflict
                problems.append(
                    Problem(
                        "bad-manifest",
                        path,
                        f"{path}: git conflict markers",
                        line=exc.line,
                        column=1,
                        action="repair keeps the runs of both sides (ours first)",
                    )
                )
            else:
                runs, _ = _parse_runs(data)
                problems.append(
                    Problem(
                        "bad-manifest",
                        path,
                        exc.message,
                        line=exc.line,
                        column=exc.column,
                        action="repair drops the lines that are not runs",
                    )
                )
        self.order_runs = runs
        ids = list(Order(runs))
        self.order = ids
        seen: set[str] = set()
        dupes: list[str] = []
        missing: list[str] = []
        for item_id in ids:
            if item_id in seen:
                dupes.append(item_id)
                continue
            seen.add(item_id)
            if item_id not in self.items and not os.path.exists(self._item_path(item_id)):
                missing.append(item_id)
        for run in Order.from_ids(dupes).runs:
            problems.append(
                Problem(
                    "duplicate-entry",
                    path,
                    f"{path}: names {_describe(run)} more than once",
                    key=f"{run.prefix}-{run.first}",
                    action="repair keeps the first",
                )
            )
        for run in Order.from_ids(missing).runs:
            problems.append(
                Problem(
                    "missing-item",
                    path,
                    f"{path}: names {_describe(run)}, but no file holds it",
                    key=f"{run.prefix}-{run.first}",
                    action="repair drops the entry",
                )
            )
        for item_id, item_path in sorted(self.items.items()):
            if item_id not in seen:
                problems.append(
                    Problem(
                        "orphan-item",
                        item_path,
                        f"{item_path}: item {item_id} is not in the list's manifest",
                        key=item_id,
                        action=f"repair moves it to {LOST_FOUND}/",
                    )
                )
        return problems

    def _item_path(self, item_id: str) -> str:
        return os.path.join(self.root, _format.key_relpath(item_id))

    # -- repair -------------------------------------------------------------------

    def repair(self, problems: list[Problem]) -> list[Problem]:
        """Fix what is safe (the lock is held); return the findings with what was done."""
        done: list[Problem] = []
        by_path = {doc.path: doc for doc in self.docs}
        moved_items: set[str] = set()
        for p in problems:
            if p.code == "misplaced":
                doc = by_path[p.path]
                target = os.path.join(self.root, _format.key_relpath(p.key or ""))
                if os.path.lexists(target):
                    _atomic.remove_files([p.path])
                    done.append(replace(p, action=f"removed: {target} holds the same document"))
                else:
                    _atomic.write_file(target, _read(p.path))
                    _atomic.remove_files([p.path])
                    done.append(replace(p, action=f"moved to {target}"))
                if self.kind == "list" and doc.key is not None:
                    self.items[doc.key] = target
                    moved_items.add(doc.key)
            elif p.code == "temp-file":
                _atomic.remove_files([p.path])
                done.append(replace(p, action="removed (no writer holds the store lock)"))
            elif p.code == "metadata":
                meta = os.path.join(self.root, _format.METADATA_NAME)
                _atomic.write_file(meta, _format.encode_metadata(self.kind or "dict"))
                done.append(replace(p, action=f"wrote {meta} for a {self.kind} store"))
            elif p.code in ("orphan-item", "missing-item", "duplicate-entry", "bad-manifest"):
                continue  # settled together below
            else:
                done.append(p)
        if self.kind == "list":
            done += self._repair_list(problems, moved_items)
        return done

    def _repair_list(self, problems: list[Problem], moved: set[str]) -> list[Problem]:
        codes = {p.code for p in problems}
        if not codes & {"orphan-item", "missing-item", "duplicate-entry", "bad-manifest"}:
            return []
        path = os.path.join(self.root, _format.ORDER_NAME)
        manifest_missing = self.manifest_missing
        if manifest_missing:
            ids = sorted(self.items, key=split_id)
        else:
            ids = []
            seen: set[str] = set()
            for item_id in Order(self.order_runs):
                if item_id in seen:
                    continue
                # A damaged item file is still the user's item: keep naming it.
                if item_id not in self.items and not os.path.lexists(self._item_path(item_id)):
                    continue
                seen.add(item_id)
                ids.append(item_id)
        new = Order.from_ids(ids)
        _atomic.write_file(path, new.encode() if ids else HEADER)
        done: list[Problem] = []
        kept = set(ids)
        orphans = [(i, p) for i, p in sorted(self.items.items()) if i not in kept]
        if orphans:
            lost = os.path.join(self.root, LOST_FOUND)
            _atomic.make_dirs(lost)
        for p in problems:
            if p.code == "orphan-item":
                if p.key in kept:
                    done.append(replace(p, action="named in the rewritten manifest"))
                    continue
                item_path = self.items.get(p.key or "", p.path)
                dest = os.path.join(self.root, LOST_FOUND, os.path.basename(item_path))
                _atomic.write_file(dest, _read(item_path))
                _atomic.remove_files([item_path])
                done.append(
                    replace(
                        p,
                        action=f"moved to {dest}; to bring it back: "
                        f"{self.cmd('adopt', self.root, dest)}",
                    )
                )
            elif p.code == "bad-manifest" and manifest_missing:
                done.append(replace(p, action=f"wrote {path} naming {len(ids)} items in id order"))
            elif p.code == "bad-manifest":
                done.append(replace(p, action=f"rewrote {path} with every valid run kept"))
            elif p.code == "missing-item" and p.key in moved:
                done.append(replace(p, action="found: its file was moved into place"))
            elif p.code == "missing-item":
                done.append(replace(p, action="dropped from the manifest"))
            elif p.code == "duplicate-entry":
                done.append(replace(p, action="kept the first, dropped the rest"))
        return done


def _describe(run: Run) -> str:
    if run.size == 1:
        return f"item {run.prefix}-{run.first}"
    return f"items {run.prefix}-{run.first} to {run.prefix}-{run.last}"


def _is_json(data: bytes) -> bool:
    """True if ``data`` parses as strict JSON (so a bad document is a wrong shape)."""
    try:
        _format.parse_json(data, "")
    except CorruptError:
        return False
    return True


def _is_item_id(key: str) -> bool:
    try:
        split_id(key)
    except ValueError:
        return False
    return True


def _read(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.readall()


def _scandir(path: str) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            yield from sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return

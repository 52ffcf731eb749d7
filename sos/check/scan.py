"""``sos.check``: read every file of a store, report what is wrong, repair what is safe.

Never imported by the stores: they stay small and fast, and this module may
take its time. Findings are plain :class:`Problem` values whose ``code`` is a
:class:`Code` that knows whether repair fixes it, so that the command line,
tests and other programs can all act on them.

Two separate steps: :class:`_Scan` reads and reports, :class:`_Repair` acts,
one handler per code. Both reach the files only through the store's
:class:`sos.storage.base.Storage` (``list``, ``is_dir``, ``read``, ``write``,
``remove``, ``lock``), on store-relative names, so ``sos check`` works on any
storage ``open_storage`` knows (a directory, ``memory://``, object storage).

Concurrency: a writer holds the store lock while any of its temporary files
exists and while the manifest and item files disagree, so a scan done without
the lock can only see *false* problems, never miss one. A scan that finds
something is therefore done again under the lock before it is reported, and
repair always runs under the lock.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Callable

from sos import format as _format
from sos import git as _git
from sos import txn as _txn
from sos.check.files import _Doc, _Files, _Manifest
from sos.check.manifest import ManifestScan
from sos.check.problems import Code, Problem, Progress
from sos.check.runs import _is_item_id, _pending
from sos.errors import CorruptError, Error
from sos.format.names import LOST_FOUND
from sos.format.order import (
    Order,
)
from sos.storage import pool as _pool
from sos.storage.fileops import is_temp_name

# The order of the List items repair moved there, as a manifest (sos adopt reads it).
LOST_FOUND_RECORD = f"{LOST_FOUND}/{_format.ORDER_NAME}"


class _Scan(ManifestScan):
    """Reads every file once and reports; changes nothing."""

    def __init__(self, files: _Files, progress: Progress | None, repair: bool = False) -> None:
        self.files = files
        # Directory markers are looked for only to remove them: readers ignore
        # them, so a plain check calls a store that has some clean.
        self.find_markers = repair
        self.markers: dict[str, str] = {}  # a marker's path -> its directory
        self.root = files.url
        self.progress = progress
        self.kind: str | None = None
        self.temps: list[str] = []
        self.strays: list[str] = []  # fan-out names that are not real directories
        self.docs: list[_Doc] = []
        self.items: dict[str, str] = {}  # List: item id -> its (well placed, valid) file name
        self.order: Order | None = None  # List: the order the manifest names
        self.manifest = _Manifest()
        self.unmerged: dict[str, _git.Unmerged] = {}
        self.names: dict[str, str] = {}  # what messages call a file -> its name

    def cmd(self, *args: str) -> str:
        return shlex.join(["sos", *args])

    def where(self, name: str) -> str:
        path = self.files.where(name)
        self.names[path] = name
        return path

    # -- reading ------------------------------------------------------------------

    def run(self) -> list[Problem]:
        problems = self._metadata()
        if self.kind == "list":
            self._read_manifest_first()
        self._list_files()
        problems += self._read_documents()
        if self.kind == "list":
            problems += self._manifest()
        problems += self._unmerged(problems)
        if _txn.pending(self.files.storage):
            problems.append(_pending(self.files))
        problems += [
            Problem(
                Code.NOT_A_DIRECTORY,
                self.where(n),
                f"{self.where(n)}: is not a directory (a symbolic link, a file or a "
                "special file where a fan-out directory belongs); sos never reads or "
                "writes through it: remove or replace it by hand",
            )
            for n in self.strays
        ]
        problems += [
            Problem(
                Code.DIRECTORY_MARKER,
                path,
                f"{path}: an empty directory-marker object (S3 tools and SeaweedFS leave "
                "them); readers ignore it",
                action="repair removes it",
            )
            for path in self.markers
        ]
        problems += [
            Problem(
                Code.TEMP_FILE,
                self.where(n),
                f"{self.where(n)}: "
                + (
                    "part of a transaction record never committed (its writer was interrupted)"
                    if n.endswith(_txn.PART_SUFFIX)
                    else "leftover temporary file (a write was interrupted)"
                ),
            )
            for n in self.temps
            if self.files.exists(n)
        ]
        return problems

    def _metadata(self) -> list[Problem]:
        name = _format.METADATA_NAME
        meta = self.where(name)
        guess = "list" if self.files.exists(_format.ORDER_NAME) else "dict"
        try:
            data = self.files.read(name)
        except FileNotFoundError:
            if not self._looks_like_store():
                raise Error(f"{self.root}: not a sos store (no {name})", self.root) from None
            self.kind = guess
            return [
                Problem(
                    Code.METADATA,
                    meta,
                    f"{meta}: the store's metadata file is missing",
                    action=f"repair writes it for a {guess} store",
                )
            ]
        except CorruptError:
            data = b""
        try:
            self.kind = _format.decode_metadata(data, meta)
        except CorruptError as exc:
            self.kind = guess
            return [
                Problem(
                    Code.METADATA,
                    meta,
                    exc.message,
                    line=exc.line,
                    column=exc.column,
                    action=f"repair rewrites it for a {guess} store",
                )
            ]
        return []

    def _looks_like_store(self) -> bool:
        for name in self.files.list():
            if name in _format.SUPPORT_FILES or name == _format.ORDER_NAME:
                return True
            if _format.is_fanout_name(name) and self.files.is_dir(name):
                return True
        return False

    def _list_files(self) -> None:
        """Find temp files, data files and every other ``*.json`` file (each
        is a finding: a misplaced document, or one a person must look at),
        and what a crash left in the reserved ``.sos/`` (:meth:`_reserved`).
        """
        self._marker("")
        self._reserved()
        names = sorted(self.files.list())
        # Each fan-out directory's look-ups, through the storage's pool (in order).
        fanouts = _pool.ordered(
            self._fanout,
            [n for n in names if _format.is_fanout_name(n) and not is_temp_name(n)],
            self.files.storage.parallelism(),
        )
        for name in names:
            if is_temp_name(name):
                self.temps.append(name)
            elif _format.is_fanout_name(name):
                is_dir, marker, subs = next(fanouts)
                if not is_dir:
                    self.strays.append(name)  # a symlink, a file, a FIFO: never followed
                    continue
                if marker == 0:
                    self.markers[self.files.where(name).rstrip("/") + "/"] = name
                for sub in subs:
                    rel = f"{name}/{sub}"
                    if is_temp_name(sub):
                        self.temps.append(rel)
                    elif _format.is_data_file(name, sub):
                        self.docs.append(_Doc(rel, True))
                    elif _is_json_name(sub) and not self.files.is_dir(rel):
                        self.docs.append(_Doc(rel, False))
            elif (
                _is_json_name(name)
                and not _format.is_reserved_json(name)
                and not self.files.is_dir(name)
            ):
                self.docs.append(_Doc(name, False))

    def _reserved(self) -> None:
        """What a crash left in ``.sos/`` (:func:`sos.txn.crash_leftovers`),
        which nothing else would report. It counts as temp files: a writer
        holds the store lock while its own exist, so one found without the
        lock is looked for again under it, and repair (under the lock)
        removes it."""
        self.temps += _txn.crash_leftovers(self.files.storage)

    def _fanout(self, name: str) -> tuple[bool, int | None, list[str]]:
        """A fan-out name's (is a directory, its marker's size, its sorted entries)."""
        found = self.files.list_directory(name)  # one LIST on object storage
        if found is None:
            return False, None, []
        entries, marker = found
        return True, marker if self.find_markers else None, sorted(entries)

    def _marker(self, directory: str) -> None:
        if self.find_markers and self.files.marker(directory) == 0:
            self.markers[self.files.where(directory).rstrip("/") + "/"] = directory

    def _read_documents(self) -> list[Problem]:
        problems: list[Problem] = []
        bar = self.progress(len(self.docs)) if self.progress else None
        try:
            reads = self.files.read_ahead(doc.name for doc in self.docs)
            for doc, read in zip(self.docs, reads, strict=True):
                problem = self._read_document(doc, read)
                if problem is not None:
                    problems.append(problem)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        return problems

    def _read_document(self, doc: _Doc, read: Callable[[], bytes]) -> Problem | None:
        # What a message calls the file is worked out only for a finding: on
        # a clean store that path join was a fifth of the scan's time.
        try:
            data = read()
        except FileNotFoundError:  # removed while we scan
            doc.data_name = False
            return None
        except CorruptError as exc:  # a directory, a FIFO, a symlink
            path = self.where(doc.name)
            if not doc.data_name:
                return self._foreign(path, "is not a regular file")
            doc.data_name = False
            return Problem(Code.BAD_SHAPE, path, exc.message)
        try:
            key, value = _format.decode_document(data, doc.name)
        except CorruptError:
            return self._undecodable(doc, data)
        if self.kind == "list" and not _is_item_id(key):
            path = self.where(doc.name)
            if not doc.data_name:
                return self._foreign(path, f"holds key {key!r:.80}, which is not a list item id")
            doc.data_name = False
            return Problem(
                Code.BAD_SHAPE,
                path,
                f"{path}: key {key!r:.80} is not a list item id",
                key=key,
                action=f"move the file out of {self.root}",
            )
        doc.key, doc.value = key, value
        expected = _format.key_relpath(key)
        if doc.name == expected:
            if self.kind == "list":
                self.items[key] = doc.name
            return None
        return self._misplaced(doc, expected)

    def _undecodable(self, doc: _Doc, data: bytes) -> Problem:
        path = self.where(doc.name)
        try:  # again, for a message that names the file as the user knows it
            _format.decode_document(data, path)
        except CorruptError as exc:
            if not doc.data_name and _is_json(data):
                return self._foreign(path, "is JSON but not a sos document")
            doc.data_name = False
            return self._corrupt(path, data, exc)
        raise AssertionError(f"{path}: decoded on the second try")  # pragma: no cover

    def _foreign(self, path: str, what: str) -> Problem:
        """A ``*.json`` file that is not a document of this store: left where
        it is (it may be someone's), and reported, since it looks like data."""
        return Problem(
            Code.FOREIGN_FILE,
            path,
            f"{path}: {what}; readers never see it",
            action=f"look at it, then move it out of {self.root} "
            '(or make it a document: {"key": ..., "value": ...})',
        )

    def _corrupt(self, path: str, data: bytes, exc: CorruptError) -> Problem:
        line = _format.conflict_line(data)
        if line is None:
            code = Code.BAD_SHAPE if _is_json(data) else Code.INVALID_JSON
            return Problem(
                code,
                path,
                exc.message,
                line=exc.line,
                column=exc.column,
                action=f"fix the file by hand ({self._edit_hint(path)})",
            )
        sides = _format.split_conflict(data)
        key = None
        for side in sides or ():
            try:
                key = _format.decode_document(side, path)[0]
                break
            except CorruptError:
                continue
        where = f" (key {key!r:.80})" if key is not None else ""
        action = "edit the file by hand and remove the markers"
        if key is not None:
            ref = self._ref(key)
            if ref is not None:
                action = (
                    f"{self.cmd('resolve', self.root, ref, '--ours')} (or --theirs), "
                    f"or {self.cmd('edit', self.root, ref)}"
                )
        nested = "" if sides is not None else " (not well nested)"
        return Problem(
            Code.CONFLICT_MARKERS,
            path,
            f"{path}{where}: git conflict markers at line {line}{nested}",
            key=key,
            line=line,
            column=1,
            action=action,
        )

    def _ref(self, key: str) -> str | None:
        """How the command line names ``key``: itself (JSON-quoted where ``sos keys``
        quotes it), or a List item's index."""
        if self.kind != "list":
            return json.dumps(key, ensure_ascii=False) if _quoted(key) else key
        order = self._manifest_order()
        index = None if order is None else order.index_of(key)
        return None if index is None else str(index)

    def _edit_hint(self, path: str) -> str:
        return f"$EDITOR {shlex.quote(path)}"

    def _misplaced(self, doc: _Doc, expected: str) -> Problem:
        key = doc.key
        assert key is not None
        path = self.where(doc.name)
        target_path = self.where(expected)
        try:
            target: bytes | None = self.files.read(expected)
        except (FileNotFoundError, CorruptError):
            target = None
        if target is not None:
            same = False
            with contextlib.suppress(CorruptError):
                same = _format.decode_document(target, target_path) == (key, doc.value)
            if not same:
                return Problem(
                    Code.KEY_CONFLICT,
                    path,
                    f"{path}: holds key {key!r:.80}, which already has its own file {target_path}",
                    key=key,
                    action=f"compare the two files, keep one value "
                    f"({self._edit_hint(target_path)}), then remove {shlex.quote(path)}",
                )
        return Problem(
            Code.MISPLACED,
            path,
            f"{path}: holds key {key!r:.80}, which belongs in {target_path}",
            key=key,
            action="repair moves it there"
            if target is None
            else "an identical copy is in place; repair removes this one",
        )

    # -- git -----------------------------------------------------------------------

    def _unmerged(self, found: list[Problem]) -> list[Problem]:
        """Every path git lists as unmerged that no finding already names."""
        if not self.files.local:  # git holds local files only
            return []
        self.unmerged = _git.unmerged(self.root)
        named = {p.path for p in found}  # conflict markers, a conflicted manifest: said already
        problems = []
        for name, entry in self.unmerged.items():
            path = self.where(name)
            if path in named:
                continue
            key = self._key_of_unmerged(name)
            where = f" (key {key!r:.80})" if key is not None else ""
            ref = self._ref(key) if key is not None else None
            if ref is not None:
                action = f"{self.cmd('resolve', self.root, ref, '--ours')} (or --theirs)"
            else:
                action = (
                    f"keep one side (git checkout --ours/--theirs -- {shlex.quote(path)}, "
                    "or git rm), then git add it"
                )
            problems.append(
                Problem(
                    Code.UNMERGED,
                    path,
                    f"{path}{where}: git lists it unmerged ({entry.state})",
                    key=key,
                    action=action,
                )
            )
        return problems

    def _key_of_unmerged(self, name: str) -> str | None:
        if not _format.is_data_path(name):
            return None
        sides = [self._read_or_none(name)]
        sides += [_git.side_bytes(self.root, name, s) for s in (_git.OURS, _git.THEIRS)]
        for data in sides:
            if data is None:
                continue
            with contextlib.suppress(CorruptError):
                return _format.decode_document(data, name)[0]
        return None

    def _read_or_none(self, name: str) -> bytes | None:
        try:
            return self.files.read(name)
        except (OSError, CorruptError):
            return None


def _is_json(data: bytes) -> bool:
    """True if ``data`` parses as strict JSON (so a bad document is a wrong shape)."""
    try:
        _format.parse_json(data, "")
    except CorruptError:
        return False
    return True


def _is_json_name(name: str) -> bool:
    """A name that says "JSON" (any case: ``.JSON`` from another system too)."""
    return name.lower().endswith(_format.DATA_SUFFIX)


def _quoted(key: str) -> bool:
    """True where the command line prints and takes ``key`` as a JSON string."""
    return key.startswith('"') or not key.isprintable()

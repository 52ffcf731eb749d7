"""``sos.check``: read every file of a store, report what is wrong, repair what is safe.

Never imported by the stores: they stay small and fast, and this module may
take its time. Findings are plain :class:`Problem` values whose ``code`` is a
:class:`Code` that knows whether repair fixes it, so that the command line,
tests and other programs can all act on them.

Two separate steps: :class:`_Scan` reads and reports, :class:`_Repair` acts,
one handler per code. Both reach the files only through the store's
:class:`sos._storage.Storage` (``list``, ``is_dir``, ``read``, ``write``,
``remove``, ``lock``), on store-relative names, so ``sos check`` works on any
storage ``open_storage`` knows (a directory, ``memory://``, object storage).

Concurrency: a writer holds the store lock while any of its temporary files
exists and while the manifest and item files disagree, so a scan done without
the lock can only see *false* problems, never miss one. A scan that finds
something is therefore done again under the lock before it is reported, and
repair always runs under the lock.
"""

from __future__ import annotations

import builtins
import contextlib
import enum
import json
import os
import posixpath
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from . import _atomic, _format, _git, _txn
from ._errors import CorruptError, Error
from ._order import (
    HEADER,
    Order,
    Run,
    decode_runs,
    guess_order,
    parse_lines,
    repeated,
    split_id,
)
from ._storage import open_storage, scheme_of

__all__ = [
    "LOST_FOUND",
    "LOST_FOUND_RECORD",
    "Code",
    "Problem",
    "check",
    "iter_readable",
    "split_conflict",
]

LOST_FOUND = "lost+found"
# The order of the List items repair moved there, as a manifest (sos adopt reads it).
LOST_FOUND_RECORD = f"{LOST_FOUND}/{_format.ORDER_NAME}"

# A progress reporter: called with the number of files to read, returns an
# object whose ``update(n)`` is called as they are read (``tqdm(total=n)`` fits).
Progress = Callable[[int], Any]

split_conflict = _format.split_conflict  # kept here too: older callers import it from check


class Code(str, enum.Enum):
    """What a :class:`Problem` is. A ``str``, so ``problem.code == "temp-file"`` works.

    ``repairable``: ``check(repair=True)`` fixes it; otherwise it needs a
    person (repair never guesses which bytes of a value are right).
    """

    TEMP_FILE = "temp-file", True
    MISPLACED = "misplaced", True
    METADATA = "metadata", True
    ORPHAN_ITEM = "orphan-item", True
    MISSING_ITEM = "missing-item", True
    DUPLICATE_ENTRY = "duplicate-entry", True
    BAD_MANIFEST = "bad-manifest", True
    PENDING_TRANSACTION = "pending-transaction", True
    DIRECTORY_MARKER = "directory-marker", True
    INVALID_JSON = "invalid-json", False
    FOREIGN_FILE = "foreign-file", False
    CONFLICT_MARKERS = "conflict-markers", False
    BAD_SHAPE = "bad-shape", False
    KEY_CONFLICT = "key-conflict", False
    UNMERGED = "unmerged", False
    NOT_A_DIRECTORY = "not-a-directory", False

    repairable: bool

    def __new__(cls, value: str, repairable: bool) -> Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.repairable = repairable
        return member

    def __str__(self) -> str:  # the code itself, on every Python (3.11 changed the default)
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @property
    def settles_the_manifest(self) -> bool:
        """Repaired together, by one rewrite of a List's ``order.txt``."""
        return self in _MANIFEST_CODES


_BY_VALUE: dict[str, Code] = {code.value: code for code in Code}
_MANIFEST_CODES = frozenset(
    {Code.ORPHAN_ITEM, Code.MISSING_ITEM, Code.DUPLICATE_ENTRY, Code.BAD_MANIFEST}
)


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`check`.

    ``code`` is a :class:`Code` (a ``str``: ``temp-file``, ``orphan-item``,
    ``invalid-json``, ``foreign-file``, ``conflict-markers``, ``bad-shape``,
    ``misplaced``, ``key-conflict``, ``metadata``, ``missing-item``,
    ``duplicate-entry``, ``bad-manifest``, ``unmerged``, ``not-a-directory``,
    ``directory-marker``, ``pending-transaction``); ``code.repairable`` says
    whether repair fixes it. ``action`` is what repair did, or the exact command that resolves it.
    """

    code: Code
    path: str
    message: str
    key: str | None = None
    line: int | None = None
    column: int | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        code = _BY_VALUE.get(self.code)
        if code is None:
            raise ValueError(f"{self.code!r} is not a sos.check problem code")
        object.__setattr__(self, "code", code)

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
    readers ignore them by design. A ``*.json`` file at the top or in a
    fan-out directory is one, though, whatever it holds (``invalid-json``,
    ``foreign-file`` or ``misplaced``): it looks like data, so it is never
    passed over in silence. Raises :class:`Error` if ``path`` is not a
    store at all. ``progress``, if given, is called with the number of files
    to read and returns an object whose ``update(1)`` is called per file
    (``functools.partial(tqdm.tqdm, ...)`` fits); the command line uses it.
    Inside a git work tree, every path git lists as unmerged is reported
    (``unmerged``), also when no file shows conflict markers (a modify/delete
    conflict).

    A repair that cannot write what it means to (a full disk, a quota, the
    object store refusing) does not end the others; then :class:`Error` is
    raised, naming each repair not done and what is left to do, and its
    ``problems`` holds every finding with what was done to it.
    """
    files = _open_files(path)
    try:
        if not repair:
            problems = _Scan(files, progress).run()
            if not problems:
                return []
            progress = None  # the second pass, under the lock, is quiet
        with files.lock():
            finished: list[Problem] = []
            if repair and _txn.pending(files.storage):
                # Roll the committed transaction forward first: it changes files.
                pending = _pending(files)
                finished = [replace(pending, action="finished: rolled forward")]
                try:
                    _txn.recover(files.storage)
                except (OSError, Error) as exc:
                    failed = _not_done(pending, exc)
                    raise RepairFailed.of(files.url, [failed], [failed]) from exc
            scan = _Scan(files, progress, repair)
            problems = scan.run()
            if repair:
                problems = finished + _Repair(scan).run(problems)
    finally:
        files.close()
    return problems


def iter_readable(
    path: str | os.PathLike[str],
    on_error: Callable[[Error], None],
    store: Any = None,
) -> Iterator[tuple[str | int, Any]]:
    """Every readable ``(key, value)`` of a store (a List: ``(index, value)``),
    going past damaged files: each one is passed to ``on_error`` instead of
    ending the iteration.

    For tools that must salvage what they can (``sos keys`` and ``sos dump``
    during a git conflict); the stores themselves raise at the first damaged
    file, so that no program mistakes a damaged store for a smaller one. A
    Dict's keys come sorted; a List's indexes are those of its manifest (a
    damaged item keeps its index, so the indexes printed are those ``sos get``
    takes). Raises :class:`Error` if ``path`` is not a store. ``store``, an
    open handle of the same store, is read through where it can be (inside
    its ``reading()`` block, say).
    """
    from ._dict import Dict
    from ._list import List
    from ._store import read_kind

    kind = read_kind(path)
    if kind is None:
        raise Error(f"{os.fspath(path)}: not a sos store (no {_format.METADATA_NAME})", path)
    if kind == "list":
        own = not isinstance(store, List)
        with List(path, create=False) if own else contextlib.nullcontext(store) as lst:
            try:
                length = len(lst)
            except Error as exc:
                on_error(exc)
                return
            for index in range(length):
                try:
                    value = lst[index]
                except IndexError:  # shortened meanwhile
                    return
                except Error as exc:
                    on_error(exc)
                    continue
                yield index, value
        return
    Dict(path, create=False).close()  # the same refusal of a non-store as the stores
    files = _open_files(path)
    try:
        pairs = []
        for name in _data_names(files):
            try:
                key, value = _format.decode_document(files.read(name), files.where(name))
                _format.check_document_name(key, files.where(name), posixpath.basename(name))
            except FileNotFoundError:
                continue
            except Error as exc:
                on_error(exc)
                continue
            except OSError as exc:
                on_error(Error(f"{files.where(name)}: {exc.strerror}", files.where(name)))
                continue
            pairs.append((key, value))
    finally:
        files.close()
    yield from sorted(pairs, key=lambda pair: pair[0])


# -- the files, by store-relative name ------------------------------------------------


class _Files:
    """A store's :class:`~sos._storage.Storage`, plus the one thing check adds:
    how a message names a file (the path as the user typed it, or the URL)."""

    def __init__(self, path: str) -> None:
        self.url = path
        self.storage = open_storage(path)
        self.local = scheme_of(path) is None

    def where(self, name: str) -> str:
        if not name:
            return self.url
        if self.local:
            return os.path.join(self.url, *name.split("/"))
        return f"{self.url.rstrip('/')}/{name}"

    def list(self, directory: str = "") -> builtins.list[str]:
        return self.storage.list(directory)

    def is_dir(self, name: str) -> bool:
        return self.storage.is_dir(name)

    def exists(self, name: str) -> bool:
        try:
            return self.storage.exists(name)
        except CorruptError:  # below a symlinked directory: there, but not a file
            return True

    def read(self, name: str) -> bytes:
        return self.storage.read(name)

    def write(self, name: str, data: bytes) -> None:
        self.storage.write(name, data)

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
        return float(getattr(self.storage, "orphan_grace", 0.0))

    def age(self, name: str) -> float | None:
        """Seconds since ``name`` was written, on the storage's own clock, if it can say."""
        age_of = getattr(self.storage, "age", None)
        if age_of is None:
            return None
        age = age_of(name)
        return None if age is None else float(age)

    def marker(self, directory: str) -> int | None:
        """The size of ``directory``'s directory-marker object, on object storage."""
        marker_of = getattr(self.storage, "marker", None)
        size = None if marker_of is None else marker_of(directory)
        return None if size is None else int(size)

    def remove_marker(self, directory: str) -> bool:
        return bool(self.storage.remove_marker(directory))  # type: ignore[attr-defined]

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return self.storage.lock(exclusive=True)

    def close(self) -> None:
        self.storage.close()


def _open_files(path: str | os.PathLike[str]) -> _Files:
    root = os.fspath(path)
    if scheme_of(root) is None and not os.path.isdir(root):
        raise Error(f"{root}: no such store directory", root)
    return _Files(root)


def _data_names(files: _Files) -> list[str]:
    """Every well-placed data file name of a store, sorted."""
    names = []
    for top in sorted(files.list()):
        if _format.is_fanout_name(top) and files.is_dir(top):
            names += [f"{top}/{n}" for n in sorted(files.list(top)) if _format.is_data_file(top, n)]
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


# How a rebuilt manifest orders the items no readable line names.
_GUESS = (
    "by number within each writer's id prefix, the prefixes by their items' "
    "earliest modification time (the order across prefixes is a best guess)"
)


class _Scan:
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
                f"{self.where(n)}: leftover temporary file (a write was interrupted)",
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
        is a finding: a misplaced document, or one a person must look at).

        The reserved ``.sos/`` name space is the transaction module's: check
        reports only a pending record there (see :func:`check`), never the
        temp or part files a crash may leave (recovery owns them).
        """
        self._marker("")
        for name in sorted(self.files.list()):
            if _atomic.is_temp_name(name):
                self.temps.append(name)
            elif _format.is_fanout_name(name) and not self.files.is_dir(name):
                self.strays.append(name)  # a symlink, a file, a FIFO: never followed
            elif _format.is_fanout_name(name):
                self._marker(name)
                for sub in sorted(self.files.list(name)):
                    rel = f"{name}/{sub}"
                    if _atomic.is_temp_name(sub):
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

    def _marker(self, directory: str) -> None:
        if self.find_markers and self.files.marker(directory) == 0:
            self.markers[self.files.where(directory).rstrip("/") + "/"] = directory

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
        path = self.where(doc.name)
        try:
            data = self.files.read(doc.name)
        except FileNotFoundError:  # removed while we scan
            doc.data_name = False
            return None
        except CorruptError as exc:  # a directory, a FIFO, a symlink
            if not doc.data_name:
                return self._foreign(path, "is not a regular file")
            doc.data_name = False
            return Problem(Code.BAD_SHAPE, path, exc.message)
        try:
            key, value = _format.decode_document(data, path)
        except CorruptError as exc:
            if not doc.data_name and _is_json(data):
                return self._foreign(path, "is JSON but not a sos document")
            doc.data_name = False
            return self._corrupt(path, data, exc)
        if self.kind == "list" and not _is_item_id(key):
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

    # -- the List manifest ----------------------------------------------------------

    def _manifest_order(self) -> Order | None:
        if self.order is None:
            name = _format.ORDER_NAME
            with contextlib.suppress(OSError, CorruptError):
                self.order = Order.decode(self.files.read(name), self.where(name))
        return self.order

    def _manifest(self) -> list[Problem]:
        path = self.where(_format.ORDER_NAME)
        problems: list[Problem] = []
        try:
            data = self.files.read(_format.ORDER_NAME)
        except (FileNotFoundError, CorruptError):
            self.manifest = _Manifest([], rebuild=True)
            self.order = Order()
            return [
                Problem(
                    Code.BAD_MANIFEST,
                    path,
                    f"{path}: the list's manifest is missing",
                    action=f"repair rebuilds it from the {len(self.items)} item files, {_GUESS}",
                )
            ]
        rebuild = False
        try:
            runs = Order(decode_runs(data, path)).runs  # repeats included
        except CorruptError as exc:
            conflict = _conflict_runs(data)
            if conflict is not None:
                runs, _ = conflict
                problems.append(
                    Problem(
                        Code.BAD_MANIFEST,
                        path,
                        f"{path}: git conflict markers",
                        line=exc.line,
                        column=1,
                        action="repair keeps the runs of both sides (ours first)",
                    )
                )
            else:  # empty, cut short, not text: rebuilt, as a missing one is
                runs, rebuild = _readable_runs(data), True
                problems.append(self._damaged(path, exc.message, exc.line, exc.column, runs))
        # Arithmetic on runs, never a list of ids: a 40-byte line may name a
        # billion of them (docs/faults.md).
        order = Order.unique(runs)
        missing = _missing_runs(order, self.items, self.files)
        if not rebuild and not data.endswith(b"\n") and (missing or self.unnamed(order)):
            # Every writer ends the manifest with a newline: without one, and
            # with items it does not account for, it was cut short mid-line,
            # and the cut line may name the wrong ids.
            runs, rebuild = _readable_runs(data), True
            line = data.count(b"\n") + 1
            message = f"{path}: line {line} ends without a newline: the manifest was cut short"
            problems.append(self._damaged(path, message, line, None, runs))
            order = Order.unique(runs)
            missing = _missing_runs(order, self.items, self.files)
        self.manifest = _Manifest(runs, rebuild=rebuild)
        self.order = order
        dupes = repeated(runs)
        for run in dupes:
            problems.append(
                Problem(
                    Code.DUPLICATE_ENTRY,
                    path,
                    f"{path}: names {_describe(run)} more than once",
                    key=f"{run.prefix}-{run.first}",
                    action="repair keeps the first",
                )
            )
        for run in missing:
            problems.append(
                Problem(
                    Code.MISSING_ITEM,
                    path,
                    f"{path}: names {_describe(run)}, but no file holds it",
                    key=f"{run.prefix}-{run.first}",
                    action="repair drops the entry",
                )
            )
        if rebuild:  # the items it does not name are its bad-manifest finding's
            return problems
        # In the order they were most likely made: repair moves them to
        # lost+found, and records them there, in this order (for sos adopt).
        for item_id in guess_order(self.unnamed(order), self.earliest):
            item_path = self.where(self.items[item_id])
            problems.append(
                Problem(
                    Code.ORPHAN_ITEM,
                    item_path,
                    f"{item_path}: item {item_id} is not in the list's manifest",
                    key=item_id,
                    action=f"repair moves it to {LOST_FOUND}/",
                )
            )
        return problems

    def earliest(self, prefix: str, numbers: list[int]) -> float | None:
        """The earliest modification time of a prefix's item files."""
        times = [self.files.modified(self.items[f"{prefix}-{n}"]) for n in numbers]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def unnamed(self, order: Order) -> list[str]:
        """The ids of the valid item files ``order`` does not name, sorted."""
        return [i for i in sorted(self.items) if not order.contains(i)]

    def _damaged(
        self, path: str, message: str, line: int | None, column: int | None, runs: list[Run]
    ) -> Problem:
        """The finding for a manifest that is empty, cut short or unreadable:
        repair rebuilds it from the items, never moves them to lost+found."""
        named = Order.unique(runs)
        unnamed = len(self.unnamed(named))
        return Problem(
            Code.BAD_MANIFEST,
            path,
            message,
            line=line,
            column=column,
            action=f"repair rebuilds it from the {len(self.items)} item files: those its "
            f"readable lines name in their order, then the {unnamed} others {_GUESS}",
        )


# -- repair ----------------------------------------------------------------------------


class _Repair:
    """Acts on a scan's findings (the lock is held): one handler per code."""

    def __init__(self, scan: _Scan) -> None:
        self.scan = scan
        self.files = scan.files
        self.by_path = {scan.where(doc.name): doc for doc in scan.docs}
        self.moved_items: set[str] = set()
        self.kept: Order | None = None  # the rewritten manifest
        self.rebuilt = ""  # what rebuilding it did, if it was rebuilt
        self.lost: list[str] = []  # ids of the items moved to lost+found, in order

    def run(self, problems: list[Problem]) -> list[Problem]:
        """The findings with what was done; those repair leaves to a person unchanged.

        Files are settled first, then the List's manifest, rewritten once,
        because moving a misplaced item into place can find a "missing" one.
        """
        done: list[Problem | None] = [None] * len(problems)
        failed: list[Problem] = []
        for manifest_phase in (False, True):
            for index, problem in enumerate(problems):
                if problem.code.settles_the_manifest != manifest_phase:
                    continue
                handler = self.HANDLERS.get(problem.code)
                if handler is None:
                    done[index] = problem
                    continue
                try:
                    done[index] = handler(self, problem)
                except (OSError, Error) as exc:  # the others are tried all the same
                    failed.append(_not_done(problem, exc))
                    done[index] = failed[-1]
        if self.lost:
            self._record_lost()
        result = [p for p in done if p is not None]
        if failed:
            raise RepairFailed.of(self.scan.root, result, failed)
        return result

    def _record_lost(self) -> None:
        """Add the items just moved to lost+found, in the order they were
        moved (:func:`guess_order`'s), to its record ``lost+found/order.txt``
        (a manifest): the file names are hashes, and ``sos adopt`` reads the
        record to put the items back in their order."""
        name = LOST_FOUND_RECORD
        try:
            runs = _parse_runs(self.files.read(name))[0]
        except (FileNotFoundError, CorruptError):  # none yet, or not a file: started anew
            runs = []
        record = Order.unique([*runs, *Order.from_ids(self.lost).runs])
        self.files.write(name, record.encode())

    # -- one handler per code --------------------------------------------------------

    def _misplaced(self, p: Problem) -> Problem:
        doc = self.by_path[p.path]
        target = _format.key_relpath(p.key or "")
        target_path = self.scan.where(target)
        if self.files.exists(target):
            self.files.remove([doc.name])
            action = f"removed: {target_path} holds the same document"
        else:
            self.files.move(doc.name, target)
            action = f"moved to {target_path}"
        if self.scan.kind == "list" and doc.key is not None:
            self.scan.items[doc.key] = target
            self.moved_items.add(doc.key)
        return replace(p, action=action)

    def _directory_marker(self, p: Problem) -> Problem:
        gone = self.files.remove_marker(self.scan.markers[p.path])
        return replace(p, action="removed" if gone else "gone already")

    def _temp_file(self, p: Problem) -> Problem:
        self.files.remove([self.scan.names[p.path]])
        return replace(p, action="removed (no writer holds the store lock)")

    def _metadata(self, p: Problem) -> Problem:
        kind = self.scan.kind or "dict"
        self.files.write(_format.METADATA_NAME, _format.encode_metadata(kind))
        return replace(p, action=f"wrote {p.path} for a {kind} store")

    def _orphan_item(self, p: Problem) -> Problem:
        kept = self._rewrite_manifest()
        if p.key is not None and kept.contains(p.key):
            return replace(p, action="named in the rewritten manifest")
        name = self.scan.items.get(p.key or "", "")
        grace = self.files.orphan_grace()
        age = self.files.age(name) if grace else None
        if age is not None and age < grace:
            return replace(
                p,
                action=f"left alone: {age:.0f} s old, within the {grace:.0f} s grace of "
                "object storage, where a live appender may be about to name it",
            )
        dest = f"{LOST_FOUND}/{posixpath.basename(name)}"
        self.files.move(name, dest)
        if p.key is not None:
            self.lost.append(p.key)
        dest_path = self.scan.where(dest)
        return replace(
            p,
            action=f"moved to {dest_path}; to bring it back: "
            f"{self.scan.cmd('adopt', self.scan.root, dest_path)}",
        )

    def _bad_manifest(self, p: Problem) -> Problem:
        self._rewrite_manifest()
        if self.scan.manifest.rebuild:
            return replace(p, action=self.rebuilt)
        action = f"rewrote {p.path} with every valid run kept"
        if _format.ORDER_NAME in self.scan.unmerged:  # settled: tell git, as git mergetool does
            action += f", then {_git.mark_resolved(self.scan.root, _format.ORDER_NAME)}"
        return replace(p, action=action)

    def _missing_item(self, p: Problem) -> Problem:
        self._rewrite_manifest()
        if p.key in self.moved_items:
            return replace(p, action="found: its file was moved into place")
        return replace(p, action="dropped from the manifest")

    def _duplicate_entry(self, p: Problem) -> Problem:
        self._rewrite_manifest()
        return replace(p, action="kept the first, dropped the rest")

    HANDLERS: dict[Code, Callable[[_Repair, Problem], Problem]] = {
        Code.MISPLACED: _misplaced,
        Code.TEMP_FILE: _temp_file,
        Code.DIRECTORY_MARKER: _directory_marker,
        Code.METADATA: _metadata,
        Code.ORPHAN_ITEM: _orphan_item,
        Code.BAD_MANIFEST: _bad_manifest,
        Code.MISSING_ITEM: _missing_item,
        Code.DUPLICATE_ENTRY: _duplicate_entry,
    }

    def _rewrite_manifest(self) -> Order:
        """Write the List's manifest once: every valid run kept, each id once,
        missing items dropped (a damaged item file is still the user's item).
        A manifest to rebuild (missing, empty, cut, unreadable) also gets every
        item file its readable lines do not name, in :func:`guess_order`'s
        order: an item that had a place is never sent to lost+found.
        Arithmetic on runs: a manifest naming a billion ids costs its runs."""
        if self.kept is not None:
            return self.kept
        scan = self.scan
        new = Order.unique(scan.manifest.runs)
        new = new.without(_missing_runs(new, scan.items, self.files))
        if scan.manifest.rebuild:
            named = len(new)
            rest = guess_order(scan.unnamed(new), scan.earliest)
            new = Order([*new.runs, *rest.runs])
            self.rebuilt = _rebuilt(scan.where(_format.ORDER_NAME), named, rest)
        self.files.write(_format.ORDER_NAME, new.encode() if len(new) else HEADER)
        self.kept = new
        return new


def _rebuilt(path: str, named: int, rest: Order) -> str:
    """What a rebuild did, for the user: counts, and what is a guess."""
    prefixes = len({run.prefix for run in rest.runs})
    text = f"rebuilt {path} from the item files: "
    text += f"{named} in the order its readable lines give, then " if named else ""
    text += f"{len(rest)} by number within their writer's id prefix"
    if prefixes > 1:
        text += (
            f"; the order across the {prefixes} prefixes (by their items' earliest "
            "modification time) is a best guess"
        )
    return text + f"; nothing was moved to {LOST_FOUND}/"


class RepairFailed(Error):
    """``check(repair=True)`` could not do every repair it meant to.

    The message names each one not done (with the original finding, which
    says what repair would have done) and what to do next; ``problems`` is
    every finding, with what was done to it.
    """

    problems: list[Problem] = []
    failed: list[Problem] = []

    @classmethod
    def of(cls, root: str, problems: list[Problem], failed: list[Problem]) -> RepairFailed:
        lines = [f"  {p.code}: {p}" for p in failed]
        error = cls(
            f"{root}: repair did not finish: {len(failed)} of {len(problems)} finding(s) "
            "could not be repaired and are still to do:\n" + "\n".join(lines) + "\n"
            f"fix the cause, then run {shlex.join(['sos', 'check', '--repair', root])} again",
            root,
        )
        error.problems = problems
        error.failed = failed
        return error


# -- helpers ----------------------------------------------------------------------------


def _not_done(problem: Problem, exc: BaseException) -> Problem:
    """``problem`` with an action saying its repair failed, what it was, and why."""
    meant = f" ({problem.action})" if problem.action else ""
    return replace(problem, action=f"NOT repaired{meant}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """Why an operation failed, naming the file: an OSError's own text, or a sos.Error's."""
    if isinstance(exc, OSError) and not isinstance(exc, Error) and exc.strerror:
        name = f"{exc.filename}: " if exc.filename else ""
        return f"{name}{exc.strerror}"
    return str(exc)


def _missing_runs(order: Order, items: dict[str, str], files: _Files) -> list[Run]:
    """The runs of ``order`` whose item files do not exist. An id not among
    the valid, well placed ``items`` may still have a file (a damaged one: its
    own problem says so, and it is the user's item); only runs of up to
    :data:`_STAT_AT_MOST` ids are looked at file by file."""
    return [
        run
        for part in order.missing(items)
        for run in (
            Order.from_ids(
                i for i in Order([part]) if not files.exists(_format.key_relpath(i))
            ).runs
            if part.size <= _STAT_AT_MOST
            else [part]
        )
    ]


def _conflict_runs(data: bytes) -> tuple[list[Run], list[int]] | None:
    """A conflicted manifest's runs: common, ours, then theirs; and bad line numbers."""
    sides = _format.split_conflict(data)
    if sides is None:
        return None
    runs: list[Run] = []
    bad: list[int] = []
    for side in sides:
        side_runs, side_bad = _parse_runs(side)
        runs += side_runs
        bad += side_bad
    # The common lines appear in both sides; keeping each id's first place
    # drops the second copy. Order: ours (with common), then what theirs adds.
    return runs, bad


def _readable_runs(data: bytes) -> list[Run]:
    """The runs of a damaged manifest's whole lines: a last line without its
    newline was cut, and a cut run may name the wrong ids (``abc 0-19`` cut
    to ``abc 0-1``), so it is not trusted."""
    if not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return _parse_runs(data)[0]


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


def _pending(files: _Files) -> Problem:
    path = files.where(_txn.RECORD)
    return Problem(
        Code.PENDING_TRANSACTION,
        path,
        f"{path}: a committed transaction is not fully applied (a crash); "
        "the next write or open of the store finishes it",
        action="repair rolls it forward",
    )


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


def _is_json_name(name: str) -> bool:
    """A name that says "JSON" (any case: ``.JSON`` from another system too)."""
    return name.lower().endswith(_format.DATA_SUFFIX)


def _quoted(key: str) -> bool:
    """True where the command line prints and takes ``key`` as a JSON string."""
    return key.startswith('"') or not key.isprintable()


def _is_item_id(key: str) -> bool:
    try:
        split_id(key)
    except ValueError:
        return False
    return True

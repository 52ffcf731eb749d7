"""The ``sos`` command: read, write, edit, check and repair a store from the shell.

Hashed file names make a store awkward to use by hand; this gives the names
back (``sos path``, ``sos edit``) and keeps the shell conventions: values are
JSON on stdout, errors one line on stderr, exit 0 on success, 1 when a key is
missing or a check finds problems, 2 on usage errors, and no traceback for a
user's mistake. :func:`main` can be called in-process.

Built on the public API and the format module (:mod:`sos._format`), plus
three helpers that touch no store internals: git plumbing (:mod:`sos._git`)
for ``check``/``resolve``/``edit`` during a merge, the dump and load formats
(:mod:`sos._interchange`: JSON, JSON Lines with a kind marker, pysos files),
and :func:`sos._check.iter_readable`, the documented way to read past damaged
files (to be exported as ``sos.iter_readable``). A store's own files are
reached only through its :class:`~sos._storage.Storage` (never ``open()``,
``os`` or ``shutil`` on a store path), so every command works the same on a
local directory, ``memory://`` and ``s3://``; ``open()`` is for the user's
own files (a file to load or adopt, the editor's copy).

Each command is a function that declares its own arguments with
:func:`command`; :class:`Target` turns a KEY into what the store takes (a
Dict's key, a List's index), so no command asks which kind it has.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sos

from . import _format, _git, _interchange
from ._check import LOST_FOUND, iter_readable
from ._order import Order, guess_order, split_id
from ._storage import Storage, open_storage, scheme_of
from ._store import read_kind

__all__ = ["main"]

_CHUNK = 500  # entries per step of a load's transaction: the progress bar moves


class UsageError(Exception):
    """A mistake in the command line: exit status 2."""


class Failure(Exception):
    """The command could not do what was asked: exit status 1."""


class Interrupted(Exception):
    """Ctrl-C, with what it left behind: exit status 130."""


Store = sos.Dict | sos.List


# -- the command registry --------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call; ``group`` names a mutually exclusive group."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    group: str | None = None


def arg(*flags: str, group: str | None = None, **options: Any) -> Arg:
    return Arg(flags, options, group)


STORE = arg("store", metavar="STORE", help="the store's directory")
KEY = arg(
    "key",
    metavar="KEY",
    help='a key (one printed by sos keys as "..." is read as a JSON string), '
    "or for a list an index (-1 is the last)",
)
VALUE = arg("value", metavar="VALUE", help="a JSON value, or - to read it from stdin")


@dataclass(frozen=True)
class Command:
    name: str
    func: Callable[[argparse.Namespace], int]
    summary: str
    examples: str
    args: tuple[Arg, ...]
    required_groups: frozenset[str]


_COMMANDS: dict[str, Command] = {}


def command(
    name: str, summary: str, examples: str, *args: Arg, required: Iterable[str] = ()
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``func`` as ``sos NAME`` with its arguments, next to its code."""

    def register(
        func: Callable[[argparse.Namespace], int],
    ) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = Command(name, func, summary, examples, args, frozenset(required))
        return func

    return register


# -- helpers -------------------------------------------------------------------------


def _dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)


def _parse_json(text: str, where: str) -> Any:
    """Strict JSON from the command line, by the rules every reader uses."""
    try:
        return _format.parse_json(text.encode("utf-8", "surrogateescape"), where, "input")
    except sos.CorruptError as exc:
        raise UsageError(exc.message + _string_hint(text)) from None


def _string_hint(text: str) -> str:
    """Most bad VALUEs are a bare word meant as a string: say how to quote it."""
    word = text.strip()
    if not word or word[0] in '{["-0123456789' or word in ("true", "false", "null"):
        return ""
    return f"; a string needs JSON quotes: '{_dumps(word, indent=None)}'"


def _read_input(source: str) -> str:
    """The text of FILE, or of stdin for ``-``."""
    if source == "-":
        return sys.stdin.read()
    try:
        with open(source, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise Failure(f"{source}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise Failure(f"{source}: not UTF-8 (byte {exc.start})") from None


def _read_input_bytes(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as exc:
        raise Failure(f"{source}: {exc.strerror}") from None


def _value_arg(text: str) -> Any:
    if text == "-":
        return _parse_json(sys.stdin.read(), "stdin")
    return _parse_json(text, "VALUE")


def _open(store: str) -> Store:
    return sos.open(store)


@contextlib.contextmanager
def _storage(store: str) -> Iterator[Storage]:
    """The store's storage: the one way this module reaches a store's files
    (local directory, ``memory://`` or ``s3://`` alike)."""
    storage = open_storage(store)
    try:
        yield storage
    finally:
        storage.close()


def _open_if_store(store: str) -> Store | None:
    """The store, or None where there is none yet (no metadata). Opening is
    tried first: the common case costs what ``sos get`` costs."""
    try:
        return _open(store)
    except sos.Error:
        if read_kind(store) is None:
            return None
        raise  # a store that failed to open (damaged metadata, the server...)


def _open_or_create(store: str, kind: str) -> Store:
    """The store, created as ``kind`` if nothing is there yet (as the Python API
    does); "created" is said only when it was. A directory holding something
    else is refused by the store's constructor, which then creates nothing."""
    db = _open_if_store(store)
    if db is not None:
        return db
    created = sos.Dict(store) if kind == "dict" else sos.List(store)
    print(f"sos: created {kind} store {store}", file=sys.stderr)
    return created


class _Unreadable:
    """Names each damaged file on stderr as it is met (as ``grep -r`` does)
    and turns any into exit status 1, after everything readable is printed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.prefix = f"sos {args.command}: "
        self.store = args.store
        self.count = 0

    def __call__(self, exc: sos.Error) -> None:
        self.count += 1
        print(self.prefix + str(exc), file=sys.stderr)

    def status(self) -> int:
        if not self.count:
            return 0
        sys.stdout.flush()
        print(
            f"{self.prefix}{self.store}: {self.count} unreadable file(s) left out; "
            f"sos check {shlex.quote(self.store)} says how to fix them",
            file=sys.stderr,
        )
        return 1


def _key_arg(text: str) -> str:
    """KEY as typed: a key that ``sos keys`` printed JSON-quoted is taken back."""
    if text.startswith('"'):
        try:
            key = json.loads(text)
        except ValueError:
            return text
        if isinstance(key, str):
            return key
    return text


class Target:
    """A store and a KEY from the command line: a Dict's key or a List's index.

    The one place that knows a List takes indexes, so commands just say
    ``target.get()``, ``target.set(v)``, ``target.path``.
    """

    def __init__(self, db: Store, text: str) -> None:
        self.db = db
        self.text = text
        self.ref: str | int
        if isinstance(db, sos.List):
            try:
                self.ref = int(text)
            except ValueError:
                raise UsageError(
                    f"{db.path} is a list: KEY must be an index, not {text!r}"
                ) from None
        else:
            self.ref = _key_arg(text)

    @property
    def is_item(self) -> bool:
        return isinstance(self.ref, int)

    def missing(self) -> Failure:
        if isinstance(self.ref, int):
            count = len(self.db)
            return Failure(f"{self.db.path}: no index {self.ref} (the list has {count} items)")
        return Failure(f"{self.db.path}: no key {self.ref!r} (its file would be {self.path})")

    def name(self, storage: Storage) -> str:
        """The store-relative name of the file behind KEY, as ``storage`` takes it."""
        path = self.path
        prefix = storage.where("")
        if not path.startswith(prefix):  # pragma: no cover - one rule makes both
            raise Failure(f"{path}: not inside {prefix}")
        return path[len(prefix) :]

    @property
    def path(self) -> str:
        try:
            return self.db.path_of(self.ref)  # type: ignore[arg-type]
        except IndexError:
            raise self.missing() from None
        except ValueError as exc:
            raise UsageError(f"{self.db.path}: bad key {self.ref!r}: {exc}") from None

    def get(self) -> Any:
        try:
            return self.db[self.ref]  # type: ignore[index]
        except (KeyError, IndexError):
            raise self.missing() from None

    def set(self, value: Any, where: str | None = None) -> None:
        try:
            self.db[self.ref] = value  # type: ignore[index]
        except IndexError:
            raise self.missing() from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, sos.Error):
                raise
            raise Failure(f"{where or self.db.path}: {exc}") from None

    def delete(self) -> None:
        try:
            del self.db[self.ref]  # type: ignore[arg-type]
        except (KeyError, IndexError):
            raise self.missing() from None


class _NoBar:
    """What a progress bar is when stderr is not a terminal: nothing at all."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(desc: str) -> Callable[[int], Any]:
    """A progress bar factory for stderr: tqdm on a terminal, else :class:`_NoBar`
    (no tqdm import, and no tqdm monitor thread left behind by an in-process call)."""

    def start(total: int) -> Any:
        if not sys.stderr.isatty():
            return _NoBar()
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, leave=False)

    return start


def _progress(items: Iterable[Any], total: int, desc: str) -> Iterator[Any]:
    """``items`` counted on a bar (see :func:`_bar`)."""
    bar = _bar(desc)(total)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


def _noun(db: Store, count: int) -> str:
    noun = "key" if isinstance(db, sos.Dict) else "item"
    return noun if count == 1 else noun + "s"


def _print_key(key: str) -> None:
    # One key per line; a key that would break that (a newline, a control
    # character) or that starts with a quote is printed as a JSON string.
    if key.startswith('"') or not key.isprintable():
        print(_dumps(key))
    else:
        print(key)


def _document(data: bytes, where: str) -> tuple[str, Any]:
    """``(key, value)`` of a document's bytes, or Failure saying ``file:line:column:``."""
    try:
        return _format.decode_document(data, where)
    except sos.CorruptError as exc:
        message = exc.message.removeprefix(f"{where}: ")
        if _format.conflict_line(data) is not None:
            line = _format.conflict_line(data)
            raise Failure(
                f"{where}:{line}:1: git conflict markers: keep one side and remove them"
            ) from None
        if exc.line is not None:
            message = message.replace(f" at line {exc.line}, column {exc.column}", "")
            raise Failure(f"{where}:{exc.line}:{exc.column}: {message}") from None
        raise Failure(f"{where}: {message}") from None


def _is_document(data: bytes) -> bool:
    try:
        _document(data, "")
    except Failure:
        return False
    return True


def _read_bytes(path: str) -> bytes | None:
    """A file of the user's (an editor's copy, a file to adopt); never a store's."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _read_stored(storage: Storage, name: str) -> tuple[bytes, Any] | tuple[None, None]:
    """``(bytes, version)`` of a store's file, or ``(None, None)`` if there is none."""
    try:
        return storage.read_versioned(name)
    except FileNotFoundError:
        return None, None


# -- commands --------------------------------------------------------------------------


@command(
    "get",
    "print a value as JSON",
    "sos get data/users ada\nsos get data/todo -1      # a list: an index\n"
    "sos get -r data/todo 0   # a string without quotes",
    STORE,
    KEY,
    arg("-r", "--raw", action="store_true", help="print a string without quotes"),
)
def cmd_get(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        value = Target(db, args.key).get()
    if args.raw and isinstance(value, str):
        print(value)
    else:
        print(_dumps(value))
    return 0


@command(
    "set",
    "set a key (a list: an index) to a JSON value",
    "sos set data/users ada '{\"born\": 1815}'\necho '[1, 2]' | sos set data/users nums -",
    STORE,
    KEY,
    VALUE,
)
def cmd_set(args: argparse.Namespace) -> int:
    value = _value_arg(args.value)
    with _open_or_create(args.store, "dict") as db:
        Target(db, args.key).set(value)
    return 0


@command(
    "del",
    "remove a key (a list: the item at an index)",
    "sos del data/users ada\nsos del data/todo 0",
    STORE,
    KEY,
)
def cmd_del(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        Target(db, args.key).delete()
    return 0


@command(
    "append",
    "append a JSON value to a list",
    "sos append data/todo '\"buy milk\"'\necho '{\"done\": false}' | sos append data/todo -",
    STORE,
    VALUE,
)
def cmd_append(args: argparse.Namespace) -> int:
    value = _value_arg(args.value)
    with _open_or_create(args.store, "list") as db:
        if not isinstance(db, sos.List):
            raise Failure(f"{db.path}: is a dict store; use sos set STORE KEY VALUE")
        db.append(value)
    return 0


@command(
    "keys",
    "print the keys, sorted, one per line (a list: its indexes)",
    "sos keys data/users\nsos keys -0 data/users | xargs -0 -n1 sos get data/users",
    STORE,
    arg("--json", action="store_true", help="print a JSON array", group="form"),
    arg(
        "-0", "--null", action="store_true", help="end each key with NUL, not newline", group="form"
    ),
)
def cmd_keys(args: argparse.Namespace) -> int:
    report = _Unreadable(args)
    with _open(args.store) as db:
        # A List's indexes, damaged items included: they are what sos get
        # takes. A range, never a list: a manifest may name a billion items.
        keys: Sequence[Any] = range(len(db)) if isinstance(db, sos.List) else []
    if not keys and not isinstance(db, sos.List):
        keys = [key for key, _ in iter_readable(args.store, report)]
    if args.json and isinstance(keys, range):  # streamed, in bounded memory
        sys.stdout.write("[")
        for start in range(0, len(keys), 65536):
            chunk = keys[start : start + 65536]
            sys.stdout.write((", " if start else "") + ", ".join(map(str, chunk)))
        sys.stdout.write("]\n")
    elif args.json:
        print(_dumps(keys))
    elif args.null:
        sys.stdout.write("".join(f"{k}\0" for k in keys))
    else:
        for key in keys:
            _print_key(str(key))
    return report.status()


@command(
    "dump",
    "print the whole store as JSON (or JSON Lines)",
    "sos dump data/users > users.json\nsos dump --jsonl data/todo | head",
    STORE,
    arg(
        "--jsonl",
        action="store_true",
        help='one value per line (a dict: {"key": ..., "value": ...})',
    ),
)
def cmd_dump(args: argparse.Namespace) -> int:
    report = _Unreadable(args)
    # A consistent read: no transaction commits halfway through the dump.
    with _open(args.store) as db, db.reading():
        total = len(db)
        kind = "list" if isinstance(db, sos.List) else "dict"
        pairs = list(_progress(iter_readable(args.store, report, db), total, "reading"))
    out = sys.stdout
    if args.jsonl:
        out.write(_dumps(_interchange.marker(kind), indent=None) + "\n")
        for key, value in pairs:
            line = value if kind == "list" else {"key": key, "value": value}
            out.write(_dumps(line, indent=None) + "\n")
    elif kind == "list":
        print(_dumps([value for _, value in pairs]))
    else:
        print(_dumps(dict(pairs)))
    return report.status()


@dataclass
class _Progress:
    """How far a load got: what a failed load reports."""

    total: int | None = None
    written: int = 0

    def __str__(self) -> str:
        if self.total is None:
            return ""
        return f"; {self.written} of {self.total} entries were written before it stopped"


def _in_chunks(entries: list[Any], write: Callable[[list[Any]], None], progress: _Progress) -> None:
    """Write in chunks of _CHUNK entries, the bar and ``progress`` counting entries."""
    progress.total = len(entries)
    bar = _bar("writing")(len(entries))
    try:
        for start in range(0, len(entries), _CHUNK):
            chunk = entries[start : start + _CHUNK]
            try:
                write(chunk)
            except (TypeError, ValueError) as exc:
                if isinstance(exc, sos.Error):
                    raise
                raise _which_entry(chunk, start, exc) from None
            progress.written += len(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()


def _which_entry(chunk: list[Any], start: int, exc: Exception) -> Exception:
    """The store refused a group of entries: name the first one it refuses."""
    for offset, entry in enumerate(chunk):
        key, value = entry if isinstance(entry, tuple) else (None, entry)
        try:
            if key is not None:
                _format.validate_key(key)
            _format.encode_value(value)
        except (TypeError, ValueError) as bad:
            named = f" (key {key!r:.80})" if key is not None else ""
            return Failure(f"entry {start + offset + 1}{named}: {bad}")
    return exc


@command(
    "load",
    "load a JSON object, array or JSON Lines, all or nothing; creates the store if missing",
    "sos load data/users users.json\nsos dump --jsonl old | sos load new -\n"
    "sos load --pysos data/users users.pysos\nsos load --replace data/users users.json",
    STORE,
    arg("file", metavar="FILE", help="a file, or - for stdin"),
    arg(
        "--kind",
        choices=("dict", "list"),
        help="the kind of store to create if missing (default: from the input)",
    ),
    arg("--pysos", action="store_true", help="FILE is a pysos file (a dict or a list)"),
    arg(
        "--replace",
        action="store_true",
        help="make the store hold exactly the input (default: merge into what it holds)",
    ),
)
def cmd_load(args: argparse.Namespace) -> int:
    source = "stdin" if args.file == "-" else args.file
    marked: str | None
    if args.pysos:
        marked, data = _interchange.parse_pysos(_read_input_bytes(args.file), source)
        shape = "object" if marked == "dict" else "lines"
    else:
        shape, data, marked = _interchange.parse(_read_input(args.file), source)
    if marked == "dict" and shape == "lines":
        shape, data = "object", _interchange.as_pairs(data, source)
    fresh: str | None = None
    db = _open_if_store(args.store)
    if db is None:
        kind = args.kind or marked or ("dict" if shape == "object" else "list")
        pairs = data if shape == "object" or kind == "list" else _interchange.as_pairs(data, source)
        # Nothing was there: on any failure, leave nothing behind.
        with _storage(args.store) as storage:
            if not storage.list(""):
                fresh = "empty directory" if storage.root_exists() else "new"
        db = sos.Dict(args.store) if kind == "dict" else sos.List(args.store)
        if kind == "dict":
            shape, data = "object", pairs
    if marked is not None and marked != ("list" if isinstance(db, sos.List) else "dict"):
        db.close()
        raise Failure(f"{db.path}: is not a {marked} store; {source} is a dump of a {marked}")
    removed = 0
    progress = _Progress()
    try:
        with db, db.transaction():  # all or nothing, and the store to ourselves
            if isinstance(db, sos.Dict):
                pairs = data if shape == "object" else _interchange.as_pairs(data, source)
                total = len(pairs)
                if args.replace:
                    removed = _remove_missing(db, {key for key, _ in pairs})
                _in_chunks(pairs, db.update, progress)
            else:
                if shape == "object":
                    raise Failure(f"{db.path}: is a list store; load a JSON array or JSON Lines")
                total = len(data)
                if args.replace:
                    removed = len(db)
                    db.clear()
                _in_chunks(data, db.extend, progress)
    except BaseException as exc:
        _after_failed_load(args.store, fresh, exc, progress)
        raise
    done = f"sos: loaded {total} {_noun(db, total)} into {args.store}"
    if args.replace:
        done += f", replacing what it held ({removed} {_noun(db, removed)} removed or replaced)"
    print(done, file=sys.stderr)
    return 0


def _remove_missing(db: sos.Dict, keep: set[str]) -> int:
    """Delete (in the open transaction) every key the input does not have."""
    gone = [key for key in db if key not in keep]
    for key in gone:
        del db[key]
    return len(gone)


def _after_failed_load(
    store: str, fresh: str | None, exc: BaseException, progress: _Progress
) -> None:
    """Remove a store this load created (through its storage: a directory, a
    prefix of objects); say what a failed or interrupted load left and how far
    it got (an existing store is unchanged: the load is one transaction)."""
    if fresh is not None:
        try:
            with _storage(store) as storage:
                storage.remove_all(keep_root=fresh == "empty directory")
            left = f"removed the new store {store}"
        except (OSError, sos.Error) as cleanup:  # the load's own error still comes first
            left = f"could not remove the new store {store} ({cleanup}); remove it by hand"
    else:
        left = f"{store} is unchanged"
    left += str(progress)
    if progress.total is not None:
        left += ", none kept (a load is all or nothing)"
    if isinstance(exc, KeyboardInterrupt):
        raise Interrupted(f"interrupted; {left}") from None
    if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, sos.Error):
        raise Failure(f"{exc}; {left}") from None
    if isinstance(exc, (sos.Error, Failure, OSError)) and (fresh or progress.total is not None):
        print(f"sos load: {left}", file=sys.stderr)


@command(
    "info",
    "print kind, count, format, and the documents' bytes and disk space (also per key)",
    "sos info data/users\nsos info --json data/users",
    STORE,
    arg("--json", action="store_true", help="print a JSON object"),
)
def cmd_info(args: argparse.Namespace) -> int:
    with _open(args.store) as db, _storage(args.store) as storage:
        count = len(db)
        meta = _format.METADATA_NAME
        kind, fmt = _format.describe_metadata(storage.read(meta), storage.where(meta))
        docs = [0, 0, 0]  # files, bytes, allocated bytes
        other = [0, 0, 0]  # metadata, manifest, support files, lost+found, foreign files
        disk_known = True  # object storage and memory have no blocks to count
        for name, size, disk in storage.usage():
            top, _, base = name.rpartition("/")
            tally = docs if _format.is_fanout_name(top) and _format.is_data_name(base) else other
            tally[0] += 1
            tally[1] += size
            if disk is None:
                disk_known = False
            else:
                tally[2] += disk

    def known(value: int) -> int | None:
        return value if disk_known else None

    info = {
        "store": args.store,
        "kind": kind,
        "format": fmt,
        "count": count,
        "files": docs[0],
        "bytes": docs[1],
        "disk_bytes": known(docs[2]),
        "bytes_per_key": round(docs[1] / docs[0]) if docs[0] else 0,
        "disk_per_key": known(round(docs[2] / docs[0]) if docs[0] else 0),
        "other_files": other[0],
        "other_disk_bytes": known(other[2]),
    }
    if args.json:
        print(_dumps(info))
    else:
        for field_name, value in info.items():
            shown = "unknown (the storage does not report it)" if value is None else value
            print(f"{field_name + ':':17} {shown}")
    return 0


@command(
    "path",
    "print the file (on object storage: the object URL) that holds a key",
    '$EDITOR "$(sos path data/users ada)"\ngrep -l Paris $(sos path data/users ada)',
    STORE,
    KEY,
)
def cmd_path(args: argparse.Namespace) -> int:
    with _open(args.store) as db, _storage(args.store) as storage:
        target = Target(db, args.key)
        path = target.path
        exists = storage.exists(target.name(storage))
    print(path, flush=True)
    if not exists:
        print(f"sos: {args.store}: no key {args.key!r} yet; {path} would hold it", file=sys.stderr)
        return 1
    return 0


@command(
    "edit",
    "edit a key's document in $VISUAL/$EDITOR, checked before it is written",
    "sos edit data/users ada\nEDITOR=nano sos edit data/users newkey   # creates it",
    STORE,
    KEY,
)
def cmd_edit(args: argparse.Namespace) -> int:
    with _open(args.store) as db, _storage(args.store) as storage:
        target = Target(db, args.key)
        path = target.path
        name = target.name(storage)
        # What the editor shows, and the version the write is conditional on:
        # a change made by anyone else meanwhile is refused, never overwritten.
        original, version = _read_stored(storage, name)
        expected = name.rpartition("/")[2]  # the key (a list: the item id) hashes to this name
        if original is None and target.is_item:
            raise Failure(f"{path}: the list names this item but its file is missing")
        start = original
        if start is None:
            start = (_dumps({"key": target.ref, "value": None}) + "\n").encode()
        fd, copy = tempfile.mkstemp(prefix="sos-edit-", suffix=".json")
        with os.fdopen(fd, "wb") as f:
            f.write(start)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        while True:
            try:
                # Windows: $EDITOR is a command line with backslashes in its
                # path, which POSIX splitting would eat; cmd.exe splits it.
                status = (
                    subprocess.call(f'{editor} "{copy}"')
                    if os.name == "nt"
                    else subprocess.call([*shlex.split(editor), copy])
                )
            except OSError as exc:
                raise Failure(
                    f"cannot run editor {editor!r}: {exc.strerror}; {copy} kept"
                ) from None
            if status != 0:
                raise Failure(
                    f"editor {editor!r} exited with status {status}; nothing written, "
                    f"your copy is {copy}"
                )
            edited = _read_bytes(copy) or b""
            if edited == start and _is_document(start):  # a conflicted file stays a problem
                os.unlink(copy)
                print(f"sos: no changes; {path} left as it was", file=sys.stderr)
                return 0
            try:
                key, value = _document(edited, copy)
                if _format.document_name(key) != expected:
                    raise Failure(
                        f'{copy}:1:1: "key" must stay {target.ref!r} (found {key!r}); '
                        "use sos set to make another key"
                    )
            except Failure as exc:
                print(f"sos: {exc}", file=sys.stderr)
                print("Edit again? [Y/n] ", end="", file=sys.stderr, flush=True)
                answer = sys.stdin.readline()
                if not answer or answer.strip().lower() in ("n", "no"):
                    if not answer:
                        print(file=sys.stderr)
                    raise Failure(f"nothing written to {path}; your copy is {copy}") from None
                continue
            try:
                data = _format.encode_document(key, value)
            except (TypeError, ValueError) as exc:
                raise Failure(f"{copy}: {exc}; nothing written") from None
            storage.prepare_for_writing()
            if version is None:
                written = storage.write_if_absent(name, data)
            else:
                written = storage.write_if_version(name, data, version)
            if not written:
                what = "changed" if storage.exists(name) else "removed"
                raise Failure(
                    f"{path} was {what} by someone else while you edited it; nothing "
                    f"written, your copy is {copy} (sos edit again to see their change)"
                )
            os.unlink(copy)
            done = f"sos: wrote {path}"
            root = storage.local_directory()
            if root is not None and name in _git.unmerged(root):  # settled by hand: tell git
                done += f"; {_git.mark_resolved(root, name)}"
            print(done, file=sys.stderr)
            return 0


@command(
    "watch",
    "print one JSON line per change to a store, until Ctrl-C",
    "sos watch data/users\nsos watch --poll 2 data/todo     # stat-based polling every 2 s",
    STORE,
    arg("--poll", type=float, metavar="SECONDS", help="poll at this interval, not OS events"),
)
def cmd_watch(args: argparse.Namespace) -> int:
    from sos._watch import run_watch_command

    return run_watch_command(args.store, args.poll)


@command(
    "check",
    "report every problem in a store (exit 1 if any); --repair the safe ones",
    "sos check data/users\nsos check --repair data/todo",
    STORE,
    arg("--repair", action="store_true", help="fix what is safe, printing each action"),
    arg("--json", action="store_true", help="one JSON object per problem"),
)
def cmd_check(args: argparse.Namespace) -> int:
    problems = sos.check(args.store, repair=args.repair, progress=_bar("checking"))
    for problem in problems:
        if args.json:
            print(_dumps({k: v for k, v in vars(problem).items() if v is not None}, indent=None))
        else:
            print(f"{problem.code}: {problem}")
    sys.stdout.flush()  # findings before the summary, also when both go to one pipe
    if args.repair and problems:
        left = sos.check(args.store)
        if left:
            print(
                f"sos: {args.store}: {len(left)} problem(s) need you (see the commands above)",
                file=sys.stderr,
            )
            return 1
        print(f"sos: {args.store}: repaired, now clean", file=sys.stderr)
        return 0
    if problems:
        fixable = sum(p.code.repairable for p in problems)
        hint = (
            f"sos check --repair {shlex.quote(args.store)} fixes {fixable} of them"
            if fixable
            else "each needs you: see the commands above"
        )
        print(f"sos: {args.store}: {len(problems)} problem(s); {hint}", file=sys.stderr)
        return 1
    return 0


@command(
    "resolve",
    "settle a git conflict in one key's file by keeping one side",
    "sos resolve data/users ada --ours\nsos resolve data/users ada --theirs",
    STORE,
    KEY,
    arg("--ours", action="store_true", group="side", help="keep the branch merged into"),
    arg("--theirs", action="store_true", group="side", help="keep the branch merged in"),
    required=("side",),
)
def cmd_resolve(args: argparse.Namespace) -> int:
    side = "ours" if args.ours else "theirs"
    with _open(args.store) as db, _storage(args.store) as storage:
        target = Target(db, args.key)
        path = target.path
        name = target.name(storage)
        # Conflict markers are in the file wherever it is (a conflicted checkout
        # copied to object storage keeps them); git's merge state only in a
        # local directory.
        root = storage.local_directory()
        unmerged = None if root is None else _git.unmerged(root).get(name)
        data, _ = _read_stored(storage, name)
        sides = None if data is None else _format.split_conflict(data)
        no_git = (
            ""
            if root is not None
            else f"; {storage.url} is not a local directory, so no git merge state "
            "exists for it (only a file with conflict markers can be resolved there)"
        )
        if sides is not None:
            chosen: bytes | None = sides[0] if args.ours else sides[1]
        elif unmerged is not None and root is not None:  # a modify/delete or add/add conflict
            stage = _git.OURS if args.ours else _git.THEIRS
            chosen = _git.side_bytes(root, name, stage) if unmerged.has(stage) else None
        elif data is None:
            raise Failure(f"{target.missing()}{no_git}")
        else:
            raise Failure(f"{path}: has no git conflict markers; nothing to resolve{no_git}")
        if chosen is None:
            with contextlib.suppress(Failure):
                target.delete()
            kept = f"{side} (deleted)"
        else:
            key, value = _document(chosen, f"{path} ({side})")
            if _format.document_name(key) != name.rpartition("/")[2]:
                raise Failure(
                    f"{path} ({side}): holds key {key!r}, which does not belong in this file"
                )
            target.set(value, path)
            kept = side
    done = f"sos: {path}: kept {kept}"
    if unmerged is not None and root is not None:
        done += f"; {_git.mark_resolved(root, name)}"
        if chosen is None and target.is_item:  # the manifest lost the item: stage that too
            done += f"; {_git.mark_resolved(root, _format.ORDER_NAME)}"
    print(done, file=sys.stderr)
    return 0


@command(
    "adopt",
    "move document files into a store (a list: append their values); removes each FILE",
    "sos adopt data/todo data/todo/lost+found/3f….json\n"
    "sos adopt data/todo data/todo/lost+found/*.json   # a list: in the items' own order",
    STORE,
    arg("file", metavar="FILE", nargs="+", help='a {"key": ..., "value": ...} document file'),
)
def cmd_adopt(args: argparse.Namespace) -> int:
    """A List's items are appended in their own order (see
    :func:`_adoption_order`), not in the order the shell's glob gives
    (hashed names); other documents keep theirs. All are stored in one
    write, and each file is removed only after it. A FILE may be a URL
    (``s3://…/lost+found/….json``): it is read and removed through its storage."""
    with _Sources(args.store) as sources:
        docs = []
        for path in dict.fromkeys(args.file):
            data = sources.read(path)
            if data is None:
                raise Failure(f"{path}: no such file (adopted already?)")
            docs.append((path, *_document(data, path)))
        with _open(args.store) as db:
            if isinstance(db, sos.List):
                values = [value for _, _, value in _adoption_order(docs, sources)]
                start = len(db)
                db.extend(values)
                done = f"appended as index {start}"
                if len(values) > 1:
                    last = start + len(values) - 1
                    done = f"appended {len(values)} items as indexes {start}-{last}"
            else:
                done = _adopt_documents(args.store, db, docs)
        # Moved in, not copied: adopting the same file again cannot add it twice.
        for path, _, _ in docs:
            sources.remove(path)
    moved = docs[0][0] if len(docs) == 1 else f"{len(docs)} files"
    print(f"sos: {done}; moved {moved} into {args.store}", file=sys.stderr)
    return 0


def _adopt_documents(store: str, db: sos.Dict, docs: list[tuple[str, str, Any]]) -> str:
    """Set a Dict's keys from ``docs``: none if any key holds another value."""
    todo = []
    for path, key, value in docs:
        if key in db and db[key] == value:
            continue
        if key in db:
            raise Failure(
                f"{store}: key {key!r} already holds another value; "
                f"compare with {db.path_of(key)} (nothing was adopted)"
            )
        todo.append((path, key, value))
    for path, key, value in todo:
        try:
            db[key] = value
        except (TypeError, ValueError) as exc:
            raise Failure(f"{path}: {exc}") from None
    if not todo:
        if len(docs) == 1:
            return f"key {docs[0][1]!r} already holds this value"
        return "every key already holds its value"
    return f"key {todo[0][1]!r} set" if len(docs) == 1 else f"{len(todo)} keys set"


class _Sources:
    """The files ``sos adopt`` takes, by path or URL, each read, dated and
    removed through a storage: the store's own for a URL inside the store
    (``memory://…`` too), else that of the file's directory (one per directory)."""

    def __init__(self, store: str) -> None:
        self._store = store.rstrip("/") + "/"
        self._storages: dict[str, Storage] = {}

    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        for storage in self._storages.values():
            storage.close()

    def _split(self, path: str) -> tuple[Storage, str]:
        """The storage of ``path`` and its name there (perhaps ``lost+found/…``)."""
        if scheme_of(path) is None:
            absolute = Path(path).absolute()  # the user's file: its directory's storage
            directory, name = str(absolute.parent), absolute.name
        elif path.startswith(self._store):
            directory, name = self._store.rstrip("/"), path[len(self._store) :]
        else:
            directory, _, name = path.rpartition("/")
        storage = self._storages.get(directory)
        if storage is None:
            storage = self._storages[directory] = open_storage(directory)
        return storage, name

    def read(self, path: str) -> bytes | None:
        storage, name = self._split(path)
        try:
            return storage.read(name)
        except FileNotFoundError:
            return None

    def modified(self, path: str) -> float | None:
        storage, name = self._split(path)
        return storage.modified(name)

    def remove(self, path: str) -> None:
        storage, name = self._split(path)
        storage.remove([name])

    def records(self, paths: Iterable[str]) -> Iterator[Order]:
        """The lost+found records (``sos check --repair`` writes them) of the
        directories ``paths`` are in."""
        seen: set[tuple[int, str]] = set()
        for path in paths:
            storage, name = self._split(path)
            directory = name.rpartition("/")[0]
            inside = (directory or storage.url.replace(os.sep, "/")).rstrip("/")
            if inside.rpartition("/")[2] != LOST_FOUND:
                continue
            record = f"{directory}/{_format.ORDER_NAME}" if directory else _format.ORDER_NAME
            if (id(storage), record) in seen:
                continue
            seen.add((id(storage), record))
            try:
                data = storage.read(record)
            except FileNotFoundError:
                continue
            try:
                yield Order.decode(data, f"{storage.url.rstrip('/')}/{record}")
            except sos.CorruptError as exc:
                print(f"sos: {exc} (ordering by item ids and times instead)", file=sys.stderr)


def _adoption_order(
    docs: list[tuple[str, str, Any]], sources: _Sources
) -> list[tuple[str, str, Any]]:
    """List items (keys that are item ids) in their order: first those a
    lost+found record names, in its order; then the others in
    :func:`sos._order.guess_order`'s (by number within a writer's prefix,
    prefixes by their files' earliest modification time); then any other
    documents, as given."""
    items: dict[str, list[tuple[str, str, Any]]] = {}
    others = []
    for doc in docs:
        try:
            split_id(doc[1])
        except ValueError:
            others.append(doc)
            continue
        items.setdefault(doc[1], []).append(doc)
    ranks: dict[str, int] = {}
    for record in sources.records(d[0] for d in docs):
        for item_id in items:
            index = record.index_of(item_id)
            if index is not None and item_id not in ranks:
                ranks[item_id] = index
    recorded = sorted(ranks, key=ranks.__getitem__)

    def earliest(prefix: str, numbers: list[int]) -> float | None:
        times = [sources.modified(d[0]) for n in numbers for d in items[f"{prefix}-{n}"]]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    rest = guess_order((i for i in items if i not in ranks), earliest)
    return [doc for i in [*recorded, *rest] for doc in items[i]] + others


# -- the parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sos",
        description="Read, write, edit, check and repair sos stores (directories of JSON files).",
        epilog="Values are JSON. Exit status: 0 success, 1 missing key or problems found, "
        "2 usage error. 'sos COMMAND --help' shows examples.",
    )
    parser.add_argument("--version", action="version", version=f"sos {sos.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in _COMMANDS.values():
        p = sub.add_parser(
            cmd.name,
            help=cmd.summary,
            description=cmd.summary[:1].upper() + cmd.summary[1:] + ".",
            epilog="examples:\n" + "\n".join("  " + e for e in cmd.examples.splitlines()),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=cmd.func)
        groups: dict[str, Any] = {}
        for a in cmd.args:
            into: Any = p
            if a.group is not None:
                if a.group not in groups:
                    groups[a.group] = p.add_mutually_exclusive_group(
                        required=a.group in cmd.required_groups
                    )
                into = groups[a.group]
            into.add_argument(*a.flags, **a.options)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``sos`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    try:
        status: int = args.func(args)
        sys.stdout.flush()
    except UsageError as exc:
        print(f"sos {args.command}: {exc}", file=sys.stderr)
        return 2
    except (Failure, sos.Error) as exc:
        print(f"sos {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (head, less) went away: not an error worth a word. Point
        # stdout at /dev/null so the interpreter's final flush is quiet too.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Interrupted as exc:
        print(f"\nsos {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\nsos {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        name = exc.filename or args.store
        print(f"sos {args.command}: {name}: {exc.strerror}", file=sys.stderr)
        return 1
    return status

"""The ``sos`` command: read, write, edit, check and repair a store from the shell.

Hashed file names make a store awkward to use by hand; this gives the names
back (``sos path``, ``sos edit``) and keeps the shell conventions: values are
JSON on stdout, errors one line on stderr, exit 0 on success, 1 when a key is
missing or a check finds problems, 2 on usage errors, and no traceback for a
user's mistake. :func:`sos.cli.main` (in :mod:`sos.cli.run`) can be called in-process.

Built on the public API and the format module (:mod:`sos.format`), plus
three helpers that touch no store internals: git plumbing (:mod:`sos.git`)
for ``check``/``resolve``/``edit`` during a merge, the dump and load formats
(:mod:`sos.interchange`: JSON, JSON Lines with a kind marker, pysos files),
and :func:`sos.check.salvage.iter_readable`, the documented way to read past damaged
files (to be exported as ``sos.iter_readable``). A store's own files are
reached only through its :class:`~sos.storage.base.Storage` (never ``open()``,
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
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sos
from sos import format as _format
from sos.core.kinds import read_kind
from sos.storage.base import Storage
from sos.storage.registry import open_storage


class UsageError(Exception):
    """A mistake in the command line: exit status 2."""


class Failure(Exception):
    """The command could not do what was asked: exit status 1."""


class Interrupted(Exception):
    """Ctrl-C, with what it left behind: exit status 130."""


Store = sos.Dict[Any] | sos.List[Any]


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
    notes: str = ""


_COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    summary: str,
    examples: str,
    *args: Arg,
    required: Iterable[str] = (),
    notes: str = "",
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``func`` as ``sos NAME`` with its arguments, next to its code;
    ``notes``, if any, go in its help before the examples."""

    def register(
        func: Callable[[argparse.Namespace], int],
    ) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = Command(name, func, summary, examples, args, frozenset(required), notes)
        return func

    return register


# -- helpers -------------------------------------------------------------------------


def _dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)


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
    """KEY as typed: a key that ``sos keys`` printed JSON-quoted is taken back.
    Bytes that are not UTF-8 reach Python as lone surrogates (PEP 383): say
    that, not that the key holds a surrogate."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
        raw.decode("utf-8")
    except UnicodeEncodeError:  # a real lone surrogate (main called in-process)
        pass
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"KEY {raw!r} is not UTF-8 (byte {exc.start}); keys are text: "
            "type it in a UTF-8 terminal, or JSON-quoted with \\u escapes"
        ) from None
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
            if isinstance(exc, sos.Error) and not isinstance(exc, sos.UnwritableError):
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


@dataclass
class _Progress:
    """How far a load got: what a failed load reports."""

    total: int | None = None
    written: int = 0

    def __str__(self) -> str:
        if self.total is None:
            return ""
        return f"; {self.written} of {self.total} entries were written before it stopped"


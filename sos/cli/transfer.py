"""sos dump and sos load."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import sos
from sos import format as _format
from sos import interchange as _interchange
from sos.check.salvage import iter_readable
from sos.cli.framework import (
    STORE,
    Failure,
    Interrupted,
    _bar,
    _dumps,
    _noun,
    _open,
    _open_if_store,
    _Progress,
    _progress,
    _storage,
    _Unreadable,
    arg,
    command,
)
from sos.cli.inputs import _read_input, _read_input_bytes
from sos.cli.patterns import PATTERN, check_pattern, matches

_CHUNK = 500  # entries per step of a load's transaction: the progress bar moves


@command(
    "dump",
    "print the whole store as JSON (or JSON Lines)",
    "sos dump data/users > users.json\nsos dump data/users 'a*'   # the keys that start with a\n"
    "sos dump --jsonl data/todo | head",
    STORE,
    PATTERN,
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
        check_pattern(db, args.pattern)
        total = len(db)
        kind = "list" if isinstance(db, sos.List) else "dict"
        read = _progress(iter_readable(args.store, report, db), total, "reading")
        pairs = [(key, value) for key, value in read if matches(key, args.pattern)]
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
                if isinstance(exc, sos.Error) and not isinstance(exc, sos.UnwritableError):
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


def _remove_missing(db: sos.Dict[Any], keep: set[str]) -> int:
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
    if isinstance(exc, (TypeError, ValueError)) and (
        isinstance(exc, sos.UnwritableError) or not isinstance(exc, sos.Error)
    ):
        raise Failure(f"{exc}; {left}") from None
    if isinstance(exc, (sos.Error, Failure, OSError)) and (fresh or progress.total is not None):
        print(f"sos load: {left}", file=sys.stderr)

"""sos get, set, del, append, keys."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import sos
from sos.check.salvage import iter_readable
from sos.cli import inside as _inside
from sos.cli import pointer as _pointer
from sos.cli.framework import (
    KEY,
    STORE,
    VALUE,
    Failure,
    Target,
    _dumps,
    _open,
    _open_or_create,
    _print_key,
    _Unreadable,
    arg,
    command,
)
from sos.cli.inputs import _value_arg, _writable
from sos.cli.patterns import PATTERN, check_pattern, matches

# -- commands --------------------------------------------------------------------------


@command(
    "get",
    "print a value as JSON",
    "sos get data/users ada\nsos get data/users ada --at /born   # inside the value\n"
    "sos get data/todo -1      # a list: an index\n"
    "sos get -r data/todo 0   # a string without quotes",
    STORE,
    KEY,
    arg("-r", "--raw", action="store_true", help="print a string without quotes"),
    arg(
        "--at",
        metavar="POINTER",
        help="print only this place inside the value: a JSON Pointer (RFC 6901), "
        "such as /born or /langs/0",
    ),
)
def cmd_get(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        target = Target(db, args.key)
        value = target.get() if args.at is None else _inside.get_at(target, args.at)
    if args.raw and isinstance(value, str):
        print(value)
    else:
        print(_dumps(value))
    return 0


@command(
    "set",
    "set a key (a list: an index) to a JSON value",
    "sos set data/users ada '{\"born\": 1815}'\necho '[1, 2]' | sos set data/users nums -\n"
    "sos set data/users ada --at /born 1816           # replace: the place must exist\n"
    "sos set data/users ada --add /langs/- '\"de\"'     # add: append to an array",
    STORE,
    KEY,
    arg(
        "--at",
        metavar="POINTER",
        group="inside",
        help="replace only this existing place inside the value (JSON Pointer, RFC 6901; "
        "RFC 6902 replace)",
    ),
    arg(
        "--add",
        metavar="POINTER",
        group="inside",
        help="add VALUE at this place (RFC 6902 add: sets an object's member, inserts "
        "into an array; /- appends)",
    ),
    VALUE,
)
def cmd_set(args: argparse.Namespace) -> int:
    value = _writable(_value_arg(args.value), args.store, args.key)
    if args.at is not None or args.add is not None:
        change = _pointer.replace if args.at is not None else _pointer.add
        tokens = _inside.tokens_of(args.at if args.at is not None else args.add)
        with _open(args.store) as db:
            _inside.change_at(args.store, db, args.key, lambda v, t: change(v, t, value), tokens)
        return 0
    with _open_or_create(args.store, "dict") as db:
        Target(db, args.key).set(value)
    return 0


@command(
    "del",
    "remove a key (a list: the item at an index)",
    "sos del data/users ada\nsos del data/todo 0\n"
    "sos del data/users ada --at /langs/0   # only this place inside the value",
    STORE,
    KEY,
    arg(
        "--at",
        metavar="POINTER",
        help="remove only this existing place inside the value (JSON Pointer; RFC 6902 remove)",
    ),
)
def cmd_del(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        if args.at is not None:
            tokens = _inside.tokens_of(args.at)
            _inside.change_at(args.store, db, args.key, _pointer.remove, tokens)
            return 0
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
    value = _writable(_value_arg(args.value), args.store)
    with _open_or_create(args.store, "list") as db:
        if not isinstance(db, sos.List):
            raise Failure(f"{db.path}: is a dict store; use sos set STORE KEY VALUE")
        db.append(value)
    return 0


@command(
    "keys",
    "print the keys, sorted, one per line (a list: its indexes)",
    "sos keys data/users\nsos keys data/users 'user-??'\n"
    "sos keys -0 data/users | xargs -0 -n1 sos get data/users",
    STORE,
    PATTERN,
    arg("--json", action="store_true", help="print a JSON array", group="form"),
    arg(
        "-0", "--null", action="store_true", help="end each key with NUL, not newline", group="form"
    ),
    notes="A list's indexes include damaged items (sos get names what is wrong with\n"
    "each); an item whose file is missing makes it exit 1 naming that file, as\n"
    "a read of the list does (sos check --repair drops it).",
)
def cmd_keys(args: argparse.Namespace) -> int:
    report = _Unreadable(args)
    with _open(args.store) as db:
        # A List's indexes, damaged items included: they are what sos get
        # takes. A range, never a list: a manifest may name a billion items.
        keys: Sequence[Any] = range(len(db)) if isinstance(db, sos.List) else []
        if isinstance(db, sos.List):  # an index whose item is missing is none sos get takes
            missing = db._first_missing_item()
            if missing is not None:
                raise Failure(f"{missing} is missing (sos check --repair drops it)")
        check_pattern(db, args.pattern)
        if not isinstance(db, sos.List):  # with this handle: sos.json and the record not read again
            keys = [k for k, _ in iter_readable(args.store, report, db) if matches(k, args.pattern)]
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

"""sos diff: what differs between two stores, by key, on any two storages.

Values are compared as JSON (``1`` and ``1.0`` differ, the order of an
object's members does not), not as file bytes, so a store and its copy
on another storage, or a store and its dump loaded elsewhere, compare equal.
The exit status is ``diff``'s: 0 the same, 1 different, 2 trouble.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from typing import Any

import sos
from sos.cli.framework import Failure, UsageError, _dumps, _open, arg, command

_TROUBLE = 2


def _show(key: str | int) -> str:
    """A key as ``sos keys`` would print it: as is, or JSON-quoted when it
    would be ambiguous on a line (a List's index as a number)."""
    if isinstance(key, int):
        return str(key)
    if key.startswith('"') or not key.isprintable() or not key:
        return _dumps(key, indent=None)
    return key


def _canonical(value: Any) -> str:
    """What two values must share to be equal: their JSON with members sorted
    (so ``true`` is not ``1``, and ``1`` is not ``1.0``)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)


def _order(key: str | int) -> tuple[int, str]:
    """Keys sorted, a List's indexes by number: output that does not depend on file names."""
    return (key, "") if isinstance(key, int) else (0, key)


def _contents(path: str) -> tuple[str, dict[str | int, Any]]:
    """The store's kind and every value, read in one consistent pass."""
    with _open(path) as db, db.reading():
        if isinstance(db, sos.List):
            return "list", dict(enumerate(db))
        return "dict", dict(db.items())


def _unified(a: str, b: str, key: str | int, old: Any, new: Any) -> list[str]:
    label = _show(key)
    return list(
        difflib.unified_diff(
            _dumps(old).splitlines(),
            _dumps(new).splitlines(),
            fromfile=f"{a} {label}",
            tofile=f"{b} {label}",
            lineterm="",
        )
    )


def _compare(args: argparse.Namespace) -> int:
    kind_a, a = _contents(args.a)
    kind_b, b = _contents(args.b)
    if kind_a != kind_b:
        raise UsageError(
            f"{args.a} is a {kind_a} store and {args.b} a {kind_b} store: "
            "sos diff compares two stores of one kind"
        )
    only_a = sorted((k for k in a if k not in b), key=_order)
    only_b = sorted((k for k in b if k not in a), key=_order)
    changed = [k for k in sorted(a, key=_order) if k in b and _canonical(a[k]) != _canonical(b[k])]
    noun = "keys" if kind_a == "dict" else "items"
    if args.quiet:
        pass
    elif args.stat:
        same = len(a) - len(only_a) - len(changed)
        print(
            f"{len(only_a)} only in {args.a}, {len(only_b)} only in {args.b}, "
            f"{len(changed)} changed, {same} the same ({noun})"
        )
    else:
        for key in only_a:
            print(f"only in {args.a}: {_show(key)}")
        for key in only_b:
            print(f"only in {args.b}: {_show(key)}")
        for key in changed:
            print("\n".join(_unified(args.a, args.b, key, a[key], b[key])))
    return 1 if only_a or only_b or changed else 0


@command(
    "diff",
    "compare two stores: keys only in one of them, and changed values",
    "sos diff data/users s3://bucket/users\nsos diff --stat data/users backup/users\n"
    "sos diff -q data/users backup/users || echo different",
    arg("a", metavar="A", help="a store (a directory, s3://..., memory://...)"),
    arg("b", metavar="B", help="the store to compare it with (of the same kind)"),
    arg("--stat", action="store_true", help="print only the counts"),
    arg("-q", "--quiet", action="store_true", help="print nothing: the exit status says"),
    notes="exit status: 0 the same, 1 different, 2 trouble (a store missing or\n"
    "unreadable, a dict against a list), as diff(1) does; this differs from the\n"
    "other sos commands, where 1 is an error.",
)
def cmd_diff(args: argparse.Namespace) -> int:
    args.store = args.a
    try:
        return _compare(args)
    except (UsageError, Failure, sos.Error, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, sos.Error):
            message = f"{exc.filename or args.a}: {exc.strerror}"
        else:
            message = str(exc)
        print(f"sos diff: {message}", file=sys.stderr)
        return _TROUBLE

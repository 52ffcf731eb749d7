"""sos mv and sos cp: a key renamed or copied inside one store, in one transaction.

Both run in a transaction, so the test that NEW is free and the write are
one step with the store to ourselves (no other writer can create NEW in
between), and a move is never half done: after a crash the store holds the
value under OLD or under NEW, never both or neither.

Dicts only. A List's keys are positions, so "rename index 3 to index 7"
would mean reordering (every item after it moves), which is not what mv
means in a shell; the Python API does that (``lst.insert(7, lst.pop(3))``).
"""

from __future__ import annotations

import argparse

import sos
from sos.cli.framework import (
    STORE,
    Failure,
    Target,
    UsageError,
    _open,
    arg,
    command,
)

_OLD = arg("old", metavar="OLD", help="the key to take the value from")
_NEW = arg("new", metavar="NEW", help="the key to put it under")
_FORCE = arg("-f", "--force", action="store_true", help="replace NEW if it exists")


@command(
    "mv",
    "rename a key (a dict's), atomically; refuses an existing NEW unless --force",
    "sos mv data/users ada ada-lovelace\nsos mv --force data/users draft final",
    STORE,
    _OLD,
    _NEW,
    _FORCE,
)
def cmd_mv(args: argparse.Namespace) -> int:
    return _rename(args, keep_old=False)


@command(
    "cp",
    "copy a key's value (a dict's) to another key, atomically; refuses an existing NEW "
    "unless --force",
    "sos cp data/users ada ada-backup\nsos cp --force data/users template ada",
    STORE,
    _OLD,
    _NEW,
    _FORCE,
)
def cmd_cp(args: argparse.Namespace) -> int:
    return _rename(args, keep_old=True)


def _rename(args: argparse.Namespace, *, keep_old: bool) -> int:
    verb = "cp" if keep_old else "mv"
    with _open(args.store) as db:
        if isinstance(db, sos.List):
            raise UsageError(
                f"{db.path} is a list: {verb} works on a dict's keys (a list's are "
                "positions; reorder it in Python: lst.insert(j, lst.pop(i)))"
            )
        old, new = Target(db, args.old), Target(db, args.new)
        new.path  # noqa: B018 - a key that cannot be a key is refused before anything
        if old.ref == new.ref:
            raise Failure(f"{db.path}: OLD and NEW are the same key {old.ref!r}; nothing done")
        with db.transaction():
            value = old.get()
            if new.ref in db and not args.force:
                raise Failure(
                    f"{db.path}: key {new.ref!r} exists; sos {verb} --force replaces it "
                    "(nothing changed)"
                )
            new.set(value)
            if not keep_old:
                old.delete()
    return 0  # silent on success, as mv and cp are

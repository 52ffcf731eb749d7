"""sos edit and sos resolve."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from sos import format as _format
from sos import git as _git
from sos.cli.framework import (
    KEY,
    STORE,
    Failure,
    Target,
    _document,
    _dumps,
    _is_document,
    _open,
    _read_bytes,
    _read_stored,
    _storage,
    arg,
    command,
)
from sos.core import schema as _core_schema
from sos.format import schema as _schema
from sos.storage.base import Storage


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
        guard = _schema_guard(storage)
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
                if guard is not None:  # the store's schema.json, as every writer meets it
                    found = guard(value)
                    if found:
                        raise Failure(f"{copy}: {_schema.describe(args.key, found)}")
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
                    # Another version of the same bytes (touch, a checkout or an rsync
                    # that wrote them again) changed nothing anyone wrote: the write
                    # is conditional on the version that holds them now.
                    current, current_version = _read_stored(storage, name)
                    if current == original and current_version is not None:
                        written = storage.write_if_version(name, data, current_version)
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


def _schema_guard(storage: Storage) -> Callable[[Any], list[tuple[str, str]]] | None:
    """The findings of a value against the store's schema.json, if it has one."""
    stored = _core_schema.read_schema(storage)
    if stored is None:
        return None
    where = storage.where(_format.SCHEMA_NAME)
    return _core_schema.compiled(_schema.encode(_schema.decode(stored, where)))

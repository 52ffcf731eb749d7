"""``--at``: read or change one place inside a key's value (a JSON Pointer).

A change is one write of the whole document, made as a compare-and-swap on
the version it read (``write_if_version``) and retried from a fresh read
when someone else wrote the key meanwhile: two ``sos set --at`` on one key,
from two processes or two machines on S3, both land, and neither overwrites
the other's change. A pending transaction record is finished first, as
every write does (and recovery leaves a key changed after the crash alone).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from sos import txn as _txn
from sos.cli import pointer as _pointer
from sos.cli.framework import (
    Failure,
    Store,
    Target,
    UsageError,
    _document,
    _read_stored,
    _storage,
)
from sos.storage.base import Storage

# How often a change is tried again after losing a race; with the backoff
# below that is minutes of constant contention, not a busy loop.
TRIES = 200

Change = Callable[[Any, list[str]], Any]


def tokens_of(text: str) -> list[str]:
    try:
        return _pointer.parse(text)
    except _pointer.PointerError as exc:
        raise UsageError(str(exc)) from None


def get_at(target: Target, text: str) -> Any:
    """The part of KEY's value that the pointer ``text`` names."""
    tokens = tokens_of(text)
    value = target.get()
    try:
        return _pointer.resolve(value, tokens)
    except _pointer.TargetError as exc:
        raise Failure(f"{target.db.path}: key {target.text!r}: {exc}") from None


def change_at(store: str, db: Store, key: str, change: Change, tokens: list[str]) -> None:
    """Apply ``change(value, tokens)`` to KEY's value: read, change, write if
    unchanged since the read, else again."""
    with _storage(store) as storage:
        storage.prepare_for_writing()
        for attempt in range(TRIES):
            target = Target(db, key)  # a List's index may name another item now
            path = target.path
            name = target.name(storage)
            data, version = _read_stored(storage, name)
            if data is None:
                if target.is_item:
                    raise Failure(f"{path}: the list names this item but its file is missing")
                raise Failure(
                    f"{target.missing()}; --at and --add change a value that exists: "
                    "create the key first with sos set STORE KEY VALUE"
                )
            found, value = _document(data, path)
            try:
                changed = change(value, tokens)
            except _pointer.TargetError as exc:
                raise Failure(f"{db.path}: key {target.text!r}: {exc}; nothing written") from None
            try:
                encoded = db._encode_document(found, changed)  # held to schema.json too
            except (TypeError, ValueError) as exc:
                raise Failure(f"{db.path}: key {target.text!r}: {exc}; nothing written") from None
            if _write_if_version(storage, name, encoded, version):
                return
            # Lost the race: someone wrote the key after our read. Back off a
            # random while (up to 50 ms), so racing writers spread out.
            time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
    raise Failure(
        f"{db.path}: key {key!r} changed {TRIES} times while this change was tried; "
        "nothing written (try again)"
    )


def _write_if_version(storage: Storage, name: str, data: bytes, version: Any) -> bool:
    """Write ``data`` if ``name`` is still at ``version`` (the storage makes that
    one step: under its lock, or a conditional PUT), after finishing a pending
    transaction record as every write does; False when the version moved."""
    if _txn.pending(storage):
        with storage.lock(exclusive=True):  # recovery needs the store to itself
            if _txn.pending(storage):
                _txn.recover(storage)
        return False  # recovery may have changed the key: read it again
    return storage.write_if_version(name, data, version)

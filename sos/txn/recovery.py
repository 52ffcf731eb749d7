"""Applying a committed record, finishing it, and recovering one a crash left."""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterable

from sos.errors import CorruptError, Error
from sos.format.names import ORDER_NAME, RESERVED_DIR
from sos.storage.base import Storage, Version
from sos.storage.fileops import is_temp_name
from sos.storage.pool import ordered
from sos.txn.record import DONE, RECORD, TXN_FORMAT, UNSET, digest, entries, is_part_name

__all__ = [
    "Unapplied",
    "apply_entries",
    "crash_leftovers",
    "finish",
    "last_done",
    "pending",
    "recover",
    "sweep",
]


class Unapplied(Exception):
    """Staging a committed transaction's files failed (no room, no
    descriptors) before any was renamed: every file still holds its old
    bytes, and nothing was left behind. ``error`` says why."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def apply_entries(
    storage: Storage,
    entries: Iterable[tuple[str, bytes | None]],
    versions: dict[str, Version | None] | None = None,
    fresh: Container[str] = (),
) -> list[str]:
    """Put every entry in place: where the storage can, first stage every
    new file (a temp file beside it), and only then rename them all, so that
    a full disk stops the apply before it has changed anything.

    With ``versions`` (object storage), each file is written only if it
    still has the version the transaction saw (``If-Match``, or
    ``If-None-Match: *`` where it was absent): a refusal means another
    client wrote the file after the commit point, and its later write stands.
    ``fresh``: names the transaction found absent under the exclusive lock
    (a live apply, not recovery's): staged without a stat for an old mode."""
    written: list[str] = []
    removed: list[str] = []
    if not storage.stages_writes():  # object storage: each put is whole, needs no room here
        puts: list[tuple[str, bytes]] = []
        conditional: list[tuple[str, bytes | None, Version | None]] = []
        for name, after in entries:
            seen = UNSET if versions is None else versions.get(name, UNSET)
            if seen is not UNSET:
                conditional.append((name, after, seen))
            elif after is None:
                removed.append(name)
            else:
                puts.append((name, after))
        storage.write_many_lazy(puts)  # in parallel where the storage has a pool
        # each only if it still has the version the transaction saw, in
        # parallel too: writes, then a List's manifest (once the items it
        # names exist), then removals (once it no longer names them)
        manifest = [entry for entry in conditional if entry[0] == ORDER_NAME]
        rest = [entry for entry in conditional if entry[0] != ORDER_NAME]
        writes = [entry for entry in rest if entry[1] is not None]
        removals = [entry for entry in rest if entry[1] is None]
        for group in (writes, manifest, removals):
            for _ in ordered(_write_if_seen(storage), group, storage.parallelism()):
                pass
        written = [name for name, _ in puts] + [name for name, _, _ in conditional]
    else:
        staged: list[tuple[str, str]] = []
        try:
            for name, after in entries:
                if after is None:
                    removed.append(name)
                else:
                    staged.append((storage.stage(name, after, fresh=name in fresh), name))
        except OSError as exc:
            storage.unstage([temp for temp, _ in staged])
            raise Unapplied(exc) from exc
        try:
            storage.publish(staged)
        except BaseException:  # past the commit point: the record applies it again later
            storage.unstage([temp for temp, _ in staged])  # those not renamed yet
            raise
        written = [name for _, name in staged]
    if removed:  # each directory is synced, whether the file was there or not
        storage.remove_lazy(removed)
    return written + removed


def _write_if_seen(
    storage: Storage,
) -> Callable[[tuple[str, bytes | None, Version | None]], None]:
    """A conditional write of one file: refused (a later writer won) if it
    no longer has the version the transaction saw."""

    def write(entry: tuple[str, bytes | None, Version | None]) -> None:
        name, after, seen = entry
        if after is None:
            if seen is not None:
                storage.remove_if_version(name, seen)
        else:
            storage.write_if_version(name, after, seen)

    return write


def finish(storage: Storage, names: list[str], parts: list[str], txn_id: str) -> None:
    """Make applied files durable, then retire the record: its parts and it
    are removed, and :data:`DONE` is replaced by one line naming it. A
    watcher compares DONE before and after a pass, so a transaction that
    began and ended within one pass is never missed, however coarse the
    filesystem's clock. DONE is a hint, not data: written without fsync,
    and holding no value (``grep -r`` on a store finds only documents)."""
    storage.sync_names(names)
    if parts:
        storage.remove(parts)
    storage.write_lazy(DONE, json.dumps({"finished": txn_id}).encode() + b"\n")
    storage.remove([RECORD])


def last_done(storage: Storage) -> bytes | None:
    """The line naming the last finished transaction (it changes with every
    transaction), or None if none has finished here yet."""
    try:
        return storage.read(DONE).partition(b"\n")[0]
    except (FileNotFoundError, CorruptError):
        return None


def pending(storage: Storage) -> bool:
    """True if a transaction record waits to be finished (one stat)."""
    return storage.exists(RECORD)


def crash_leftovers(storage: Storage) -> list[str]:
    """What a crashed transaction left in ``.sos/``: temp files (a writer
    killed while it wrote the record or a part) and, where writers wait for
    the lock and no record is pending, part files (a transaction killed
    before its commit point). Valid only under the exclusive lock: a live
    writer holds it while its own exist. On object storage a live
    transaction's parts exist while others write: they are never counted."""
    parts = storage.writers_wait_for_lock() and not pending(storage)
    return [
        f"{RESERVED_DIR}/{name}"
        for name in sorted(storage.list(RESERVED_DIR))
        if is_temp_name(name) or (parts and is_part_name(f"{RESERVED_DIR}/{name}"))
    ]


def sweep(storage: Storage) -> list[str]:
    """Remove :func:`crash_leftovers` (the caller holds the exclusive lock,
    where writers wait for it); the names removed. Done by a handle's first
    transaction, so that what a crash left does not stay for good where no
    one runs ``sos check --repair``."""
    if not storage.writers_wait_for_lock():
        return []
    found = crash_leftovers(storage)
    return storage.remove(found) if found else []


def _is_valid_document(data: bytes) -> bool:
    from sos import format as _format

    try:
        _format.decode_document(data, "")
    except CorruptError:
        return False
    return True


def recover(storage: Storage) -> bool:
    """Finish a pending record (the caller holds the exclusive lock).

    Returns True if there was one. See the module docstring for the rule.
    """
    try:
        data = storage.read(RECORD)
    except FileNotFoundError:
        return False
    where = storage.url.rstrip("/") + "/" + RECORD
    head_line, _, rest = data.partition(b"\n")
    try:
        head = json.loads(head_line)
    except ValueError:
        raise CorruptError(
            f"{where}: the transaction record's first line is not JSON", where
        ) from None
    if not isinstance(head, dict) or head.get("sos") != "transaction":
        raise CorruptError(f"{where}: not a sos transaction record", where)
    if head.get("format") != TXN_FORMAT:
        raise Error(f"{where}: transaction record format {head.get('format')!r} is unknown", where)
    parts = [p for p in head.get("parts", []) if isinstance(p, str)]
    # The last entry of each name, with the first before-hash (they are equal).
    final: dict[str, tuple[str | None, str | None]] = {}
    for part in parts:
        for item in entries(storage.read(part), part):
            final[item["name"]] = (item.get("before"), item.get("after"))
    for item in entries(rest, where):
        final[item["name"]] = (item.get("before"), item.get("after"))
    touched = []
    todo: list[tuple[str, bytes | None]] = []
    # Where plain writes do not wait for the lock (object storage), each file
    # is rolled forward only while it still holds its before-bytes (the
    # record's digest is the version it had), and only by a conditional
    # write on the version read here: anything else is a later writer's.
    tracking = not storage.writers_wait_for_lock()
    versions: dict[str, Version | None] = {}
    # The versions the files had, from the record (written where plain
    # writes do not wait for the lock): each file is written only if it
    # still has it, with no read first; a 412 means a later writer won.
    recorded = head.get("versions") if tracking else None
    if not isinstance(recorded, dict):
        recorded = {}
    for name, (before, after_text) in final.items():
        after = None if after_text is None else after_text.encode("utf-8")
        if name in recorded and (recorded[name] is None or isinstance(recorded[name], str)):
            versions[name] = recorded[name]
            todo.append((name, after))
            continue
        try:
            current, version = storage.read_versioned(name)
        except FileNotFoundError:
            current, version = None, None
        if current == after:  # applied, perhaps not yet durable
            touched.append(name)
            continue
        if tracking:
            if digest(current) != before:
                continue  # written after the commit point by another client
            versions[name] = version
        elif current is not None and digest(current) != before and _is_valid_document(current):
            continue  # changed after the crash by someone else: theirs stands
        todo.append((name, after))
    try:
        touched += apply_entries(storage, todo, versions if tracking else None)
    except Unapplied as exc:  # nothing touched: the record stays for a later try
        raise exc.error from None
    finish(storage, touched, parts, str(head.get("id", "")))
    return True

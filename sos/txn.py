"""Transactions: all-or-nothing changes through a roll-forward intent record.

The protocol (the pattern of SQLite's super-journal), built only on the
:class:`~sos.storage.base.Storage` interface so every storage gets it:

1. While the transaction runs, each change is an *entry*: the file's name,
   the SHA-256 of the bytes it held before the transaction (``null`` if it
   did not exist) and the bytes it must hold after (``null`` to remove it).
   Entries past a few MiB are written out as durable *part* files
   (``.sos/txn-ID-N.part``), so a huge transaction needs little memory.
2. **Commit point**: the record ``.sos/txn.json`` is written atomically and
   durably. It names the parts and holds the last entries. Until it exists
   the transaction did not happen; once it exists it did.
3. Apply: every file is replaced (or removed) by an atomic rename. The
   renamed files need no fsync of their own yet: the record is their
   durable copy.
4. Finish: the applied files and their directories are made durable, then
   the record and its parts are removed.

Recovery (:func:`recover`) runs whenever a record is found: by the next
operation that takes the store's lock (every writer finishes a record
before doing anything else, so a record outlives its transaction only
through a crash), when a store is opened (if the lock is free) and by
``sos check --repair``. For the last entry of each name it rolls forward
unless the file already holds its after-bytes, or holds a *valid document
different from its before-bytes*: that can only be a change made after the
crash by something that does not honour records (a text editor, git), and
it is kept. A torn or empty file is rolled forward. A file set back to its
before-bytes by such an editor is indistinguishable from one the apply step
never reached, and is rolled forward: the transaction committed, so its
value stands.

Where plain writes do not wait for the lock (object storage:
``Storage.writers_wait_for_lock()`` is False), a transaction notes the
version of every file it reads by key or writes, re-checks them before the
commit point (:class:`~sos.ConflictError`), and the apply step and recovery
write each file only if it still has the version seen (recovery: only a file
still holding its before-bytes, with ``If-Match`` on the version it read).
Anything else was written by another client after the commit point, and
stands. docs/s3.md, "Transactions and other writers".

On-disk format: docs/format.md, "Transactions".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sos.errors import ConflictError, CorruptError, Error
from sos.format.names import ORDER_NAME, RESERVED_DIR
from sos.storage.base import Storage, Version
from sos.storage.pool import ordered

__all__ = [
    "DONE",
    "MARK",
    "RECORD",
    "Journal",
    "Unapplied",
    "last_done",
    "marked",
    "pending",
    "recover",
    "unmarked",
]

RECORD = f"{RESERVED_DIR}/txn.json"
# One line naming the last finished transaction, so that watchers can tell
# that a transaction came and went.
DONE = f"{RESERVED_DIR}/txn.done"
_PART_PREFIX = f"{RESERVED_DIR}/txn-"
# Entries kept in memory before they are written out as a part file.
PART_LIMIT = 4 << 20
TXN_FORMAT = 1
# Where appends take no lock (object storage), a transaction that changes a
# List's order first adds this comment line (and its id) to order.txt by a
# compare-and-swap, before its commit point: an appender sees it in the
# manifest it reads anyway, and lets the transaction finish (under the
# lease) instead of swapping in an order the transaction's apply would then
# overwrite or be refused by. Readers skip it: it is a comment.
MARK = b"# pending transaction "


def marked(data: bytes) -> bool:
    """True if a manifest holds a pending transaction's mark."""
    return data.startswith(MARK) or b"\n" + MARK in data


def unmarked(data: bytes) -> bytes:
    """A manifest without its marks (those of a transaction that died before
    its commit point: the caller holds the lease and no record is pending)."""
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(MARK))


def digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _entry(name: str, before: str | None, after: bytes | None) -> bytes:
    text = None if after is None else after.decode("utf-8")
    line = json.dumps({"name": name, "before": before, "after": text}, ensure_ascii=False)
    return line.encode("utf-8") + b"\n"


class Journal:
    """The entries of one transaction, in memory up to :data:`PART_LIMIT`,
    then in durable part files. Names map to their latest entry, so reads
    inside the transaction find what it wrote."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.id = secrets.token_hex(8)
        self.parts: list[str] = []
        self.lines: list[bytes] = []
        self.size = 0
        # name -> sha256 of its bytes before the transaction (None: absent)
        self.before: dict[str, str | None] = {}
        # name -> its latest after-bytes, while they are in memory; names
        # whose latest entry was written out map to the part holding it
        self.after: dict[str, bytes | None] = {}
        self.spilled: dict[str, str] = {}
        # Where a plain write does not wait for the lock (object storage):
        # name -> the version it had when the transaction first read or
        # wrote it (None: absent), re-checked before the commit point.
        self.tracking = not storage.writers_wait_for_lock()
        self.versions: dict[str, Version | None] = {}
        self.read: set[str] = set()
        # order.txt as it was before this transaction marked it, and the
        # marked version, while the mark is this transaction's to take back
        self.mark: tuple[bytes, Version] | None = None

    def __len__(self) -> int:
        return len(self.before)

    def __contains__(self, name: str) -> bool:
        return name in self.before

    def add(self, name: str, after: bytes | None) -> None:
        """Record that ``name`` must hold ``after`` (None: be removed)."""
        before = self.before.get(name, _UNSET)
        if before is _UNSET:
            data: bytes | None
            try:
                if self.tracking:
                    data, version = self.storage.read_versioned(name)
                    self.saw(name, version, read=False)
                else:
                    data = self.storage.read(name)
            except FileNotFoundError:
                data = None
                self.saw(name, None, read=False)
            before = digest(data)
            self.before[name] = before
        line = _entry(name, before, after)
        self.lines.append(line)
        self.size += len(line)
        self.after[name] = after
        self.spilled.pop(name, None)
        if self.size >= PART_LIMIT:
            self._spill()

    def read_before(self, names: Iterable[str]) -> None:
        """Look up the before-bytes of many files at once, through the
        storage's pool (:meth:`~sos.storage.base.Storage.read_many`): an
        ``update()`` of many keys on object storage is otherwise one GET
        after another before anything is written."""
        todo = [name for name in dict.fromkeys(names) if name not in self.before]
        for name, data in self.storage.read_many(todo):
            self.before[name] = None if data is None else digest(data)
    def saw(self, name: str, version: Version | None, *, read: bool = True) -> None:
        """Note the version ``name`` had when the transaction first saw it
        (only where other writers do not wait for the lock); ``read``: the
        transaction's code saw its content (a value, or its absence)."""
        if not self.tracking:
            return
        if name not in self.versions:
            self.versions[name] = version
        if read:
            self.read.add(name)

    def check_versions(self) -> None:
        """Before the commit point: :class:`~sos.ConflictError` if a file the
        transaction read no longer has the version it saw (another client
        wrote it meanwhile). One HEAD per file, nothing written. A file only
        written (blindly) takes its current version: the other client's
        write comes before the transaction's, which the apply step then
        makes conditional on it."""
        for name, version in self.versions.items():
            current = self.storage.version(name)
            if current == version:
                continue
            if name not in self.read:
                self.versions[name] = current
            else:
                where = self.storage.url.rstrip("/") + "/" + name
                raise ConflictError(
                    f"{where}: changed by another client while the transaction ran; "
                    "nothing was written, run the transaction again",
                    where,
                )

    def _mark_order(self) -> None:
        """Mark order.txt with this transaction's id, by a compare-and-swap
        on the version the transaction read: :class:`~sos.ConflictError` if
        an append (or anything) changed it since. After the mark no
        appender swaps the manifest until the transaction is applied (or,
        if it died before its record, until a lease holder removes the
        mark): the apply's ``If-Match`` is on the marked version."""
        seen = self.versions.get(ORDER_NAME)
        where = self.storage.url.rstrip("/") + "/" + ORDER_NAME
        conflict = ConflictError(
            f"{where}: changed by another client while the transaction ran; "
            "nothing was written, run the transaction again",
            where,
        )
        try:
            data, version = self.storage.read_versioned(ORDER_NAME)
        except FileNotFoundError:
            raise conflict from None
        if seen is None or version != seen:
            raise conflict
        mark = MARK + self.id.encode() + b"\n"
        new = self.storage.swap(ORDER_NAME, data + mark, seen)
        if new is None:
            raise conflict
        self.versions[ORDER_NAME] = new
        self.mark = (data, new)

    def get(self, name: str) -> bytes | None:
        """The bytes ``name`` holds in this transaction (None: removed)."""
        if name in self.after:
            return self.after[name]
        part = self.spilled[name]
        found: Any = _UNSET
        for entry in _entries(self.storage.read(part), part):
            if entry["name"] == name:
                found = entry["after"]
        assert found is not _UNSET
        return None if found is None else found.encode("utf-8")

    def _spill(self) -> None:
        part = f"{_PART_PREFIX}{self.id}-{len(self.parts)}.part"
        self.storage.write(part, b"".join(self.lines))
        self.parts.append(part)
        for name in self.after:
            self.spilled[name] = part
        self.after = {}
        self.lines = []
        self.size = 0

    def names(self) -> Iterator[tuple[str, bytes | None]]:
        """(name, final bytes or None) of every file the transaction changes:
        each part file read once, in order (not once per name), then the
        entries still in memory."""
        latest_in: dict[str, set[str]] = {}
        for name, part in self.spilled.items():
            latest_in.setdefault(part, set()).add(name)
        for part in self.parts:
            wanted = latest_in.get(part)
            if not wanted:
                continue
            final: dict[str, str | None] = {}
            for entry in _entries(self.storage.read(part), part):
                if entry["name"] in wanted:
                    final[entry["name"]] = entry["after"]
            for name, text in final.items():
                yield name, None if text is None else text.encode("utf-8")
        yield from self.after.items()

    def commit(self) -> None:
        """Make the record durable: the commit point.

        Where appends take no lock and this transaction changes a List's
        order, order.txt is marked first (:data:`MARK`). Where plain writes
        do not wait for the lock, the record's head holds the version each
        file had (``versions``): apply and recovery write each file only if
        it still has it, so a 412 always means a later writer won."""
        head: dict[str, Any] = {
            "sos": "transaction", "format": TXN_FORMAT, "id": self.id, "parts": self.parts,
        }
        if self.tracking:
            if ORDER_NAME in self.before and self.storage.appends_without_lock():
                self._mark_order()
            head["versions"] = self.versions
        data = json.dumps(head).encode() + b"\n" + b"".join(self.lines)
        if not self.storage.write_if_absent(RECORD, data):
            raise Error(
                f"{self.storage.url}: a transaction record is already pending "
                f"({RECORD}); it is finished before any write, so this is a bug",
                self.storage.url,
            )

    def apply(self) -> list[str]:
        """Replace or remove every file (no fsync: the record is durable).
        Returns the names written, for :func:`finish`. :class:`Unapplied`
        if not every file could be staged: then none was touched."""
        return _apply(self.storage, self.names(), self.versions if self.tracking else None)

    def finish(self, names: list[str]) -> None:
        finish(self.storage, names, self.parts, self.id)

    def withdraw(self) -> None:
        """Take back the commit point of a transaction none of whose files
        was touched (:class:`Unapplied`): the record's removal is durable
        when this returns, so it can never be rolled forward later."""
        self.storage.remove([RECORD])
        if self.parts:
            self.storage.remove(self.parts)

    def discard(self) -> None:
        """Roll back before the commit point: the parts, and the mark on
        order.txt if this transaction made one (a mark left by a crash is
        removed by the next lease holder that writes the List)."""
        if self.mark is not None:
            data, version = self.mark
            self.mark = None
            with contextlib.suppress(Exception):  # else the next lease holder drops it
                self.storage.swap(ORDER_NAME, data, version)
        if self.parts:
            self.storage.remove(self.parts)


_UNSET: Any = object()


class Unapplied(Exception):
    """Staging a committed transaction's files failed (no room, no
    descriptors) before any was renamed: every file still holds its old
    bytes, and nothing was left behind. ``error`` says why."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _apply(
    storage: Storage,
    entries: Iterable[tuple[str, bytes | None]],
    versions: dict[str, Version | None] | None = None,
) -> list[str]:
    """Put every entry in place: where the storage can, first stage every
    new file (a temp file beside it), and only then rename them all, so that
    a full disk stops the apply before it has changed anything.

    With ``versions`` (object storage), each file is written only if it
    still has the version the transaction saw (``If-Match``, or
    ``If-None-Match: *`` where it was absent): a refusal means another
    client wrote the file after the commit point, and its later write stands."""
    written: list[str] = []
    removed: list[str] = []
    if not storage.stages_writes():  # object storage: each put is whole, needs no room here
        puts: list[tuple[str, bytes]] = []
        conditional: list[tuple[str, bytes | None, Version | None]] = []
        for name, after in entries:
            seen = _UNSET if versions is None else versions.get(name, _UNSET)
            if seen is not _UNSET:
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
                    staged.append((storage.stage(name, after), name))
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


def _entries(data: bytes, where: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise CorruptError(f"{where}: line {number} is not JSON", where) from None
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CorruptError(f"{where}: line {number} is not a transaction entry", where)
        yield entry


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
        for entry in _entries(storage.read(part), part):
            final[entry["name"]] = (entry.get("before"), entry.get("after"))
    for entry in _entries(rest, where):
        final[entry["name"]] = (entry.get("before"), entry.get("after"))
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
        touched += _apply(storage, todo, versions if tracking else None)
    except Unapplied as exc:  # nothing touched: the record stays for a later try
        raise exc.error from None
    finish(storage, touched, parts, str(head.get("id", "")))
    return True

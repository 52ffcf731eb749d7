"""One transaction's entries, in memory and then in durable part files,
and its commit point."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from sos.errors import ConflictError, Error
from sos.format.names import ORDER_NAME
from sos.storage.base import Storage, Version
from sos.storage.pool import ordered
from sos.txn import record as _record
from sos.txn import recovery as _recovery
from sos.txn.record import (
    MARK,
    PART_PREFIX,
    PART_SUFFIX,
    RECORD,
    TXN_FORMAT,
    UNSET,
    digest,
    entries,
    entry,
)

__all__ = ["Journal"]


class Journal:
    """The entries of one transaction, in memory up to ``PART_LIMIT`` bytes,
    then in durable part files. Names map to their latest entry, so reads
    inside the transaction find what it wrote."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.id = os.urandom(8).hex()  # secrets.token_hex, without its import
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
        # name -> sha256 of the bytes the transaction's code read at that
        # version (None: absent): its before-bytes, should it be replaced
        self.read_digests: dict[str, str | None] = {}
        # order.txt as it was before this transaction marked it, and the
        # marked version, while the mark is this transaction's to take back
        self.mark: tuple[bytes, Version] | None = None

    def __len__(self) -> int:
        return len(self.before)

    def __contains__(self, name: str) -> bool:
        return name in self.before

    def add(self, name: str, after: bytes | None) -> None:
        """Record that ``name`` must hold ``after`` (None: be removed)."""
        before = self.before.get(name, UNSET)
        if before is UNSET:
            before = self.read_digests.get(name, UNSET)  # read by the code: not again
            if before is UNSET:
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
        line = entry(name, before, after)
        self.lines.append(line)
        self.size += len(line)
        self.after[name] = after
        self.spilled.pop(name, None)
        if self.size >= _record.PART_LIMIT:
            self._spill()

    def read_before(self, names: Iterable[str]) -> None:
        """Look up the before-bytes of many files at once, through the
        storage's pool: an ``update()`` of many keys on object storage is
        otherwise one GET after another before anything is written. Where
        versions are tracked, each file's is noted as :meth:`add` notes it: a
        blind write, re-checked before the commit point (taking the version
        found then) and applied only if the file still has that version."""
        known = self.before.keys() | self.read_digests.keys()  # add() takes a read's digest
        todo = [name for name in dict.fromkeys(names) if name not in known]
        for name, data, version in read_versioned_many(self.storage, todo, self.tracking):
            self.saw(name, version, read=False)
            self.before[name] = digest(data)

    def note_read(self, name: str, data: bytes | None, version: Version | None) -> None:
        """Note a file the transaction's code read (``data`` None: absent):
        its version, re-checked before the commit point where other writers
        do not wait for the lock (:meth:`saw`), and its digest, the record's
        before-bytes should the transaction then replace it (a read-modify-
        write, or ``migrate()``, reads each file once, not twice)."""
        self.saw(name, version)
        if name not in self.read_digests:
            self.read_digests[name] = digest(data)

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
        makes conditional on it. The HEADs go through the storage's pool:
        a transaction of many files waits for one round trip, not one per file."""
        seen = list(self.versions.items())
        currents = ordered(
            self.storage.version, [name for name, _ in seen], self.storage.parallelism()
        )
        try:
            for (name, version), current in zip(seen, currents, strict=True):
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
        finally:  # on a conflict: cancel the HEADs not yet sent, join the pool's threads now
            currents.close()

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
        found: Any = UNSET
        for item in entries(self.storage.read(part), part):
            if item["name"] == name:
                found = item["after"]
        assert found is not UNSET
        return None if found is None else found.encode("utf-8")

    def _spill(self) -> None:
        part = f"{PART_PREFIX}{self.id}-{len(self.parts)}{PART_SUFFIX}"
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
            for item in entries(self.storage.read(part), part):
                if item["name"] in wanted:
                    final[item["name"]] = item["after"]
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
            "sos": "transaction",
            "format": TXN_FORMAT,
            "id": self.id,
            "parts": self.parts,
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
        versions = self.versions if self.tracking else None
        # Found absent under the lock: no old file whose mode to keep (a stat,
        # and its FileNotFoundError, saved per new key).
        fresh = {name for name, before in self.before.items() if before is None}
        return _recovery.apply_entries(self.storage, self.names(), versions, fresh)

    def finish(self, names: list[str]) -> None:
        _recovery.finish(self.storage, names, self.parts, self.id)

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


def read_versioned_many(
    storage: Storage, names: list[str], versioned: bool = True
) -> Iterator[tuple[str, bytes | None, Version | None]]:
    """(name, bytes or None if absent, version or None) of each of ``names``,
    in order, through the storage's pool; without ``versioned`` the versions
    are None and the reads plain (:meth:`~sos.storage.base.Storage.read_many`)."""
    if not versioned:
        for name, data in storage.read_many(names):
            yield name, data, None
        return

    def read(name: str) -> tuple[str, bytes | None, Version | None]:
        try:
            data, version = storage.read_versioned(name)
        except FileNotFoundError:
            return name, None, None
        return name, data, version

    yield from ordered(read, names, storage.parallelism())

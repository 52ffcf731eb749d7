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

from sos.txn.journal import Journal
from sos.txn.record import DONE, MARK, PART_SUFFIX, RECORD, marked, unmarked
from sos.txn.recovery import (
    Unapplied,
    crash_leftovers,
    finish,
    last_done,
    pending,
    recover,
    sweep,
)

__all__ = [
    "DONE",
    "MARK",
    "PART_SUFFIX",
    "RECORD",
    "Journal",
    "Unapplied",
    "crash_leftovers",
    "finish",
    "last_done",
    "marked",
    "pending",
    "recover",
    "sweep",
    "unmarked",
]

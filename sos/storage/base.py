"""The storage behind a store: bytes in and out, names relative to the store.

Dict, List, check, transactions and watching speak to "the storage" only
through :class:`Storage`, so a store can live anywhere that can honour these
few methods: a local POSIX directory (:mod:`sos.storage.local`), a Windows directory,
object storage (:mod:`sos.storage.s3`), or memory (:mod:`sos.storage.memory`, which proves
the point in the tests). Modelled on zarr v3's ``abc.store.Store``: few
methods, whole values, names relative to the store.

Names are the store-relative paths of the on-disk format, always with ``/``:
``sos.json``, ``order.txt``, ``ab/ab01…ef.json``, ``.sos/…``. A name never
starts with ``/`` and never holds ``..``; implementations refuse one that does
(nothing outside the store is ever touched).

Errors, the same from every implementation:

- a missing file: :class:`FileNotFoundError` (callers turn it into
  ``KeyError``/``IndexError`` or :class:`~sos.CorruptError` as fits);
- a file that is not a regular file (a FIFO, a device, a symlink, a
  directory where a file belongs), or one larger than it may be:
  :class:`~sos.CorruptError` naming it, at once (never a hang);
- anything else: :class:`OSError` or :class:`~sos.Error` whose message names
  the file and the store.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence

from sos.format.names import RESERVED_DIR

# An opaque token that changes whenever a file's bytes may have changed:
# (inode, size, mtime, ctime) locally, the ETag on object storage. Equal
# tokens mean the same bytes; a racy local token never compares as "unchanged".
Version = Hashable


class Storage(abc.ABC):
    """Where a store's files live. One object per open store handle.

    Every method is safe to call from several threads at once. Writes are
    atomic per file (a reader sees the old bytes or the new, never a mix) and
    durable when they return, unless a method says otherwise.
    """

    #: What messages name: the directory as given, or ``s3://bucket/prefix``.
    url: str

    # -- reads -----------------------------------------------------------------

    @abc.abstractmethod
    def read(self, name: str) -> bytes:
        """The whole file. FileNotFoundError if there is none."""

    @abc.abstractmethod
    def read_versioned(self, name: str) -> tuple[bytes, Version]:
        """The whole file and the version of exactly those bytes."""

    @abc.abstractmethod
    def read_if_changed(self, name: str, version: Version | None) -> tuple[bytes, Version] | None:
        """None if ``name`` still has ``version``; else its bytes and new version.

        One stat locally (a conditional GET on object storage): the cache
        check of every cached read. FileNotFoundError if there is no file.
        """

    @abc.abstractmethod
    def version(self, name: str) -> Version | None:
        """The current version of ``name``, or None if there is no such file."""

    def exists(self, name: str) -> bool:
        """True if ``name`` is a file (one stat, one HEAD)."""
        return self.version(name) is not None

    def probe(self) -> tuple[Callable[[str], object], dict[str, str]] | None:
        """Where :meth:`exists` is one call on one path (a local ``stat``):
        that call, which raises ``FileNotFoundError`` for no file, and a
        memory of key -> path that the caller fills from :meth:`probe_path`
        and the storage empties whenever it forgets which directories it
        checked. ``key in store``, the hottest read there is, then costs the
        call and no frame of the storage's. None where an exists is more
        (object storage, memory)."""
        return None

    def probe_path(self, name: str) -> str | None:
        """The path :meth:`probe`'s call answers :meth:`exists` for ``name``
        on, once this handle trusts it (its directory checked); else None."""
        return None

    @abc.abstractmethod
    def modified(self, name: str) -> float | None:
        """When ``name`` was last written, in Unix seconds on the storage's
        own clock (a file's mtime, an object's Last-Modified), or None if
        there is no such file. For guesses only (``sos check --repair``
        rebuilding a List's order): clocks and their resolution differ."""

    def age(self, name: str) -> float | None:
        """Seconds since ``name`` was last written, if the storage can say so
        on a clock it trusts; None if not (or if there is no such file).
        ``check --repair`` leaves orphan items younger than
        :attr:`orphan_grace` alone."""
        return None

    #: Seconds an orphan List item is left alone by ``check --repair``: 0
    #: where the store lock excludes appenders, longer where it cannot.
    orphan_grace: float = 0.0

    def marker(self, directory: str = "") -> int | None:
        """The size of ``directory``'s directory-marker object (a 0-byte
        ``dir/`` object that S3 tools leave), or None: only object storage
        has such things."""
        return None

    def remove_marker(self, directory: str = "") -> bool:
        """Remove ``directory``'s 0-byte marker object; False if there was none."""
        return False

    def stages_writes(self) -> bool:
        """True where a transaction's apply can first write every new file
        beside its target (:meth:`stage`) and only then rename them all
        (:meth:`publish`), so a full disk stops it before anything changed.
        Object storage needs no such step: each PUT is whole."""
        return False

    def stage(self, name: str, data: bytes, *, fresh: bool = False) -> str:
        """``data`` in a temp file beside ``name``, not yet in place: its path.
        ``fresh``: the caller saw no file at ``name`` under the exclusive lock
        (no old file's mode to keep: no stat of it)."""
        raise NotImplementedError(f"{type(self).__name__} does not stage writes")

    def publish(self, staged: Sequence[tuple[str, str]]) -> None:
        """Rename each staged (temp path, name) into place."""
        raise NotImplementedError(f"{type(self).__name__} does not stage writes")

    def unstage(self, temps: Iterable[str]) -> None:  # noqa: B027 - nothing staged by default
        """Remove staged temp files that will not be published (those already
        renamed, or gone, are skipped)."""

    def directory_version(self, name: str) -> Version | None:
        """A token that changes when entries come or go in directory ``name``
        (its times, locally), or None where the storage has no such thing
        (object storage: a prefix has no times). Watching uses it to notice
        transaction records without listing ``.sos/`` on every poll."""
        return None

    def pin(self) -> None:  # noqa: B027 - optional: only a local directory has one
        """Remember the directory this handle opened, so a write into a
        store directory replaced since then fails instead of landing there."""

    def list_versions(
        self, directory: str = "", wanted: Callable[[str], bool] | None = None
    ) -> dict[str, Version]:
        """The files directly in ``directory`` with their versions, for the
        entries ``wanted`` accepts (all if None): here one listing and one
        :meth:`version` per wanted entry, so foreign files are never looked
        at; object storage answers with the versions its listing carries."""
        head = f"{directory}/" if directory else ""
        out: dict[str, Version] = {}
        for entry in self.list(directory):
            if wanted is None or wanted(entry):
                version = self.version(head + entry)
                if version is not None:
                    out[entry] = version
        return out

    @abc.abstractmethod
    def list(self, directory: str = "") -> builtins.list[str]:
        """Names of the entries directly in ``directory`` ("" is the store's
        root), files and sub-directories alike, in no particular order; an
        empty list if the directory does not exist."""

    def walk(self, directory: str = "") -> Iterator[str]:
        """Every file name below ``directory``, depth first, sorted; for check and watch."""
        for entry in sorted(self.list(directory)):
            name = f"{directory}/{entry}" if directory else entry
            if self.is_dir(name):
                yield from self.walk(name)
            else:
                yield name

    # -- many at once: sequential here, a bounded pool where requests have latency --

    def parallelism(self) -> int:
        """How many requests this storage keeps in flight when reading or
        writing many files (:meth:`read_many`, :meth:`list_many`,
        :meth:`write_many`, ``sos copy``): 1 where a call costs no round trip (a
        local disk, memory); on object storage a pool (``SOS_S3_POOL``, 16)."""
        return 1

    def read_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        """``(name, bytes)`` of each of ``names``, in their order, ``None``
        for one that does not exist. Lazy: an implementation with a pool
        reads ahead a bounded window, so memory stays flat however many
        names come, and stopping early costs at most that window."""
        for name in names:
            try:
                yield name, self.read(name)
            except FileNotFoundError:
                yield name, None

    def read_heads(self, names: Iterable[str], size: int) -> Iterator[tuple[str, bytes | None]]:
        """As :meth:`read_many`, but each file's first ``size`` bytes are
        enough (more may come): listing keys, which come first in a
        canonical document, need not read the values."""
        return self.read_many(names)

    def list_many(self, directories: Iterable[str]) -> Iterator[tuple[str, builtins.list[str]]]:
        """``(directory, self.list(directory))`` for each, in their order;
        lazy and bounded as :meth:`read_many`. For finding files: a storage
        may leave out a sub-directory that holds no file (S3 lists many
        directories from one flat page, which shows no empty one)."""
        for directory in directories:
            yield directory, self.list(directory)

    @abc.abstractmethod
    def is_dir(self, name: str) -> bool:
        """True if ``name`` is a directory (a common prefix, on object storage)."""

    def list_directory(self, directory: str) -> tuple[builtins.list[str], int | None] | None:
        """``directory``'s entries (:meth:`list`) and its marker's size
        (:meth:`marker`), or None if it is not a directory (:meth:`is_dir`):
        what ``sos check`` asks of each fan-out directory, in one request on
        object storage (a delimited LIST) instead of three."""
        if not self.is_dir(directory):
            return None
        return self.list(directory), self.marker(directory)

    # -- writes ----------------------------------------------------------------

    @abc.abstractmethod
    def write(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data``, atomically; durable when it returns."""

    def write_plain(self, name: str, data: bytes) -> bool:
        """A plain set's whole write: the lock taken shared, no transaction
        record pending, :meth:`write`, the lock released; or ``False``, nothing
        done, where the caller must take those steps itself (the default).
        The local storage makes them in one frame (the hot path)."""
        return False

    @abc.abstractmethod
    def write_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        """Each file replaced atomically, all durable when it returns, the cost
        shared (group commit). After a crash each holds its old or new bytes."""

    def write_replacing(self, name: str, data: bytes, previous: Version | None) -> Version | None:
        """:meth:`write` of ``name``, whose version ``previous`` (or None) the
        caller read under the lock it holds. Returns the version of the bytes
        written where the storage knows it at no extra cost (the caller may
        then keep them as read), else None."""
        self.write(name, data)
        return None

    def write_new_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`write_many` of names the caller has just made (fresh List
        item ids): no file is there, so there is nothing of an old one to keep."""
        self.write_many(entries)

    def write_lazy(self, name: str, data: bytes) -> None:
        """Replace ``name`` atomically, durability deferred to :meth:`sync_names`.

        Only for a transaction's apply step, whose record is the durable copy.
        Where every write is durable anyway (object storage) this is :meth:`write`.
        """
        self.write(name, data)

    def write_many_lazy(self, entries: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`write_lazy` of each entry; where every write is durable and
        has latency anyway (object storage), in parallel (:meth:`parallelism`)."""
        for name, data in entries:
            self.write_lazy(name, data)

    def remove_lazy(self, names: Iterable[str]) -> builtins.list[str]:
        """Remove files, durability deferred to :meth:`sync_names`; the names
        that existed."""
        return self.remove(names)

    def sync_names(self, names: Sequence[str]) -> None:  # noqa: B027 - durable already
        """Make earlier :meth:`write_lazy`/:meth:`remove_lazy` of ``names`` durable."""

    @abc.abstractmethod
    def write_if_absent(self, name: str, data: bytes) -> bool:
        """Create ``name`` if it does not exist; False (nothing written) if it does."""

    @abc.abstractmethod
    def write_if_version(self, name: str, data: bytes, version: Version) -> bool:
        """Compare-and-swap: replace ``name`` only if it still has ``version``."""

    @abc.abstractmethod
    def remove(self, names: Iterable[str]) -> builtins.list[str]:
        """Remove files (missing ones skipped), durably; the names that existed."""

    @abc.abstractmethod
    def remove_if_version(self, name: str, version: Version) -> bool:
        """Remove ``name`` only if it still has ``version``; False if not."""

    @abc.abstractmethod
    def move(self, source: str, target: str) -> None:
        """Make ``target`` hold ``source``'s bytes and remove ``source``;
        atomic for ``target`` (a rename locally). Transactions apply staged
        documents with it."""

    @abc.abstractmethod
    def make_root(self) -> None:
        """Make the store's root exist, durably (a no-op on object storage)."""

    # -- locking -----------------------------------------------------------------

    @abc.abstractmethod
    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        """Take the store's lock, shared or exclusive, across processes.

        Re-entrant within a thread of this handle; other threads of the handle
        wait. False only when ``blocking`` is false and another holder has it.
        """

    @abc.abstractmethod
    def release(self) -> None:
        """Release one level of :meth:`acquire`."""

    @abc.abstractmethod
    def held(self) -> bool:
        """True if the calling thread holds the lock through this handle."""

    @contextlib.contextmanager
    def lock(self, exclusive: bool = True) -> Iterator[None]:
        self.acquire(exclusive)
        try:
            yield
        finally:
            self.release()

    # -- the store as a whole: for the sos command ------------------------------------

    def where(self, name: str) -> str:
        """What users are shown for ``name``: a file path locally, a URL elsewhere
        (``s3://bucket/prefix/ab/ab01….json``); ``where("")`` ends with the separator."""
        return f"{self.url.rstrip('/')}/{name}"

    def local_directory(self) -> str | None:
        """The store's directory on this machine's file system, for the tools
        that work on one (git, rsync), or None where there is none."""
        return None

    def location(self) -> str:
        """What makes two handles the same store: the URL here; the real
        path (links resolved) for a local directory. Stores nest when one
        location starts with the other's and a ``/``."""
        return self.url.rstrip("/")

    def usage(self) -> Iterator[tuple[str, int, int | None]]:
        """``(name, bytes, disk bytes)`` of every file of the store except the
        reserved directory and a top-level ``.git`` (neither holds the store's
        data); disk bytes are None where the storage does not know them
        (object storage bills bytes, not blocks). For ``sos info``; reads
        every file unless an implementation knows sizes from a listing."""
        for name in self.walk():
            if name.partition("/")[0] in (RESERVED_DIR, ".git"):
                continue
            try:
                yield name, len(self.read(name)), None
            except FileNotFoundError:
                continue  # removed while we looked

    def root_problem(self) -> str | None:
        """Why the root can never hold a store (it is a file, a parent is a
        file), or None; asked only after the metadata could not be read.
        Object storage and memory have no such roots."""
        return None

    def root_exists(self) -> bool:
        """True if the store's root exists: a directory locally; where a root
        exists only through what is under it (object storage, memory), True
        if anything is."""
        return bool(self.list(""))

    def remove_all(self, *, keep_root: bool = False) -> None:
        """Remove the whole store: every file under its root (the reserved
        directory too) and, unless ``keep_root``, the root directory itself
        where there is one. Only for undoing a store a failed command made."""
        self.remove(builtins.list(self.walk()))

    def writers_wait_for_lock(self) -> bool:
        """True if a plain single-file write waits while another client holds
        the exclusive lock (a local ``flock``, the memory storage's lock).
        False on object storage, where a plain set is one PUT and does not
        look at the lease: a transaction there re-checks the version of every
        file it read or wrote before its commit point, and applies each file
        only if it still has that version."""
        return True

    def appends_without_lock(self) -> bool:
        """True where a List's append is a compare-and-swap of ``order.txt``
        (:meth:`swap`) that takes no lock: object storage, where the lease
        costs two requests. False here: locally an append holds the lock,
        which costs no round trip. docs/s3.md, "Lists without the lease"."""
        return False

    def swap(self, name: str, data: bytes, version: Version | None) -> Version | None:
        """Compare-and-swap returning the new version: ``name`` replaced by
        ``data`` only if it still has ``version`` (None: only if absent);
        None if it did not. Here :meth:`write_if_version` then a
        :meth:`version` (racy: only for storages whose lock excludes other
        writers); object storage answers with the PUT's own ETag."""
        done = self.write_if_absent(name, data) if version is None else (
            self.write_if_version(name, data, version))
        return self.version(name) if done else None

    def prepare_for_writing(self) -> None:  # noqa: B027 - optional
        """Called once per handle before its first write: object storage
        probes here that the server honours conditional requests, and
        refuses to write to one that does not (it would lose updates)."""

    def close(self) -> None:  # noqa: B027 - optional: most have nothing to release
        """Release what the storage holds (descriptors, clients)."""

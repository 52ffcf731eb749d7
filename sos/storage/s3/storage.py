"""A store on object storage: ``s3://bucket/prefix``, through boto3.

Every name of the local format is the object key ``prefix/name``, byte for
byte, so a store copied object by object to a bucket (``aws s3 sync``,
``rclone``) opens there, and a bucket copied down opens locally.

A PUT replaces an object atomically, so there are no temporary objects. What
needs ``flock`` and a re-read locally is a conditional request here:

- :meth:`S3Storage.write_if_absent` is a PUT with ``If-None-Match: *``,
- :meth:`S3Storage.write_if_version` a PUT with ``If-Match: <etag>``,
- :meth:`S3Storage.remove_if_version` a DELETE with ``If-Match: <etag>``,

and the version of a file is its ETag (the MD5 of its bytes on every common
server, so equal tokens mean equal bytes, as the interface asks). A server
that ignores those headers would silently lose updates:
:meth:`S3Storage.probe_conditional_writes` refuses it when a store is opened
for writing. The exclusive lock is a lease object (:mod:`sos.storage.s3.lease`); the
shared lock is a no-op. Clients and errors: :mod:`sos.storage.s3.client`.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sos.errors import Error
from sos.format.names import RESERVED_DIR
from sos.storage.base import Storage, Version
from sos.storage.pool import pool_size
from sos.storage.s3 import client as client_
from sos.storage.s3.bulk import BulkRequests
from sos.storage.s3.client import SERVICE_ERRORS, ClientError, is_missing, is_precondition, quoted
from sos.storage.s3.lease import DEFAULT_LEASE_SECONDS, Lease
from sos.storage.s3.options import S3Options, split_url

#: How old an orphan item object must be before ``sos check --repair`` may
#: move it to ``lost+found/`` on object storage: an appender writes its items
#: first and its ``order.txt`` compare-and-swap after, possibly after retries,
#: and there is no lock to tell a live appender from a dead one.
ORPHAN_GRACE_SECONDS = 3600.0


# AWS answers 409 ConditionalRequestConflict when two conditional writes race
# on one key: the loser retries (botocore does not).
_CONFLICT_RETRIES = 10


# Codes of a server that does not implement conditional requests at all.
_UNSUPPORTED = frozenset({"NotImplemented", "501"})


# (pid, endpoint, bucket) whose server passed the probe in this process.
_probed: set[tuple[int, str, str]] = set()


class S3Storage(BulkRequests, Storage):
    """A store under ``s3://bucket/prefix``: objects ``prefix/<name>``."""

    #: Orphans younger than this are left alone by ``check --repair``.
    orphan_grace: float = ORPHAN_GRACE_SECONDS

    def __init__(
        self, url: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, **options: Any
    ) -> None:
        """``options`` (and the URL's query: ``?endpoint=…&profile=…``) set
        this store's endpoint, profile, region, credentials and pool size
        over the standard AWS configuration (:mod:`sos.storage.s3.options`)."""
        url, query = split_url(url)
        self.bucket, self.prefix = client_.parse_url(url)
        self._options = S3Options.build(url, query, options)
        self._pool = self._options.pool or pool_size(None, url)
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._lease = Lease(self, lease_seconds)
        self._client_lock = threading.Lock()
        self._client_value: Any = None
        self._client_pid = -1
        self._client_release = None

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r})"

    @property
    def lease_seconds(self) -> float:
        return self._lease.seconds

    # -- plumbing ------------------------------------------------------------------

    # -- reads -----------------------------------------------------------------------

    def read(self, name: str) -> bytes:
        return self.read_versioned(name)[0]

    def read_versioned(self, name: str) -> tuple[bytes, Version]:
        response = self.get_object(name)
        if not response:
            raise self._missing(name)
        return response["Data"], quoted(response["ETag"])

    def read_if_changed(self, name: str, version: Version | None) -> tuple[bytes, Version] | None:
        if version is None:
            return self.read_versioned(name)
        response = self.get_object(name, IfNoneMatch=str(version))
        if response is None:
            raise self._missing(name)
        if not response:
            return None
        return response["Data"], quoted(response["ETag"])

    def version(self, name: str) -> Version | None:
        head = self._head(name)
        return None if head is None else quoted(head["ETag"])

    def modified(self, name: str) -> float | None:
        """When ``name`` was last written (the server's clock, Unix seconds),
        or None if it does not exist."""
        head = self._head(name)
        return None if head is None else head["LastModified"].timestamp()

    def age(self, name: str) -> float | None:
        """Seconds since ``name`` was last written, or None if it does not
        exist: one HEAD, judged on the server's clock alone (its Date minus
        the object's Last-Modified, whole seconds), so this machine's clock
        does not matter. ``check --repair`` leaves orphans younger than
        :attr:`orphan_grace` alone."""
        head = self._head(name)
        return None if head is None else client_.age(head)

    def list(self, directory: str = "") -> builtins.list[str]:
        found = self.list_directory(directory)  # a "folder" marker is not an entry
        return found[0] if found is not None else []

    def list_versions(
        self, directory: str = "", wanted: Callable[[str], bool] | None = None
    ) -> dict[str, Version]:
        """The files directly in ``directory`` with their versions: the ETags
        a LIST returns anyway, so watching a store polls with LIST pages and
        no request per document (``wanted`` filters nothing: the listing has
        them all). The same tokens as :meth:`version`."""
        prefix = self._dir_prefix(directory)
        return {
            item["Key"][len(prefix) :]: quoted(item["ETag"])
            for page in self._pages(prefix, delimiter=True)
            for item in page.get("Contents", ())
            if item["Key"] != prefix
        }

    def walk(self, directory: str = "") -> Iterator[str]:
        """Every file below ``directory``: one paginated LIST, not one per
        directory, in key order (UTF-8 byte order, the same as the
        depth-first sorted order unless a name extends a directory's name
        with a character below ``/``). Memory stays flat in the store's size."""
        prefix = self._dir_prefix(directory)
        strip = len(self._root)
        for page in self._pages(prefix, delimiter=False):
            for item in page.get("Contents", ()):
                key = item["Key"]
                if not key.endswith("/"):
                    yield key[strip:]

    def is_dir(self, name: str) -> bool:
        """True if anything is under ``name/``, a directory marker included:
        a directory holding only its marker is an empty directory (SeaweedFS
        lists one that way once its last object is deleted)."""
        page = self._first(self._key(name) + "/", name)
        return bool(page.get("Contents") or page.get("CommonPrefixes"))

    def list_directory(self, directory: str) -> tuple[builtins.list[str], int | None] | None:
        """One delimited LIST (one page per 1,000 entries) answers
        :meth:`is_dir`, :meth:`list` and :meth:`marker` together: the
        marker is the entry named ``directory/`` itself."""
        prefix = self._dir_prefix(directory)
        entries: set[str] = set()
        marker = None
        found = False
        for page in self._pages(prefix, delimiter=True):
            for item in page.get("Contents", ()):
                found = True
                if item["Key"] == prefix:
                    marker = int(item.get("Size", 0)) if prefix else None
                else:
                    entries.add(item["Key"][len(prefix) :])
            for common in page.get("CommonPrefixes", ()):
                found = True
                entries.add(common["Prefix"][len(prefix) : -1])
        return (builtins.list(entries), marker) if found else None

    # -- directory markers ---------------------------------------------------------

    def marker(self, directory: str = "") -> int | None:
        """The size of ``directory``'s "folder" marker (the object named
        ``directory/``: the AWS console, rclone, s3fs and SeaweedFS leave
        them), or None if it has none. Readers never see one (:meth:`list`,
        :meth:`walk`, :meth:`list_versions` skip it); ``sos check --repair``
        removes the empty ones of a store's root and fan-out directories."""
        prefix = self._dir_prefix(directory)
        if not prefix:  # the bucket's root: no object has an empty key
            return None
        for item in self._first(prefix, directory or None).get("Contents", ()):
            if item["Key"] == prefix:
                return int(item.get("Size", 0))
        return None

    def remove_marker(self, directory: str = "") -> bool:
        """Remove ``directory``'s marker if it is an empty object; True if one was.

        A plain DELETE: a server's implicit marker (SeaweedFS) has no ETag a
        condition could name, and no data file can have a name ending in
        ``/``. Objects under the directory are untouched (on SeaweedFS too,
        where the marker stands for the directory itself)."""
        if self.marker(directory) != 0:
            return False
        prefix = self._dir_prefix(directory)
        self._call(
            "remove",
            directory or None,
            lambda: self._client.delete_object(Bucket=self.bucket, Key=prefix),
        )
        return True

    # -- writes ----------------------------------------------------------------------

    def put_object(self, name: str, data: bytes, **conditions: str) -> str | None:
        """PUT ``name``: its new ETag, or None if a condition failed (412)."""
        key = self._key(name)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                response = self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, **conditions
                )
                return quoted(response["ETag"])
            except ClientError as exc:
                if conditions and client_.code(exc) == "ConditionalRequestConflict":
                    time.sleep(0.01 * (attempt + 1))
                    continue
                if conditions and (is_precondition(exc) or is_missing(exc)):
                    if client_.retried(exc) and self._holds(name, data):
                        # botocore retried a PUT whose first try landed; the
                        # 412 is our own write, not a lost race.
                        return str(self.version(name))
                    return None
                if conditions and client_.code(exc) in _UNSUPPORTED:
                    self._refuse(f"does not implement conditional PUT ({client_.code(exc)})")
                raise self._error(exc, "write", name) from None
            except SERVICE_ERRORS as exc:
                raise self._error(exc, "write", name) from None
        raise Error(f"{self._where(name)}: conflicting conditional writes did not settle")

    def _holds(self, name: str, data: bytes) -> bool:
        """True if ``name`` holds exactly ``data`` (an ETag is the MD5 of a
        single-part object's bytes)."""
        version = self.version(name)
        return version == f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'

    def write(self, name: str, data: bytes) -> None:
        self.put_object(name, data)

    def write_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        self._parallel([functools.partial(self.put_object, n, d) for n, d in entries])

    def write_if_absent(self, name: str, data: bytes) -> bool:
        return self.put_object(name, data, IfNoneMatch="*") is not None

    def write_if_version(self, name: str, data: bytes, version: Version) -> bool:
        if version is None:
            return self.write_if_absent(name, data)
        return self.put_object(name, data, IfMatch=str(version)) is not None

    def delete_object(self, name: str, **conditions: str) -> bool:
        """DELETE ``name``; False if a condition failed (412, or 404)."""
        key = self._key(name)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.delete_object(Bucket=self.bucket, Key=key, **conditions)
                return True
            except ClientError as exc:
                if conditions and client_.code(exc) == "ConditionalRequestConflict":
                    time.sleep(0.01 * (attempt + 1))
                    continue
                if conditions and (is_precondition(exc) or is_missing(exc)):
                    # A retried conditional DELETE whose first try landed
                    # answers 412/404 too; the object is gone either way.
                    return client_.retried(exc) and self.version(name) is None
                if conditions and client_.code(exc) in _UNSUPPORTED:
                    self._refuse(f"does not implement conditional DELETE ({client_.code(exc)})")
                raise self._error(exc, "remove", name) from None
            except SERVICE_ERRORS as exc:
                raise self._error(exc, "remove", name) from None
        raise Error(f"{self._where(name)}: conflicting conditional deletes did not settle")

    def _remove_one(self, name: str) -> bool:
        """Remove ``name`` if it exists; True if this call removed it.

        A plain DELETE answers 204 whether or not the object existed, so the
        ETag is looked up and the DELETE made conditional on it: of two
        clients removing one file, exactly one is told it existed.
        """
        while True:
            version = self.version(name)
            if version is None:
                return False
            if self.delete_object(name, IfMatch=str(version)):
                return True

    def remove(self, names: Iterable[str]) -> builtins.list[str]:
        unique = builtins.list(dict.fromkeys(names))
        removed = self._parallel([functools.partial(self._remove_one, n) for n in unique])
        return [name for name, gone in zip(unique, removed, strict=True) if gone]

    def remove_if_version(self, name: str, version: Version) -> bool:
        return self.delete_object(name, IfMatch=str(version))

    def move(self, source: str, target: str) -> None:
        """CopyObject (atomic for ``target``), then DELETE of ``source``."""
        source_key, target_key = self._key(source), self._key(target)
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=target_key,
                CopySource={"Bucket": self.bucket, "Key": source_key},
            )
        except ClientError as exc:
            if is_missing(exc):
                raise self._missing(source) from None
            raise self._error(exc, f"copy to {target}", source) from None
        except SERVICE_ERRORS as exc:
            raise self._error(exc, f"copy to {target}", source) from None
        self.delete_object(source)

    def make_root(self) -> None:
        """Nothing to do: a prefix exists as soon as an object is under it."""

    # -- the store as a whole ----------------------------------------------------------

    def usage(self) -> Iterator[tuple[str, int, int | None]]:
        """Sizes from one paginated LIST; object storage has no disk blocks to count."""
        strip = len(self._root)
        for page in self._pages(self._root, delimiter=False):
            for item in page.get("Contents", ()):
                name = item["Key"][strip:]
                if not name or name.endswith("/"):  # a directory marker holds no data
                    continue
                if name.partition("/")[0] not in (RESERVED_DIR, ".git"):
                    yield name, int(item["Size"]), None

    def remove_all(self, *, keep_root: bool = False) -> None:
        """DELETE every object under the prefix, directory markers too."""
        keys = [
            item["Key"]
            for page in self._pages(self._root, delimiter=False)
            for item in page.get("Contents", ())
        ]

        def delete(key: str) -> None:
            name = key[len(self._root) :] or None
            self._call(
                "remove", name, lambda: self._client.delete_object(Bucket=self.bucket, Key=key)
            )

        self._parallel([functools.partial(delete, key) for key in keys])

    # -- the probe ---------------------------------------------------------------------

    def probe_conditional_writes(self) -> None:
        """Refuse a server that ignores conditional PUT or conditional DELETE.

        Such a server would accept a compare-and-swap that should have failed
        and silently lose a List update, so a store must not be written
        there. Costs six small requests on a scratch object under ``.sos/``,
        once per process, bucket and endpoint; raises :class:`~sos.Error`
        naming the server and the URL.
        """
        cache_key = (os.getpid(), self.endpoint, self.bucket)
        if cache_key in _probed:
            return
        name = f"{RESERVED_DIR}/probe-{secrets.token_hex(8)}"
        wrong = '"00000000000000000000000000000000"'
        try:
            if self.put_object(name, b"probe 1\n", IfNoneMatch="*") is None:
                self._refuse("answered 412 to If-None-Match: * on a new object")
            if self.put_object(name, b"probe 2\n", IfNoneMatch="*") is not None:
                self._refuse("ignores If-None-Match: * on PUT (it replaced an existing object)")
            if self.put_object(name, b"probe 3\n", IfMatch=wrong) is not None:
                self._refuse("ignores If-Match on PUT (it replaced an object with another ETag)")
            if self.delete_object(name, IfMatch=wrong) and self.version(name) is None:
                self._refuse("ignores If-Match on DELETE (it removed an object with another ETag)")
            current = self.version(name)
            if current is None or not self.delete_object(name, IfMatch=str(current)):
                self._refuse("refused a DELETE with If-Match on the object's own ETag")
        finally:
            with contextlib.suppress(*SERVICE_ERRORS):
                self._client.delete_object(Bucket=self.bucket, Key=self._key(name))
        _probed.add(cache_key)

    def appends_without_lock(self) -> bool:
        """True: an append is a conditional PUT of ``order.txt``, no lease."""
        return True

    def swap(self, name: str, data: bytes, version: Version | None) -> Version | None:
        """One conditional PUT; the new ETag comes with its answer."""
        if version is None:
            return self.put_object(name, data, IfNoneMatch="*")
        return self.put_object(name, data, IfMatch=str(version))

    def writers_wait_for_lock(self) -> bool:
        """False: a plain set is one PUT that does not look at the lease."""
        return False

    def prepare_for_writing(self) -> None:
        """Before a handle's first write: :meth:`probe_conditional_writes`."""
        self.probe_conditional_writes()

    def _refuse(self, what: str) -> None:
        server = client_.server_header(self._client, self.bucket)
        raise Error(
            f"{self.url}: the S3 server at {self.endpoint}{server} {what}. sos changes a "
            "store with conditional requests (If-None-Match and If-Match on PUT and "
            "DELETE) and refuses to write here rather than lose updates; reading works. "
            "Use a server that honours them (AWS S3, MinIO, SeaweedFS, Ceph RGW).",
            self.url,
        )

    # -- locking: the lease ------------------------------------------------------------

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        return self._lease.acquire(exclusive, blocking)

    def release(self) -> None:
        self._lease.release()

    def held(self) -> bool:
        return self._lease.held()

    def close(self) -> None:
        with self._client_lock:
            release, self._client_release = self._client_release, None
            self._client_value = None
        held = release.detach() if release is not None else None  # None: given back already
        if held is not None and self._client_pid == os.getpid():
            client_.release_client(held[2][0])



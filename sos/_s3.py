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
for writing.

The exclusive lock is a *lease*: the object ``.sos/lease``, created with
``If-None-Match: *``, holding its owner and its duration. A holder renews it
in the background while it holds it; a lease not renewed for its duration
(its holder died) is taken over with a conditional overwrite on its ETag. Its
age is judged on the server's clock alone (the response's ``Date`` minus the
object's ``Last-Modified``), so clients' clocks need not agree. The shared
lock is a no-op: single-object PUTs are atomic and readers need no lock.

Endpoint, credentials and region come from the standard AWS configuration
(environment, ``~/.aws``, ``AWS_ENDPOINT_URL``), as every S3 tool reads them.
Every failure of the service (a missing bucket, bad credentials, an
unreachable endpoint, throttling after botocore's own retries) is a
:class:`~sos.Error` naming the URL, never a botocore traceback.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import errno
import functools
import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

try:  # no stubs ship with boto3; "unused-ignore" for when types-boto3 is installed
    import boto3  # type: ignore[import-untyped,unused-ignore]
    import botocore.config  # type: ignore[import-untyped,unused-ignore]
    import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]
except ImportError as exc:  # pragma: no cover - depends on the installation
    from ._errors import Error

    raise Error("s3:// stores need boto3: pip install 'sos-store[s3]'", None) from exc

from ._errors import Error
from ._storage import RESERVED_DIR, Storage, Version, register_scheme

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "LEASE_NAME",
    "ORPHAN_GRACE_SECONDS",
    "S3Storage",
    "total_requests",
]

#: The exclusive lock's object, in the reserved name space.
LEASE_NAME = f"{RESERVED_DIR}/lease"
#: How long a lease lasts without renewal: how long a dead client can block
#: the store's exclusive lock. Renewed every third of it while held.
DEFAULT_LEASE_SECONDS = 30.0

#: How old an orphan item object must be before ``sos check --repair`` may
#: move it to ``lost+found/`` on object storage: an appender writes its items
#: first and its ``order.txt`` compare-and-swap after, possibly after retries,
#: and there is no lock to tell a live appender from a dead one.
ORPHAN_GRACE_SECONDS = 3600.0

# How many requests write_many and remove keep in flight at once.
_PARALLEL = 8
# botocore's own retry policy, unless AWS_RETRY_MODE / AWS_MAX_ATTEMPTS say
# otherwise: "standard" retries throttling (429, 503 SlowDown), 5xx and
# connection errors with exponential backoff and jitter.
_RETRY_MODE = "standard"
_MAX_ATTEMPTS = 5
# AWS answers 409 ConditionalRequestConflict when two conditional writes race
# on one key: the loser retries (botocore does not).
_CONFLICT_RETRIES = 10

_T = TypeVar("_T")

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "403",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequests",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "503",
        "429",
    }
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})


# -- the client ------------------------------------------------------------------

# A boto3 Session costs ~150 ms to make (it loads the service models) and a
# client from it ~7 ms, so sessions are kept per process and per AWS
# configuration in the environment (tests and users may change it), and each
# storage makes its own client (closed with the storage).
_sessions: dict[tuple[Any, ...], boto3.session.Session] = {}
_sessions_lock = threading.Lock()


def _configuration() -> tuple[Any, ...]:
    """What the standard AWS configuration is read from, as a cache key."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    files: list[tuple[str, int | None, int | None]] = []
    for variable, default in (
        ("AWS_CONFIG_FILE", "~/.aws/config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
    ):
        path = os.path.expanduser(os.environ.get(variable, default))
        try:
            stat = os.stat(path)
            files.append((path, stat.st_mtime_ns, stat.st_size))
        except OSError:
            files.append((path, None, None))
    return (os.getpid(), env, tuple(files))


def _new_client() -> Any:
    key = _configuration()
    with _sessions_lock:  # a Session is not safe to share while making clients
        session = _sessions.get(key)
        if session is None:
            _sessions.clear()  # other configurations, or a parent's after fork
            session = _sessions[key] = boto3.session.Session()
        retries: dict[str, Any] = {}
        if "AWS_RETRY_MODE" not in os.environ:
            retries["mode"] = _RETRY_MODE
        if "AWS_MAX_ATTEMPTS" not in os.environ:
            retries["max_attempts"] = _MAX_ATTEMPTS
        return session.client(
            "s3",
            config=botocore.config.Config(
                retries=retries or None,
                max_pool_connections=4 * _PARALLEL,
                connect_timeout=10,
                read_timeout=60,
                # Checksums only where S3 requires them: the small JSON
                # documents gain nothing and some S3-compatible servers choke.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def _quoted(etag: str) -> str:
    """ETags as HEAD returns them: in double quotes (CopyObject omits them)."""
    return etag if etag.startswith('"') or etag.startswith('W/"') else f'"{etag}"'


def _parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ("bucket", "some/prefix")."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        raise Error(f"{url}: not an s3:// URL", url)
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise Error(f"{url}: no bucket in the URL (s3://BUCKET/PREFIX)", url)
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise Error(f"{url}: the prefix may not hold empty, '.' or '..' parts", url)
    return bucket, prefix


# -- the storage -------------------------------------------------------------------


class S3Storage(Storage):
    """A store under ``s3://bucket/prefix``: objects ``prefix/<name>``."""

    #: Orphans younger than this are left alone by ``check --repair``.
    orphan_grace = ORPHAN_GRACE_SECONDS

    def __init__(self, url: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.bucket, self.prefix = _parse_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.lease_seconds = float(lease_seconds)
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._client_lock = threading.Lock()
        self._client_value: Any = None
        self._client_pid = -1
        #: HTTP requests sent (retries included): what the round-trip tests
        #: and the benchmark count. Approximate under threads (no lock).
        self.requests = 0
        # The exclusive lock: a thread lock inside the handle, the lease across
        # clients. ``_modes`` is each thread's stack of acquire() levels.
        self._mutex = threading.RLock()
        self._modes = threading.local()
        self._depth = 0
        self._lease_etag: str | None = None
        self._lease_lost = False
        self._renewer: threading.Thread | None = None
        self._renew_stop = threading.Event()
        self._renew_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r})"

    # -- plumbing ------------------------------------------------------------------

    @property
    def _client(self) -> Any:
        """This process's client (after ``fork`` the child makes its own: a
        connection pool must not be shared between processes)."""
        pid = os.getpid()
        if self._client_value is None or self._client_pid != pid:
            with self._client_lock:
                if self._client_value is None or self._client_pid != pid:
                    client = _new_client()
                    client.meta.events.register("before-send.s3", self._count_request)
                    self._client_value = client
                    self._client_pid = pid
        return self._client_value

    def _count_request(self, **_: Any) -> None:
        global _total_requests
        self.requests += 1
        _total_requests += 1

    @property
    def endpoint(self) -> str:
        """The server messages name: the endpoint URL the client speaks to."""
        try:
            return str(self._client.meta.endpoint_url)
        except Exception:  # only for messages
            return "the S3 endpoint"

    def _key(self, name: str) -> str:
        """The object key of ``name``; refuses names that leave the store."""
        if not name or name.startswith("/") or name.endswith("/"):
            raise Error(f"{self.url}: bad name {name!r} (empty, or a leading or trailing '/')")
        if any(part in ("", ".", "..") for part in name.split("/")):
            raise Error(f"{self.url}: bad name {name!r} (empty, '.' or '..' parts)")
        return self._root + name

    def _dir_prefix(self, directory: str) -> str:
        """The key prefix of the entries of ``directory`` ("" is the store's root)."""
        return self._root if directory == "" else self._key(directory) + "/"

    def _where(self, name: str | None) -> str:
        return self.url if name is None else f"{self.url}/{name}"

    def _error(self, exc: Exception, action: str, name: str | None = None) -> Error:
        """One clear sos.Error for a failure of the service, naming the URL."""
        where = self._where(name)
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status, message = _code(exc), _status(exc), _message(exc)
            if code == "NoSuchBucket":
                text = f"{where}: there is no bucket {self.bucket!r} at {self.endpoint}"
            elif code in _ACCESS_CODES:
                text = (
                    f"{where}: {self.endpoint} refused the credentials or the permission "
                    f"to {action} ({code}{': ' + message if message else ''}); check "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws"
                )
            elif code in _THROTTLE_CODES:
                attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
                text = (
                    f"{where}: {self.endpoint} is throttling requests ({code}, HTTP "
                    f"{status}) and still was after {attempts + 1} attempts; try again later"
                )
            else:
                text = (
                    f"{where}: could not {action}: {code}"
                    f"{': ' + message if message else ''} (HTTP {status} from {self.endpoint})"
                )
        elif isinstance(exc, botocore.exceptions.NoCredentialsError):
            text = (
                f"{where}: no AWS credentials found (environment, AWS_PROFILE, ~/.aws); "
                "sos reads the standard AWS configuration"
            )
        elif isinstance(
            exc,
            (
                botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionError,
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ReadTimeoutError,
            ),
        ):
            text = f"{where}: cannot reach the S3 endpoint {self.endpoint} to {action}: {exc}"
        else:
            text = f"{where}: could not {action}: {exc}"
        return Error(text, where)

    def _call(self, action: str, name: str | None, fn: Callable[[], _T]) -> _T:
        """Run one request; service failures become :class:`~sos.Error`."""
        try:
            return fn()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._error(exc, action, name) from None

    def _missing(self, name: str) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, "no such object", self._where(name))

    # -- reads -----------------------------------------------------------------------

    def _get(self, name: str, **conditions: str) -> dict[str, Any] | None:
        """GET ``name``: the response with its body read, None if missing,
        ``{}`` for 304 Not Modified."""
        key = self._key(name)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, **conditions)
            response["Data"] = response["Body"].read()
            return dict(response)
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if code in _MISSING_CODES:
                return None
            if code == "304" or _status(exc) == 304:
                return {}
            raise self._error(exc, "read", name) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "read", name) from None

    def read(self, name: str) -> bytes:
        return self.read_versioned(name)[0]

    def read_versioned(self, name: str) -> tuple[bytes, Version]:
        response = self._get(name)
        if not response:
            raise self._missing(name)
        return response["Data"], _quoted(response["ETag"])

    def read_if_changed(self, name: str, version: Version | None) -> tuple[bytes, Version] | None:
        if version is None:
            return self.read_versioned(name)
        response = self._get(name, IfNoneMatch=str(version))
        if response is None:
            raise self._missing(name)
        if not response:
            return None
        return response["Data"], _quoted(response["ETag"])

    def _head(self, name: str) -> dict[str, Any] | None:
        key = self._key(name)
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=key))
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise self._error(exc, "look up", name) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "look up", name) from None

    def version(self, name: str) -> Version | None:
        head = self._head(name)
        return None if head is None else _quoted(head["ETag"])

    def modified(self, name: str) -> float | None:
        """When ``name`` was last written (the server's clock, Unix seconds),
        or None if it does not exist: ``check`` gives orphans an age grace."""
        head = self._head(name)
        return None if head is None else head["LastModified"].timestamp()

    def _pages(self, prefix: str, delimiter: bool) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = "/"
        pages = iter(paginator.paginate(**arguments))
        while True:
            page = self._call("list", prefix.rstrip("/") or None, lambda: next(pages, None))
            if page is None:
                return
            yield page

    def list(self, directory: str = "") -> list[str]:
        prefix = self._dir_prefix(directory)
        entries: set[str] = set()
        for page in self._pages(prefix, delimiter=True):
            for item in page.get("Contents", ()):
                entries.add(item["Key"][len(prefix) :])
            for common in page.get("CommonPrefixes", ()):
                entries.add(common["Prefix"][len(prefix) : -1])
        entries.discard("")  # a "folder" marker object some tools create
        return list(entries)

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
        prefix = self._key(name) + "/"
        page = self._call(
            "list",
            name,
            lambda: self._client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1),
        )
        return bool(page.get("KeyCount") or page.get("Contents"))

    # -- writes ----------------------------------------------------------------------

    def _put(self, name: str, data: bytes, **conditions: str) -> str | None:
        """PUT ``name``: its new ETag, or None if a condition failed (412)."""
        key = self._key(name)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                response = self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, **conditions
                )
                return _quoted(response["ETag"])
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if conditions and code == "ConditionalRequestConflict":
                    time.sleep(0.01 * (attempt + 1))
                    continue
                if conditions and (code in _PRECONDITION_CODES or code in _MISSING_CODES):
                    if _retried(exc) and self._holds(name, data):
                        # botocore retried a PUT whose first try landed; the
                        # 412 is our own write, not a lost race.
                        return self.version(name)  # type: ignore[return-value]
                    return None
                raise self._error(exc, "write", name) from None
            except botocore.exceptions.BotoCoreError as exc:
                raise self._error(exc, "write", name) from None
        raise Error(f"{self._where(name)}: conflicting conditional writes did not settle")

    def _holds(self, name: str, data: bytes) -> bool:
        """True if ``name`` holds exactly ``data`` (an ETag is the MD5 of a
        single-part object's bytes)."""
        version = self.version(name)
        return version == f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'

    def write(self, name: str, data: bytes) -> None:
        self._put(name, data)

    def write_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        self._parallel([functools.partial(self._put, n, d) for n, d in entries])

    def write_if_absent(self, name: str, data: bytes) -> bool:
        return self._put(name, data, IfNoneMatch="*") is not None

    def write_if_version(self, name: str, data: bytes, version: Version) -> bool:
        if version is None:
            return self.write_if_absent(name, data)
        return self._put(name, data, IfMatch=str(version)) is not None

    def _delete(self, name: str, **conditions: str) -> bool:
        """DELETE ``name``; False if a condition failed (412, or 404)."""
        key = self._key(name)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.delete_object(Bucket=self.bucket, Key=key, **conditions)
                return True
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if conditions and code == "ConditionalRequestConflict":
                    time.sleep(0.01 * (attempt + 1))
                    continue
                if conditions and (code in _PRECONDITION_CODES or code in _MISSING_CODES):
                    # A retried conditional DELETE whose first try landed
                    # answers 412/404 too; the object is gone either way.
                    return _retried(exc) and self.version(name) is None
                raise self._error(exc, "remove", name) from None
            except botocore.exceptions.BotoCoreError as exc:
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
            if self._delete(name, IfMatch=str(version)):
                return True

    def remove(self, names: Iterable[str]) -> builtins.list[str]:
        unique = builtins.list(dict.fromkeys(names))
        removed = self._parallel([functools.partial(self._remove_one, n) for n in unique])
        return [name for name, gone in zip(unique, removed, strict=True) if gone]

    def remove_if_version(self, name: str, version: Version) -> bool:
        return self._delete(name, IfMatch=str(version))

    def move(self, source: str, target: str) -> None:
        """CopyObject (atomic for ``target``), then DELETE of ``source``."""
        source_key, target_key = self._key(source), self._key(target)
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=target_key,
                CopySource={"Bucket": self.bucket, "Key": source_key},
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise self._missing(source) from None
            raise self._error(exc, f"copy to {target}", source) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, f"copy to {target}", source) from None
        self._delete(source)

    def make_root(self) -> None:
        """Nothing to do: a prefix exists as soon as an object is under it."""

    def _parallel(self, calls: Sequence[Callable[[], _T]]) -> builtins.list[_T]:
        """Run ``calls`` a few at a time; all finish before the first error is raised."""
        if len(calls) <= 1:
            return [call() for call in calls]
        with concurrent.futures.ThreadPoolExecutor(min(_PARALLEL, len(calls))) as pool:
            futures = [pool.submit(call) for call in calls]
            concurrent.futures.wait(futures)
        return [future.result() for future in futures]

    # -- the probe ---------------------------------------------------------------------

    def probe_conditional_writes(self) -> None:
        """Refuse a server that ignores conditional PUT or conditional DELETE.

        Such a server would accept a compare-and-swap that should have failed
        and silently lose a List update, so a store must not be written
        there. Costs five small requests on a scratch object under ``.sos/``,
        once per process, bucket and endpoint; raises :class:`~sos.Error`
        naming the server and the URL.
        """
        cache_key = (os.getpid(), self.endpoint, self.bucket)
        if cache_key in _probed:
            return
        name = f"{RESERVED_DIR}/probe-{secrets.token_hex(8)}"
        key = self._key(name)
        wrong = '"00000000000000000000000000000000"'
        try:
            first = self._probe_put(key, b"probe 1\n", IfNoneMatch="*")
            if first is None:
                self._refuse("answered 412 to If-None-Match: * on a new object")
            if self._probe_put(key, b"probe 2\n", IfNoneMatch="*") is not None:
                self._refuse("ignores If-None-Match: * on PUT (it replaced an existing object)")
            if self._probe_put(key, b"probe 3\n", IfMatch=wrong) is not None:
                self._refuse("ignores If-Match on PUT (it replaced an object with another ETag)")
            if self._probe_delete(key, IfMatch=wrong) and self.version(name) is None:
                self._refuse("ignores If-Match on DELETE (it removed an object with another ETag)")
            current = self.version(name)
            if current is None or not self._probe_delete(key, IfMatch=str(current)):
                self._refuse("refused a DELETE with If-Match on the object's own ETag")
        finally:
            with _suppress_service_errors():
                self._client.delete_object(Bucket=self.bucket, Key=key)
        _probed.add(cache_key)

    def _probe_put(self, key: str, data: bytes, **conditions: str) -> str | None:
        try:
            response = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **conditions)
            return str(response["ETag"])
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _PRECONDITION_CODES or _code(exc) in _MISSING_CODES:
                return None
            if _code(exc) in ("NotImplemented", "501", "InvalidArgument", "400"):
                self._refuse(f"does not support conditional PUT ({_code(exc)})")
            raise self._error(exc, "write", RESERVED_DIR) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "write", RESERVED_DIR) from None

    def _probe_delete(self, key: str, **conditions: str) -> bool:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key, **conditions)
            return True
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _PRECONDITION_CODES or _code(exc) in _MISSING_CODES:
                return False
            if _code(exc) in ("NotImplemented", "501", "InvalidArgument", "400"):
                self._refuse(f"does not support conditional DELETE ({_code(exc)})")
            raise self._error(exc, "remove", RESERVED_DIR) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "remove", RESERVED_DIR) from None

    def _refuse(self, what: str) -> None:
        server = _server_header(self._client, self.bucket)
        raise Error(
            f"{self.url}: the S3 server at {self.endpoint}{server} {what}. sos changes a "
            "store with conditional requests (If-None-Match and If-Match on PUT and "
            "DELETE) and refuses to write here rather than lose updates; reading works. "
            "Use a server that honours them (AWS S3, MinIO, SeaweedFS, Ceph RGW).",
            self.url,
        )

    # -- locking: the lease --------------------------------------------------------------

    def _stack(self) -> builtins.list[bool]:
        stack: builtins.list[bool] | None = getattr(self._modes, "stack", None)
        if stack is None:
            stack = self._modes.stack = []
        return stack

    def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
        if not exclusive:  # single-object PUTs are atomic: readers need no lock
            self._stack().append(False)
            return True
        if not self._mutex.acquire(blocking):
            return False
        try:
            if self._depth == 0 and not self._take_lease(blocking):
                self._mutex.release()
                return False
        except BaseException:
            self._mutex.release()
            raise
        self._depth += 1
        self._stack().append(True)
        return True

    def release(self) -> None:
        stack = self._stack()
        if not stack:
            raise RuntimeError(f"{self.url}: release() without acquire()")
        if not stack.pop():
            return
        try:
            self._depth -= 1
            if self._depth == 0:
                self._drop_lease()
        finally:
            self._mutex.release()

    def _lease_body(self) -> bytes:
        """Unique per write, so that each lease version has its own ETag."""
        return json.dumps(
            {
                "owner": secrets.token_hex(8),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "seconds": self.lease_seconds,
            }
        ).encode()

    def _take_lease(self, blocking: bool) -> bool:
        delay = 0.005
        while True:
            etag = self._put(LEASE_NAME, self._lease_body(), IfNoneMatch="*")
            if etag is None:
                etag = self._take_over_stale()
            if etag is not None:
                self._lease_etag, self._lease_lost = etag, False
                self._start_renewing()
                return True
            if not blocking:
                return False
            time.sleep(delay * (0.5 + secrets.randbelow(1000) / 1000))
            delay = min(delay * 1.5, 0.25)

    def _take_over_stale(self) -> str | None:
        """Overwrite the current lease if it outlived its duration; its new
        ETag if we took it, None if it is live (or changed meanwhile)."""
        response = self._get(LEASE_NAME)
        if response is None:
            return None  # released meanwhile: the next PUT may win
        age = _age(response)
        try:
            seconds = float(json.loads(response["Data"])["seconds"])
        except (ValueError, KeyError, TypeError):
            seconds = self.lease_seconds  # unreadable lease: judged by our duration
        # HTTP dates have whole seconds: one more absorbs their rounding.
        if age is None or age <= seconds + 1:
            return None
        return self._put(LEASE_NAME, self._lease_body(), IfMatch=_quoted(response["ETag"]))

    def _start_renewing(self) -> None:
        self._renew_stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_loop,
            args=(self._renew_stop,),
            name=f"sos lease {self.url}",
            daemon=True,
        )
        self._renewer.start()

    def _renew_loop(self, stop: threading.Event) -> None:
        """Keep our lease fresh while held: a live holder is never stale."""
        while not stop.wait(self.lease_seconds / 3):
            with self._renew_lock:
                if stop.is_set() or self._lease_etag is None:
                    return
                try:
                    etag = self._put(LEASE_NAME, self._lease_body(), IfMatch=self._lease_etag)
                except Error:
                    continue  # a passing network failure: try again next time
                if etag is None:
                    self._lease_lost = True
                    return
                self._lease_etag = etag

    def _drop_lease(self) -> None:
        self._renew_stop.set()
        with self._renew_lock:
            etag, lost = self._lease_etag, self._lease_lost
            self._lease_etag = None
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
            self._renewer = None
        if etag is None:
            return
        if lost or not self._delete(LEASE_NAME, IfMatch=etag):
            raise Error(
                f"{self.url}: the store's lease ({LEASE_NAME}) expired while held and another "
                f"client took it over; the last change under it may have interleaved with "
                f"theirs (lease duration {self.lease_seconds:g} s)",
                self.url,
            )

    def close(self) -> None:
        with self._client_lock:
            client, self._client_value = self._client_value, None
        if client is not None and self._client_pid == os.getpid():
            client.close()


_total_requests = 0


def total_requests() -> int:
    """HTTP requests sent by every S3 storage of this process (the benchmark's
    round-trip count; approximate under threads)."""
    return _total_requests


# (pid, endpoint, bucket) whose server passed the probe in this process.
_probed: set[tuple[int, str, str]] = set()


class _suppress_service_errors:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        return isinstance(exc, (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError))


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _message(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "") or "")


def _retried(exc: botocore.exceptions.ClientError) -> bool:
    return bool(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))


def _age(response: dict[str, Any]) -> float | None:
    """Seconds since the object was written, on the server's clock."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    modified = response.get("LastModified")
    if not date or modified is None:
        return None
    try:
        return float((parsedate_to_datetime(date) - modified).total_seconds())
    except (TypeError, ValueError):
        return None


def _server_header(client: Any, bucket: str) -> str:
    """`` (Server: name)`` as the server calls itself, for messages."""
    try:
        response = client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        server = response["ResponseMetadata"]["HTTPHeaders"].get("server")
    except Exception:  # only for the message
        return ""
    return f" (Server: {server})" if server else ""


register_scheme("s3", S3Storage)

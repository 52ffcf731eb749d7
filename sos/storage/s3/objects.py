"""Requests to one prefix of a bucket, with errors that name the URL."""

from __future__ import annotations

import builtins
import concurrent.futures
import errno
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sos.errors import Error
from sos.storage.s3 import client as client_
from sos.storage.s3.client import SERVICE_ERRORS, ClientError, is_missing
from sos.storage.s3.options import S3Options

_T = TypeVar("_T")

#: Keys per LIST page asked for: S3's most (its default too).
PAGE_SIZE = 1000


class ObjectRequests:
    """Requests to one prefix of one bucket: this process's client, object
    keys, and service failures turned into :class:`~sos.Error` naming the
    URL. :class:`~sos.storage.s3.storage.S3Storage` builds the storage
    interface on them (it sets the attributes declared here)."""

    url: str
    bucket: str
    _root: str
    _client_lock: threading.Lock
    _client_value: Any
    _client_pid: int
    _client_release: weakref.finalize[Any, Any] | None
    _options: S3Options
    #: Requests kept in flight by the many-at-once methods (``SOS_S3_POOL``).
    _pool: int

    @property
    def _client(self) -> Any:
        """This process's client, shared with this process's other stores of
        the same configuration (after ``fork`` the child takes its own: a
        connection pool must not be shared between processes)."""
        pid = os.getpid()
        if self._client_value is None or self._client_pid != pid:
            with self._client_lock:
                if self._client_value is None or self._client_pid != pid:
                    if self._client_release is not None:  # the parent's, before fork
                        self._client_release.detach()
                    client = client_.shared_client(self._options, self._pool)
                    # given back by close(), or when this storage is collected
                    self._client_release = weakref.finalize(
                        self, client_.release_collected, client
                    )
                    self._client_release.atexit = False
                    self._client_value = client
                    self._client_pid = pid
        return self._client_value

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
        error = client_.describe(exc, self._where(name), action, self.endpoint, self.bucket)
        text = error.message
        for secret in self._options.secrets():  # whatever a server echoed back
            text = text.replace(secret, "***")
        return error if text == error.message else Error(text, error.path)

    def _call(self, action: str, name: str | None, fn: Callable[[], _T]) -> _T:
        """Run one request; service failures become :class:`~sos.Error`."""
        try:
            return fn()
        except SERVICE_ERRORS as exc:
            raise self._error(exc, action, name) from None

    def _missing(self, name: str) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, "no such object", self._where(name))

    def get_object(self, name: str, **conditions: str) -> dict[str, Any] | None:
        """GET ``name``: the response with its body read, None if missing,
        ``{}`` for 304 Not Modified."""
        key = self._key(name)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, **conditions)
            response["Data"] = response["Body"].read()
            return dict(response)
        except ClientError as exc:
            if is_missing(exc):
                return None
            if client_.code(exc) == "304":
                return {}
            raise self._error(exc, "read", name) from None
        except SERVICE_ERRORS as exc:
            raise self._error(exc, "read", name) from None

    def _head(self, name: str) -> dict[str, Any] | None:
        key = self._key(name)
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise self._error(exc, "look up", name) from None
        except SERVICE_ERRORS as exc:
            raise self._error(exc, "look up", name) from None

    def _pages(self, prefix: str, delimiter: bool) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = "/"
        pages = iter(paginator.paginate(**arguments, PaginationConfig={"PageSize": PAGE_SIZE}))
        while True:
            page = self._call("list", prefix.rstrip("/") or None, lambda: next(pages, None))
            if page is None:
                return
            yield page

    def _first(self, prefix: str, name: str | None) -> dict[str, Any]:
        """One delimited LIST page of at most one entry under ``prefix``. A
        marker ``prefix`` itself sorts first; SeaweedFS shows the marker of an
        empty directory only in a delimited listing."""
        return dict(
            self._call(
                "list",
                name,
                lambda: self._client.list_objects_v2(
                    Bucket=self.bucket, Prefix=prefix, Delimiter="/", MaxKeys=1
                ),
            )
        )

    def _parallel(self, calls: Sequence[Callable[[], _T]]) -> builtins.list[_T]:
        """Run ``calls`` :attr:`_pool` at a time; all finish before the first error is raised."""
        if len(calls) <= 1:
            return [call() for call in calls]
        with concurrent.futures.ThreadPoolExecutor(min(self._pool, len(calls))) as pool:
            futures = [pool.submit(call) for call in calls]
            concurrent.futures.wait(futures)
        return [future.result() for future in futures]

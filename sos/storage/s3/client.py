"""The boto3 side of the S3 storage: making clients, and reading their errors.

Endpoint, credentials and region come from the standard AWS configuration
(environment, ``~/.aws``, ``AWS_ENDPOINT_URL``), as every S3 tool reads them;
retries follow botocore's own policy. Every failure of the service becomes
one :class:`~sos.Error` naming the URL (:func:`describe`), never a botocore
traceback.
"""

from __future__ import annotations

import collections
import datetime
import os
import threading
from email.utils import parsedate_to_datetime
from typing import Any

try:  # no stubs ship with boto3; "unused-ignore" for when types-boto3 is installed
    import boto3  # type: ignore[import-untyped,unused-ignore]
    import botocore.config  # type: ignore[import-untyped,unused-ignore]
    import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]
    import botocore.loaders  # type: ignore[import-untyped,unused-ignore]
    import botocore.session  # type: ignore[import-untyped,unused-ignore]
    import botocore.utils  # type: ignore[import-untyped,unused-ignore]
except ImportError as exc:  # pragma: no cover - depends on the installation
    from sos.errors import Error

    raise Error("s3:// stores need boto3: pip install 'sos-store[s3]'", None) from exc

from sos.errors import Error
from sos.storage.s3.options import S3Options

__all__ = [
    "SERVICE_ERRORS",
    "ClientError",
    "age",
    "close_idle_clients",
    "code",
    "describe",
    "is_missing",
    "is_precondition",
    "new_client",
    "parse_url",
    "quoted",
    "release_client",
    "release_collected",
    "retried",
    "server_header",
    "shared_client",
    "total_requests",
]

ClientError = botocore.exceptions.ClientError
#: What a request can raise that :func:`describe` turns into a sos.Error.
SERVICE_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)

#: How many requests may be in flight on one client at once.
MAX_CONNECTIONS = 32
# botocore's own retry policy, unless AWS_RETRY_MODE / AWS_MAX_ATTEMPTS say
# otherwise: "standard" retries throttling (429, 503 SlowDown), 5xx and
# connection errors with exponential backoff and jitter.
_RETRY_MODE = "standard"
_MAX_ATTEMPTS = 5

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
# The endpoint could not be reached, or the connection broke before the
# response was whole (HTTPClientError: closed, timed out, or cut while the
# body streamed, as when a gateway stops mid-request).
_CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,
)


# -- clients ----------------------------------------------------------------------

# A boto3 Session's first client costs ~70-150 ms (it parses the service
# model, endpoints and rule set from JSON) and a later one ~5 ms, so sessions
# are kept per process and per AWS configuration in the environment (tests and
# users may change it), every session reads the models through one shared
# loader (its cache makes a new session's first client ~10 ms). A client
# still costs ~13 ms of CPU (endpoint rules, event hooks, a class of 100
# methods), and botocore's clients are thread-safe, so the stores of one
# process that share a configuration share one client (:func:`shared_client`):
# opening a store costs no client, and a few idle ones are kept for the next.
_sessions: dict[tuple[Any, ...], Any] = {}
#: (configuration, options, pool) -> [client, stores using it]; least recently used first.
_clients: dict[tuple[Any, ...], list[Any]] = {}
_MAX_IDLE_CLIENTS = 4
_loader: Any = None
_MAX_SESSIONS = 16  # per-store options make one each; a long-running process keeps few
_sessions_lock = threading.Lock()
_total_requests = 0
# Clients of stores collected without close(): their finalizer runs wherever
# the garbage collector does, maybe while this very thread holds
# _sessions_lock, so it only appends here (atomic) and the next call that
# takes the lock gives them back.
_collected: collections.deque[Any] = collections.deque()


def _after_fork_in_child() -> None:
    """A child starts with no client (their sockets are the parent's) and a
    free lock (another thread of the parent may have held it)."""
    global _sessions_lock
    _sessions_lock = threading.Lock()
    _clients.clear()
    _collected.clear()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


#: Read by botocore when it makes a client, besides AWS_*: proxies (any case)
#: and certificate bundles.
_CLIENT_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


def _configuration() -> tuple[Any, ...]:
    """What the standard AWS configuration is read from, as a cache key."""
    env = tuple(
        sorted(
            (k, v)
            for k, v in os.environ.items()
            if k.startswith("AWS_") or k.lower().endswith("_proxy") or k in _CLIENT_VARIABLES
        )
    )
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


def _timestamp(value: str) -> datetime.datetime:
    """A response's timestamp, as botocore's own parser gives it (an aware
    datetime), for the two forms S3 sends: ``Last-Modified`` headers (RFC
    7231, ``Sun, 06 Dec 2026 21:35:52 GMT``) and ISO 8601 in listings
    (``2026-12-06T21:35:52.000Z``). botocore parses both with dateutil's
    general parser, ~65 us each: a LIST page of 1,000 keys spent ~65 ms of
    this process's CPU on them. Anything else goes to botocore's parser."""
    try:
        if value[-1:] == "Z" and value[4:5] == "-":
            return datetime.datetime.fromisoformat(value[:-1]).replace(tzinfo=datetime.timezone.utc)
        if value[-4:] == " GMT":
            return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        pass
    return botocore.utils.parse_timestamp(value)  # type: ignore[no-any-return]


def _count(**_: Any) -> None:
    global _total_requests
    _total_requests += 1


def total_requests() -> int:
    """HTTP requests sent by every client of this process (retries included;
    approximate under threads): the benchmark's round-trip count."""
    return _total_requests


def _botocore_session() -> Any:
    """A new botocore session that reads models through the shared loader
    (called under ``_sessions_lock``)."""
    global _loader
    if _loader is None:
        _loader = botocore.loaders.create_loader()
    session = botocore.session.Session()
    session.register_component("data_loader", _loader)
    # boto3 adds its own data directory to the loader of every session it
    # wraps: keep one copy of each path.
    _loader.search_paths[:] = list(dict.fromkeys(_loader.search_paths))
    return session


def new_client(options: S3Options | None = None, pool: int = MAX_CONNECTIONS) -> Any:
    """An S3 client configured from the standard AWS configuration, with
    what ``options`` (one store's endpoint, profile, credentials) set over
    it, able to keep ``pool`` requests in flight."""
    options = options or S3Options()
    key = (_configuration(), options)
    with _sessions_lock:  # a Session is not safe to share while making clients
        session = _sessions.get(key)
        if session is None:
            if len(_sessions) > _MAX_SESSIONS or any(k[0] != key[0] for k in _sessions):
                _sessions.clear()  # other configurations, or a parent's after fork
            try:
                session = boto3.session.Session(
                    botocore_session=_botocore_session(), **options.session_arguments()
                )
                # Given a botocore session, boto3 takes the profile on trust.
                if options.profile is not None and options.profile not in (
                    session.available_profiles
                ):
                    raise botocore.exceptions.ProfileNotFound(profile=options.profile)
            except botocore.exceptions.ProfileNotFound:
                raise Error(
                    f"no AWS profile {options.profile!r} in the AWS configuration "
                    "(~/.aws/config, AWS_CONFIG_FILE)",
                    None,
                ) from None
            # botocore's documented hook for parser defaults (the AWS CLI sets
            # its timestamp parser the same way): same values, less CPU.
            session._session.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=_timestamp
            )
            _sessions[key] = session
        retries: dict[str, Any] = {}
        if "AWS_RETRY_MODE" not in os.environ:
            retries["mode"] = _RETRY_MODE
        if "AWS_MAX_ATTEMPTS" not in os.environ:
            retries["max_attempts"] = _MAX_ATTEMPTS
        client = session.client(
            "s3",
            endpoint_url=options.endpoint_url,
            config=botocore.config.Config(
                retries=retries or None,
                max_pool_connections=max(MAX_CONNECTIONS, pool),
                connect_timeout=10,
                read_timeout=60,
                # Checksums only where S3 requires them: the small JSON
                # documents gain nothing and some S3-compatible servers choke.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
    client.meta.events.register("before-send.s3", _count)
    return client


def shared_client(options: S3Options | None = None, pool: int = MAX_CONNECTIONS) -> Any:
    """This process's client for ``options`` and ``pool`` (made by
    :func:`new_client` the first time), shared by every store that asks for
    the same; give it back with :func:`release_client`."""
    options = options or S3Options()
    key = (_configuration(), options, max(MAX_CONNECTIONS, pool))
    closing: list[Any] = []
    with _sessions_lock:
        _give_back_collected(closing)
        entry = _clients.pop(key, None)
        if entry is not None:
            _clients[key] = entry  # now the most recently used
            entry[1] += 1
    _close(closing)
    if entry is not None:
        return entry[0]
    client = new_client(options, pool)  # not under the lock: new_client takes it
    with _sessions_lock:
        entry = _clients.setdefault(key, [client, 0])
        entry[1] += 1
    if entry[0] is not client:  # another thread made one meanwhile
        client.close()
    return entry[0]


def release_client(client: Any) -> None:
    """A store is done with ``client``: it stays open for the next store
    while few are idle, and the least recently used idle ones beyond that
    are closed."""
    closing: list[Any] = []
    with _sessions_lock:
        _give_back_collected(closing)
        _give_back(client, closing)
        idle = [key for key, entry in _clients.items() if entry[1] <= 0]
        for key in idle[: max(0, len(idle) - _MAX_IDLE_CLIENTS)]:
            closing.append(_clients.pop(key)[0])
    _close(closing)


def release_collected(client: Any) -> None:
    """:func:`release_client` for a store's finalizer: takes no lock (see
    ``_collected``)."""
    _collected.append(client)


def close_idle_clients() -> None:
    """Close the clients no store uses now (their pooled connections)."""
    closing: list[Any] = []
    with _sessions_lock:
        _give_back_collected(closing)
        idle = [key for key, entry in _clients.items() if entry[1] <= 0]
        closing += [_clients.pop(key)[0] for key in idle]
    _close(closing)


def _give_back(client: Any, closing: list[Any]) -> None:
    """One store fewer uses ``client`` (called under ``_sessions_lock``)."""
    for entry in _clients.values():
        if entry[0] is client:
            entry[1] -= 1
            return
    closing.append(client)  # not shared (dropped after a fork, or by a test)


def _give_back_collected(closing: list[Any]) -> None:
    while _collected:
        _give_back(_collected.popleft(), closing)


def _close(clients: list[Any]) -> None:
    for client in clients:
        client.close()


def parse_url(url: str) -> tuple[str, str]:
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


# -- responses and errors -------------------------------------------------------------


def quoted(etag: str) -> str:
    """ETags as HEAD returns them: in double quotes (CopyObject omits them)."""
    return etag if etag.startswith('"') or etag.startswith('W/"') else f'"{etag}"'


def code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_missing(exc: Any) -> bool:
    """A 404 for the object (a missing bucket is NoSuchBucket, not this)."""
    return code(exc) in _MISSING_CODES


def is_precondition(exc: Any) -> bool:
    """412: an If-Match or If-None-Match did not hold."""
    return code(exc) in _PRECONDITION_CODES


def retried(exc: Any) -> bool:
    """Did botocore retry the request (so an earlier try may have landed)?"""
    return bool(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))


def age(response: dict[str, Any]) -> float | None:
    """Seconds since the object was written, on the server's clock alone
    (the response's Date minus the object's Last-Modified)."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    modified = response.get("LastModified")
    if not date or modified is None:
        return None
    try:
        return float((parsedate_to_datetime(date) - modified).total_seconds())
    except (TypeError, ValueError):
        return None


def server_header(client: Any, bucket: str) -> str:
    """`` (Server: name)`` as the server calls itself, for messages."""
    try:
        response = client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        server = response["ResponseMetadata"]["HTTPHeaders"].get("server")
    except Exception:  # only for the message
        return ""
    return f" (Server: {server})" if server else ""


def describe(exc: Exception, where: str, action: str, endpoint: str, bucket: str) -> Error:
    """One clear sos.Error for a failure of the service, naming ``where``."""
    if isinstance(exc, botocore.exceptions.ClientError):
        what, status = code(exc), _status(exc)
        message = str(exc.response.get("Error", {}).get("Message", "") or "")
        detail = f"{what}: {message}" if message else what
        if what == "NoSuchBucket":
            text = f"{where}: there is no bucket {bucket!r} at {endpoint}"
        elif what in _ACCESS_CODES:
            text = (
                f"{where}: {endpoint} refused the credentials or the permission to "
                f"{action} ({detail}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE or ~/.aws"
            )
        elif what in _THROTTLE_CODES:
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            text = (
                f"{where}: {endpoint} is throttling requests ({what}, HTTP {status}) and "
                f"still was after {attempts + 1} attempts; try again later"
            )
        else:
            text = f"{where}: could not {action}: {detail} (HTTP {status} from {endpoint})"
    elif isinstance(exc, botocore.exceptions.NoCredentialsError):
        text = (
            f"{where}: no AWS credentials found (environment, AWS_PROFILE, ~/.aws); "
            "sos reads the standard AWS configuration"
        )
    elif isinstance(exc, _CONNECTION_ERRORS):
        text = f"{where}: cannot reach the S3 endpoint {endpoint} to {action}: {exc}"
    else:
        text = f"{where}: could not {action} at {endpoint}: {exc}"
    return Error(text, where)

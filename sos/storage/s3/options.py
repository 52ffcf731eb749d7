"""Per-store S3 settings: endpoint, profile, region, credentials, pool size.

Without any, a store reads the standard AWS configuration (the environment,
``~/.aws``) as every S3 tool does. Two stores on two servers in one process
need their own: ``storage_options={"endpoint_url": ..., "profile": ...}`` in
Python, or the URL's query for the command line
(``s3://bucket/prefix?endpoint=http://host:9000&profile=minio``).

Secrets never travel in a URL: a URL is shown in messages, logs, shell
history and ``ps``. A query naming a credential is refused without echoing
its value, and :class:`S3Options` never shows one in its ``repr``.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

from sos.errors import Error
from sos.storage.pool import pool_size

__all__ = ["S3Options", "split_url"]

# storage_options key -> field; the aliases are boto3's and fsspec's names.
_OPTION_FIELDS = {
    "endpoint_url": "endpoint_url",
    "endpoint": "endpoint_url",
    "profile": "profile",
    "profile_name": "profile",
    "region": "region",
    "region_name": "region",
    "aws_access_key_id": "access_key_id",
    "key": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "secret": "secret_access_key",
    "aws_session_token": "session_token",
    "token": "session_token",
    "pool": "pool",
}
# What a URL's query may set: nothing secret.
_QUERY_FIELDS = {
    "endpoint": "endpoint_url",
    "endpoint_url": "endpoint_url",
    "profile": "profile",
    "region": "region",
    "pool": "pool",
}
_SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key", "session_token"})


@dataclasses.dataclass(frozen=True)
class S3Options:
    """What one store's client is made with; None: the standard AWS configuration."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    access_key_id: str | None = dataclasses.field(default=None, repr=False)
    secret_access_key: str | None = dataclasses.field(default=None, repr=False)
    session_token: str | None = dataclasses.field(default=None, repr=False)
    pool: int | None = None

    @classmethod
    def build(cls, url: str, query: dict[str, str], options: dict[str, Any]) -> S3Options:
        """Options from a URL's query and ``storage_options`` (which win)."""
        fields: dict[str, Any] = {}
        for name, value in query.items():
            field = _QUERY_FIELDS.get(name.lower())
            if field is None:
                secret = _OPTION_FIELDS.get(name.lower()) in _SECRET_FIELDS
                why = (
                    "credentials never go in a URL (it is shown in messages, logs and "
                    "shell history); use storage_options, a profile or the AWS environment"
                    if secret
                    else f"known: {', '.join(sorted(set(_QUERY_FIELDS) - {'endpoint_url'}))}"
                )
                raise Error(f"{url}: the URL's query may not set {name!r}: {why}", url)
            fields[field] = value
        for name, value in options.items():
            field = _OPTION_FIELDS.get(name)
            if field is None:
                raise Error(
                    f"{url}: unknown storage option {name!r} "
                    f"(known: {', '.join(sorted(_OPTION_FIELDS))})",
                    url,
                )
            if value is not None and field != "pool" and not isinstance(value, str):
                raise Error(f"{url}: storage option {name!r} must be a string", url)
            fields[field] = value
        if fields.get("pool") is not None:
            fields["pool"] = pool_size(fields["pool"], url)
        endpoint = fields.get("endpoint_url")
        if endpoint is not None:
            parts = urllib.parse.urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise Error(f"{url}: the endpoint must be an http:// or https:// URL", url)
            if parts.username or parts.password:
                raise Error(
                    f"{url}: the endpoint may not hold credentials (user:password@); use "
                    "storage_options, a profile or the AWS environment",
                    url,
                )
        return cls(**fields)

    def session_arguments(self) -> dict[str, str]:
        """boto3 Session arguments (what is not given comes from the AWS configuration)."""
        arguments = {
            "profile_name": self.profile,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }
        return {k: v for k, v in arguments.items() if v is not None}

    def secrets(self) -> tuple[str, ...]:
        """The configured secret strings, for tests and scrubbing."""
        values = (self.access_key_id, self.secret_access_key, self.session_token)
        return tuple(value for value in values if value)


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """``s3://b/p?endpoint=…`` -> (``s3://b/p``, {"endpoint": …}); a
    parameter given twice is refused (which one would win is a guess)."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, {}
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    result: dict[str, str] = {}
    for name, value in pairs:
        if name in result:
            raise Error(f"{base}: the URL's query sets {name!r} twice", base)
        result[name] = value
    return base, result

"""What a call says when the S3 server fails under it, against the real
server (``weed mini``), with the failure injected in this process's client
at the exact request (a botocore ``before-call`` hook), so the path taken is
certain. The cluster test (test_cluster.py) meets the same failures by
killing real processes, but only by chance at a given step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

import sos

from .weed import S3Server

pytestmark = pytest.mark.s3  # a real server: .ci/s3.sh installs it

RECORD = b'{"sos": "transaction", "format": 1, "id": "0123456789abcdef", "parts": []}\n'


def _refuse_lease_puts(db: sos.Dict, endpoint: str) -> Callable[[], None]:
    """Make every PUT of ``.sos/lease`` by ``db``'s client fail as an
    unreachable server does (after botocore's retries):
    EndpointConnectionError. Returns what ends it (the client is shared by
    this test's handles)."""

    def hook(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("url_path", "")).endswith("/.sos/lease"):
            raise botocore.exceptions.EndpointConnectionError(endpoint_url=endpoint)

    events = db._storage._client.meta.events
    events.register("before-call.s3.PutObject", hook)
    return lambda: events.unregister("before-call.s3.PutObject", hook)


def test_a_change_that_cannot_take_the_lease_for_recovery_says_why(
    s3_server: S3Server, s3_url: str, private_clients: None
) -> None:
    """A compound change (``pop``) that finds a transaction record pending
    needs the lease to finish it; when the server fails that request, it
    raises a clear sos.Error naming the endpoint, and nothing is written.
    (A plain set is one PUT and does not finish records: transactions and
    recovery write only over the versions they saw, docs/s3.md.)"""
    with sos.Dict(s3_url) as db:
        db["before"] = 1
        bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
        client = s3_server.client()
        try:
            client.put_object(Bucket=bucket, Key=f"{prefix}/.sos/txn.json", Body=RECORD)
        finally:
            client.close()
        server_back = _refuse_lease_puts(db, s3_server.endpoint)
        with pytest.raises(sos.Error, match=s3_server.endpoint):
            db.pop("before")
        db["k"] = 2  # needs no lease
        assert db._storage.exists(".sos/txn.json")
    server_back()
    with sos.Dict(s3_url) as db:  # a fresh handle: the record is recovered
        assert dict(db.items()) == {"before": 1, "k": 2}
        assert not db._storage.exists(".sos/txn.json")


class _CutBody:
    """A response body whose connection breaks while it streams."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, *_: Any) -> bytes:
        self._body.close()
        raise botocore.exceptions.ResponseStreamingError(error="Connection broken: IncompleteRead")

    def close(self) -> None:
        self._body.close()


def test_a_read_cut_while_the_body_streams_names_the_endpoint(
    s3_server: S3Server, s3_url: str, private_clients: None
) -> None:
    """The server answers a GET and goes away while the body streams (a
    gateway stopped mid-request): a sos.Error naming the URL and the
    endpoint, not a bare 'could not read'."""
    with sos.Dict(s3_url) as db:
        db["k"] = "v" * 1000

        def cut(parsed: dict[str, Any], **_: Any) -> None:
            if "Body" in parsed:
                parsed["Body"] = _CutBody(parsed["Body"])

        db._storage._client.meta.events.register("after-call.s3.GetObject", cut)
        with pytest.raises(sos.Error) as caught:
            db["k"]
    message = str(caught.value)
    assert s3_url in message and s3_server.endpoint in message, message
    assert "cannot reach the S3 endpoint" in message, message
    assert s3_server.secret_key not in message

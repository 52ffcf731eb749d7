"""One client per configuration in a process (sos/storage/s3/client.py):
stores share it, give it back on close or when collected, and never share
it with another configuration or across fork."""

from __future__ import annotations

import gc
import os
import sys

import pytest

import sos
from sos.storage.s3 import client as s3_client
from sos.storage.s3.storage import S3Storage

pytestmark = [pytest.mark.s3, pytest.mark.usefixtures("private_clients")]


def _users(client: object) -> int:
    return next(entry[1] for entry in s3_client._clients.values() if entry[0] is client)


def test_stores_of_one_configuration_share_one_client(s3_url: str) -> None:
    """Opening a store makes no client when one is there: the ~13 ms of CPU
    a botocore client costs is paid once per process and configuration."""
    made: list[object] = []
    original = s3_client.new_client

    def counting(*args: object, **kwargs: object) -> object:
        made.append(None)
        return original(*args, **kwargs)

    s3_client.new_client = counting  # type: ignore[assignment]
    try:
        with sos.Dict(s3_url + "/a") as a, sos.List(s3_url + "/b") as b:
            a["k"] = 1
            b.append(2)
            assert a._storage._client is b._storage._client
            assert _users(a._storage._client) == 2
        for _ in range(5):
            with sos.Dict(s3_url + "/a") as again:
                assert again["k"] == 1
    finally:
        s3_client.new_client = original  # type: ignore[assignment]
    assert len(made) == 1


def test_other_options_get_their_own_client(s3_url: str) -> None:
    wider = S3Storage(s3_url, pool=40)
    try:
        with sos.Dict(s3_url) as db:
            db["k"] = 1
            assert wider.read(db._name("k"))
            assert wider._client is not db._storage._client
            assert wider._client.meta.config.max_pool_connections == 40
    finally:
        wider.close()


def test_close_and_collection_give_the_client_back(s3_url: str) -> None:
    first = S3Storage(s3_url)
    first.write("a.json", b"1")
    client = first._client
    second = S3Storage(s3_url)
    assert second._client is client and _users(client) == 2
    first.close()
    first.close()  # a second close gives nothing back twice
    assert _users(client) == 1
    del second  # never closed: collected (the lease holds a cycle)
    gc.collect()
    assert _users(client) == 0
    s3_client.close_idle_clients()
    assert all(entry[0] is not client for entry in s3_client._clients.values())


def test_only_a_few_idle_clients_stay_open(s3_url: str) -> None:
    for pool in range(33, 33 + s3_client._MAX_IDLE_CLIENTS + 3):
        storage = S3Storage(s3_url, pool=pool)
        storage.exists("x.json")
        storage.close()
    assert len(s3_client._clients) == s3_client._MAX_IDLE_CLIENTS


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_makes_its_own_client(s3_url: str) -> None:
    """A connection pool must not be shared between processes."""
    with sos.Dict(s3_url) as db:
        db["k"] = 1
        parent = id(db._storage._client)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report whether it got a new client, and exit
            try:
                fresh = id(db._storage._client) != parent and db["k"] == 1
                db["from child"] = True
                os.write(write, b"1" if fresh else b"0")
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
        assert answer == b"1"
        assert db["from child"] is True and id(db._storage._client) == parent

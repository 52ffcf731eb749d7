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
    s3_client.close_idle_clients()  # gives back what was collected, then closes idle ones
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


def test_a_store_collected_while_the_lock_is_held_does_not_deadlock(s3_url: str) -> None:
    """The garbage collector may run a forgotten store's finalizer while this
    very thread holds the clients' lock (inside new_client, say): the
    finalizer must not take it. The client is given back by the next call."""
    store = S3Storage(s3_url)
    store.exists("x.json")
    client = store._client
    assert _users(client) == 1
    with s3_client._sessions_lock:
        del store  # a cycle (the lease): freed by the collector, right here
        gc.collect()
    assert _users(client) == 1  # not yet: nothing took the lock since
    s3_client.close_idle_clients()
    assert all(entry[0] is not client for entry in s3_client._clients.values())


def test_a_proxy_set_later_gets_a_client_of_its_own(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore reads proxies and certificate bundles when it makes a client:
    a store opened after they change must not reuse one made before."""
    first = S3Storage(s3_url)
    second = S3Storage(s3_url)
    try:
        before = first._client
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        assert second._client is not before
    finally:
        first.close()
        second.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_child_forked_while_another_thread_holds_the_lock_works(s3_url: str) -> None:
    import threading

    with sos.Dict(s3_url) as db:
        db["k"] = 1
        holding, done = threading.Event(), threading.Event()

        def hold() -> None:
            with s3_client._sessions_lock:
                holding.set()
                done.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(10)
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    with sos.Dict(s3_url) as child:
                        os._exit(0 if child["k"] == 1 else 1)
                finally:
                    os._exit(2)
            _, status = os.waitpid(pid, 0)
        finally:
            done.set()
            holder.join()
        assert os.waitstatus_to_exitcode(status) == 0

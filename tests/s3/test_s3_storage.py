"""S3Storage against a real S3 server (SeaweedFS on 127.0.0.1): every method,
compare-and-swap races, the lease, the probe, and the errors users meet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import forked
import pytest

import sos
from sos.storage.registry import open_storage
from sos.storage.s3 import client as client_
from sos.storage.s3 import objects
from sos.storage.s3.lease import LEASE_NAME
from sos.storage.s3.storage import S3Storage

from .stub_s3 import StubS3
from .weed import S3Server, free_ports

pytestmark = [
    pytest.mark.s3,  # a real server: .ci/s3.sh installs it
    pytest.mark.usefixtures("fork_server"),  # its child processes: tests/forked.py
]


@pytest.fixture
def storage(s3_url: str) -> Iterator[S3Storage]:
    st = S3Storage(s3_url)
    yield st
    st.close()


def raw_get(server: S3Server, url: str, name: str) -> bytes:
    """An object's bytes fetched with plain boto3, by its expected key."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = server.client()
    try:
        return client.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()
    finally:
        client.close()


def raw_keys(server: S3Server, url: str) -> list[str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = server.client()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))
    finally:
        client.close()


# -- reads and writes ---------------------------------------------------------------


def test_write_then_read_round_trips_and_versions_follow_the_bytes(storage: S3Storage) -> None:
    storage.write("ab/one.json", b'{"x": 1}\n')
    assert storage.read("ab/one.json") == b'{"x": 1}\n'
    data, version = storage.read_versioned("ab/one.json")
    assert data == b'{"x": 1}\n'
    assert storage.version("ab/one.json") == version
    assert storage.exists("ab/one.json")

    storage.write("ab/one.json", b'{"x": 2}\n')
    assert storage.version("ab/one.json") != version
    storage.write("ab/one.json", b'{"x": 1}\n')  # same bytes, same token
    assert storage.version("ab/one.json") == version


def test_each_primitive_is_the_one_request_it_needs(storage: S3Storage) -> None:
    """No hidden round trips: get, set, `in` and the conditional writes are one
    request each (the hot paths' budget); a remove is a HEAD and a DELETE."""

    sent: list[object] = []

    def record(**_: object) -> None:
        sent.append(None)

    def requests(call) -> int:
        before = len(sent)
        call()
        return len(sent) - before

    storage.write("warm", b"")  # makes the client and its connection
    events = storage._client.meta.events
    events.register("before-send.s3", record)
    try:
        _count_each_primitive(storage, requests)
    finally:
        events.unregister("before-send.s3", record)


def _count_each_primitive(storage: S3Storage, requests) -> None:
    assert requests(lambda: storage.write("a.json", b"1")) == 1
    assert requests(lambda: storage.read("a.json")) == 1
    version = storage.version("a.json")
    assert requests(lambda: storage.version("a.json")) == 1
    assert requests(lambda: storage.exists("nope.json")) == 1
    assert requests(lambda: storage.read_if_changed("a.json", version)) == 1
    assert requests(lambda: storage.write_if_absent("b.json", b"2")) == 1
    assert requests(lambda: storage.write_if_version("a.json", b"3", version)) == 1
    assert requests(lambda: storage.remove_if_version("a.json", version)) == 1
    assert requests(lambda: storage.list()) == 1
    assert requests(lambda: storage.move("b.json", "c.json")) == 2
    assert requests(lambda: storage.remove(["c.json"])) == 2


def test_missing_files_are_file_not_found(storage: S3Storage) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.json"):
        storage.read("nothing.json")
    with pytest.raises(FileNotFoundError):
        storage.read_versioned("ab/nothing.json")
    with pytest.raises(FileNotFoundError):
        storage.read_if_changed("nothing.json", '"0123"')
    assert storage.version("nothing.json") is None
    assert not storage.exists("nothing.json")


@pytest.mark.long
def test_age_and_modified_come_from_the_server(storage: S3Storage) -> None:
    """What check's orphan grace reads: the object's age on the server's clock."""
    assert storage.age("a.json") is None and storage.modified("a.json") is None
    storage.write("a.json", b"1")
    age = storage.age("a.json")
    assert age is not None and 0 <= age <= 2  # whole-second HTTP dates
    modified = storage.modified("a.json")
    assert modified is not None and abs(modified - time.time()) < 60
    time.sleep(2.1)
    later = storage.age("a.json")
    assert later is not None and later >= age + 1
    assert storage.orphan_grace == 3600


def test_read_if_changed_is_a_conditional_get(storage: S3Storage) -> None:
    storage.write("order.txt", b"# one\n")
    data, version = storage.read_versioned("order.txt")
    assert storage.read_if_changed("order.txt", version) is None
    assert storage.read_if_changed("order.txt", None) == (data, version)
    storage.write("order.txt", b"# two\n")
    changed = storage.read_if_changed("order.txt", version)
    assert changed is not None
    assert changed[0] == b"# two\n"
    assert changed[1] == storage.version("order.txt")


def test_names_are_object_keys_byte_for_byte(
    s3_server: S3Server, s3_url: str, storage: S3Storage
) -> None:
    names = ["sos.json", "ab/ab01.json", ".sos/lease-x", "lost+found/é ü.json"]
    for i, name in enumerate(names):
        storage.write(name, f"{i}\n".encode())
    prefix = s3_url.removeprefix(f"s3://{s3_server.bucket}/")
    assert raw_keys(s3_server, s3_url) == sorted(f"{prefix}/{n}" for n in names)
    assert raw_get(s3_server, s3_url, "lost+found/é ü.json") == b"3\n"


@pytest.mark.parametrize("name", ["", "/abs", "../x", "a/../b", "a//b", "./a", "a/"])
def test_names_leaving_the_store_are_refused(storage: S3Storage, name: str) -> None:
    with pytest.raises(sos.Error, match="bad name"):
        storage.write(name, b"x")
    with pytest.raises(sos.Error, match="bad name"):
        storage.read(name)
    assert list(storage.walk()) == []


def test_write_many_writes_every_file(storage: S3Storage) -> None:
    entries = [(f"{i % 7:02x}/{i}.json", f"{i}\n".encode()) for i in range(40)]
    storage.write_many(entries)
    for name, data in entries:
        assert storage.read(name) == data
    storage.write_many([])
    storage.write_many([("one.json", b"1")])
    assert storage.read("one.json") == b"1"


def test_write_if_absent_creates_once(storage: S3Storage) -> None:
    assert storage.write_if_absent("a.json", b"first")
    assert not storage.write_if_absent("a.json", b"second")
    assert storage.read("a.json") == b"first"


def test_write_if_version_is_a_compare_and_swap(storage: S3Storage) -> None:
    storage.write("order.txt", b"v1")
    version = storage.version("order.txt")
    assert storage.write_if_version("order.txt", b"v2", version)
    assert not storage.write_if_version("order.txt", b"v3", version)  # stale token
    assert storage.read("order.txt") == b"v2"
    assert not storage.write_if_version("absent.txt", b"x", version)
    assert not storage.exists("absent.txt")
    # None as the version means "only if there is none"
    assert storage.write_if_version("new.txt", b"x", None)
    assert not storage.write_if_version("new.txt", b"y", None)
    assert storage.read("new.txt") == b"x"


def test_remove_reports_what_existed(storage: S3Storage) -> None:
    storage.write_many([("a.json", b"a"), ("b/c.json", b"c")])
    assert sorted(storage.remove(["a.json", "missing.json", "b/c.json", "a.json"])) == [
        "a.json",
        "b/c.json",
    ]
    assert not storage.exists("a.json")
    assert not storage.exists("b/c.json")
    assert storage.remove([]) == []


def test_remove_if_version(storage: S3Storage) -> None:
    storage.write("a.json", b"1")
    old = storage.version("a.json")
    storage.write("a.json", b"2")
    assert not storage.remove_if_version("a.json", old)
    assert storage.read("a.json") == b"2"
    assert storage.remove_if_version("a.json", storage.version("a.json"))
    assert not storage.exists("a.json")
    assert not storage.remove_if_version("a.json", old)


def test_move_copies_then_removes_the_source(storage: S3Storage) -> None:
    storage.write(".sos/staged/x.json", b"new")
    storage.write("ab/x.json", b"old")
    storage.move(".sos/staged/x.json", "ab/x.json")
    assert storage.read("ab/x.json") == b"new"
    assert not storage.exists(".sos/staged/x.json")
    assert storage.version("ab/x.json") == storage.read_versioned("ab/x.json")[1]
    with pytest.raises(FileNotFoundError):
        storage.move(".sos/staged/x.json", "ab/y.json")
    assert not storage.exists("ab/y.json")


def test_list_is_dir_and_walk(s3_server: S3Server, storage: S3Storage) -> None:
    assert storage.list() == []
    assert storage.list("ab") == []
    storage.make_root()  # nothing to create on object storage
    assert list(storage.walk()) == []
    names = ["sos.json", "order.txt", "ab/1.json", "ab/2.json", "cd/3.json", ".sos/lease"]
    storage.write_many([(n, b"x") for n in names])
    assert sorted(storage.list()) == [".sos", "ab", "cd", "order.txt", "sos.json"]
    assert sorted(storage.list("ab")) == ["1.json", "2.json"]
    assert storage.list("zz") == []
    assert storage.is_dir("ab") and storage.is_dir(".sos")
    assert not storage.is_dir("sos.json") and not storage.is_dir("zz")
    assert list(storage.walk()) == sorted(names)
    assert list(storage.walk("ab")) == ["ab/1.json", "ab/2.json"]
    # A "folder" marker object (the AWS console makes them) is not an entry.
    bucket, _, prefix = storage.url.removeprefix("s3://").partition("/")
    client = s3_server.client()
    try:
        client.put_object(Bucket=bucket, Key=f"{prefix}/ab/", Body=b"")
    finally:
        client.close()
    assert sorted(storage.list("ab")) == ["1.json", "2.json"]
    assert list(storage.walk("ab")) == ["ab/1.json", "ab/2.json"]


def test_list_versions_are_the_versions_of_the_files(storage: S3Storage) -> None:
    """What watching polls: one LIST giving each file's version, the same
    token version() gives, for files directly in the directory only."""
    assert storage.list_versions("ab") == {}
    storage.write_many([("ab/1.json", b"1"), ("ab/2.json", b"2"), ("ab/deep/3.json", b"3")])
    storage.write("top.json", b"t")
    versions = storage.list_versions("ab")
    assert versions == {
        "1.json": storage.version("ab/1.json"),
        "2.json": storage.version("ab/2.json"),
    }
    assert storage.list_versions() == {"top.json": storage.version("top.json")}
    storage.write("ab/1.json", b"changed")
    assert storage.list_versions("ab")["1.json"] == storage.read_versioned("ab/1.json")[1]
    assert storage.list_versions("ab")["1.json"] != versions["1.json"]


def test_listings_go_on_past_the_first_page(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing and walking follow the server's continuation from page to
    page (pages of 7 here, of S3's 1,000 in use: the same requests, 1,010
    PUTs fewer)."""
    monkeypatch.setattr(objects, "PAGE_SIZE", 7)
    names = [f"ab/{i:05d}.json" for i in range(24)]  # four pages
    storage.write_many([(n, b"") for n in names])
    before = client_.total_requests()
    assert sorted(storage.list("ab")) == sorted(n[3:] for n in names)
    assert client_.total_requests() - before >= 4  # one LIST per page
    assert list(storage.walk()) == names


def test_stores_under_sibling_prefixes_stay_apart(s3_url: str) -> None:
    one, two = S3Storage(s3_url), S3Storage(s3_url + "x")
    try:
        one.write("a.json", b"1")
        two.write("b.json", b"2")
        assert one.list() == ["a.json"]
        assert two.list() == ["b.json"]
        assert list(one.walk()) == ["a.json"]
    finally:
        one.close()
        two.close()


def test_urls_are_parsed_and_the_scheme_is_registered(s3_server: S3Server) -> None:
    st = open_storage(f"s3://{s3_server.bucket}/some/prefix/")
    try:
        assert isinstance(st, S3Storage)
        assert st.url == f"s3://{s3_server.bucket}/some/prefix"
    finally:
        st.close()
    whole = S3Storage(f"s3://{s3_server.bucket}")
    assert whole.url == f"s3://{s3_server.bucket}" and whole.prefix == ""
    whole.close()
    for bad in ["s3:///prefix", "s3://b/a/../c", "http://b/p"]:
        with pytest.raises(sos.Error, match="s3"):
            S3Storage(bad)


# -- races: conditional writes settle them ------------------------------------------


def _increment(st: S3Storage, name: str, times: int, misses: list[int]) -> None:
    for _ in range(times):
        while True:
            data, version = st.read_versioned(name)
            if st.write_if_version(name, str(int(data) + 1).encode(), version):
                break
            misses.append(1)


def test_compare_and_swap_races_lose_no_update(s3_url: str) -> None:
    """8 threads, each with its own handle, increment one counter by CAS."""
    handles = [S3Storage(s3_url) for _ in range(8)]
    handles[0].write("counter", b"0")
    misses: list[int] = []
    errors: list[BaseException] = []

    def run(st: S3Storage) -> None:
        try:
            _increment(st, "counter", 12, misses)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert handles[0].read("counter") == b"96"
        assert misses, "8 threads never collided: the race was not exercised"
    finally:
        for h in handles:
            h.close()


def test_compare_and_swap_races_across_processes(s3_url: str) -> None:
    S3Storage(s3_url).write("counter", b"0")
    code = (
        "import sys; sys.path[:0] = sys.argv[3:]\n"
        "from sos.storage.s3.storage import S3Storage\n"
        "st = S3Storage(sys.argv[1])\n"
        "for _ in range(int(sys.argv[2])):\n"
        "    while True:\n"
        "        data, v = st.read_versioned('counter')\n"
        "        if st.write_if_version('counter', str(int(data) + 1).encode(), v): break\n"
    )
    root = str(Path(sos.__file__).parent.parent)
    procs = [forked.start("-c", code, s3_url, "30", root) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    st = S3Storage(s3_url)
    try:
        assert st.read("counter") == b"120"
    finally:
        st.close()


def test_write_if_absent_race_has_one_winner(s3_url: str) -> None:
    handles = [S3Storage(s3_url) for _ in range(8)]
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def run(i: int) -> None:
        barrier.wait()
        if handles[i].write_if_absent("item.json", str(i).encode()):
            wins.append(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(wins) == 1
        assert handles[0].read("item.json") == str(wins[0]).encode()
    finally:
        for h in handles:
            h.close()


def _remove_together(handles: list[S3Storage], names: list[str]) -> list[str]:
    """Every handle removes ``names`` at the same moment; all they reported."""
    reported: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(handles))

    def run(st: S3Storage) -> None:
        barrier.wait()
        got = st.remove(names)
        with lock:
            reported.extend(got)

    threads = [threading.Thread(target=run, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return reported


def test_concurrent_removes_report_each_file_once(s3_url: str) -> None:
    """8 handles remove the same files at once: each file is reported removed
    by exactly one of them (a plain DELETE cannot tell; a conditional one can)."""
    handles = [S3Storage(s3_url) for _ in range(8)]
    try:
        for attempt in range(2):
            names = [f"ab/{attempt}-{i}.json" for i in range(20)]
            handles[0].write_many([(n, b"x") for n in names])
            assert sorted(_remove_together(handles, names)) == sorted(names)
            assert handles[0].list("ab") == []
    finally:
        for h in handles:
            h.close()


# -- the lease ------------------------------------------------------------------------


def test_exclusive_lock_is_a_lease_object(s3_url: str, s3_server: S3Server) -> None:
    one, two = S3Storage(s3_url), S3Storage(s3_url)
    try:
        assert one.acquire()
        lease = json.loads(raw_get(s3_server, s3_url, LEASE_NAME))
        assert lease["pid"] == os.getpid() and lease["seconds"] == one.lease_seconds
        assert not two.acquire(blocking=False)
        assert one.acquire()  # re-entrant in this thread
        assert one.held() and not two.held()
        one.release()
        assert not two.acquire(blocking=False)
        one.release()
        assert not one.exists(LEASE_NAME)
        assert two.acquire(blocking=False)
        assert not one.acquire(blocking=False)
        two.release()
    finally:
        one.close()
        two.close()


def test_other_threads_of_a_handle_wait(storage: S3Storage) -> None:
    results: list[bool] = []
    with storage.lock():
        t = threading.Thread(target=lambda: results.append(storage.acquire(blocking=False)))
        t.start()
        t.join()
    assert results == [False]
    assert not storage.exists(LEASE_NAME)


def test_shared_lock_is_a_no_op(s3_url: str) -> None:
    one, two = S3Storage(s3_url), S3Storage(s3_url)
    try:
        with one.lock():
            assert two.acquire(exclusive=False, blocking=False)
            two.release()
        assert one.acquire(exclusive=False)
        assert not one.exists(LEASE_NAME)
        assert one.held()
        one.release()
        assert not one.held()
        with pytest.raises(RuntimeError):
            one.release()
    finally:
        one.close()
        two.close()


def test_the_lease_excludes_writers(s3_url: str) -> None:
    """A read-modify-write that only the lease protects: 8 handles, exact count."""
    handles = [S3Storage(s3_url) for _ in range(8)]
    handles[0].write("counter", b"0")
    errors: list[BaseException] = []

    def run(st: S3Storage) -> None:
        try:
            for _ in range(5):
                with st.lock():
                    value = int(st.read("counter"))
                    st.write("counter", str(value + 1).encode())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert handles[0].read("counter") == b"40"
        assert not handles[0].exists(LEASE_NAME)
    finally:
        for h in handles:
            h.close()


@pytest.mark.long
def test_a_dead_holders_lease_expires_and_is_taken_over(s3_url: str, s3_server: S3Server) -> None:
    # Holders that died, of two stores: each lease says one second and is
    # never renewed. One is waited out by tries that do not block, the other
    # by a blocking acquire, at the same time (an expiry takes 2-3 s).
    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    dead = json.dumps({"owner": "dead", "pid": -1, "seconds": 1}).encode()
    client = s3_server.client()
    try:
        for store in ("tried", "blocking"):
            client.put_object(Bucket=bucket, Key=f"{prefix}/{store}/{LEASE_NAME}", Body=dead)
    finally:
        client.close()
    st, waiting = S3Storage(s3_url + "/tried"), S3Storage(s3_url + "/blocking")
    try:
        assert not st.acquire(blocking=False)  # still fresh
        assert not waiting.acquire(blocking=False)
        result: list[bool] = []

        def wait_for_it() -> None:
            result.append(waiting.acquire())
            waiting.release()

        waiter = threading.Thread(target=wait_for_it, daemon=True)
        waiter.start()
        deadline = time.monotonic() + 10
        while not st.acquire(blocking=False):  # until it expires, then taken over
            assert time.monotonic() < deadline, "a dead holder's lease never expired"
            time.sleep(0.2)
        assert json.loads(st.read(LEASE_NAME))["owner"] != "dead"
        st.release()
        assert not st.exists(LEASE_NAME)
        # and a blocking acquire waits for an expiry in the same way
        waiter.join(timeout=10)
        assert result == [True], "a blocking acquire never took over the stale lease"
        assert not waiting.exists(LEASE_NAME)
    finally:
        st.close()
        waiting.close()


@pytest.mark.long
def test_a_live_holder_renews_its_lease(s3_url: str) -> None:
    holder, other = S3Storage(s3_url, lease_seconds=1), S3Storage(s3_url)
    try:
        with holder.lock():
            end = time.monotonic() + 4  # four lease durations
            while time.monotonic() < end:
                assert not other.acquire(blocking=False), "a live holder's lease was taken"
                time.sleep(0.25)
        assert other.acquire(blocking=False)
        other.release()
    finally:
        holder.close()
        other.close()


def test_a_holder_whose_lease_was_taken_is_told_at_release(
    s3_url: str, s3_server: S3Server
) -> None:
    st = S3Storage(s3_url)
    try:
        st.acquire()
        bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
        client = s3_server.client()
        try:  # another client took the lease over (it thought ours stale)
            client.put_object(Bucket=bucket, Key=f"{prefix}/{LEASE_NAME}", Body=b'{"x": 1}')
        finally:
            client.close()
        with pytest.raises(sos.Error, match="expired while held"):
            st.release()
        assert st.read(LEASE_NAME) == b'{"x": 1}'  # theirs stays
    finally:
        st.close()


# -- the probe ------------------------------------------------------------------------


def test_probe_passes_on_a_server_honouring_conditions_and_leaves_nothing(
    storage: S3Storage,
) -> None:
    storage.probe_conditional_writes()
    assert list(storage.walk()) == []


def test_probe_refuses_a_server_ignoring_conditional_puts(rclone_s3: str) -> None:
    st = S3Storage("s3://bucket/store")
    try:
        with pytest.raises(sos.Error) as caught:
            st.probe_conditional_writes()
        message = str(caught.value)
        assert rclone_s3 in message and "s3://bucket/store" in message
        assert "If-None-Match" in message
        assert caught.value.__cause__ is None
        assert list(st.walk()) == []  # the scratch object is removed
    finally:
        st.close()


def test_probe_refuses_a_server_ignoring_only_conditional_deletes(
    stub_aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with StubS3(honour_put=True, honour_delete=False) as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL", stub.endpoint)
        st = S3Storage("s3://bucket/store")
        try:
            with pytest.raises(sos.Error, match="ignores If-Match on DELETE") as caught:
                st.probe_conditional_writes()
            assert stub.endpoint in str(caught.value)
            assert "sos-test-stub" in str(caught.value)  # the server's own name
            assert stub.objects == {}
        finally:
            st.close()


def test_probe_accepts_the_stub_when_it_honours_both(
    stub_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stub is a fair test case: honouring everything, it passes the probe."""
    with StubS3() as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL", stub.endpoint)
        st = S3Storage("s3://bucket/store")
        try:
            st.probe_conditional_writes()
            assert stub.objects == {}
        finally:
            st.close()


# -- errors users meet ---------------------------------------------------------------


def _no_botocore_chain(exc: BaseException) -> None:
    assert exc.__cause__ is None and exc.__suppress_context__
    assert "botocore" not in str(exc)


def test_a_missing_bucket_is_a_clear_error(s3_server: S3Server) -> None:
    st = S3Storage("s3://no-such-bucket-here/store")
    try:
        with pytest.raises(sos.Error, match="no bucket 'no-such-bucket-here'") as caught:
            st.read("sos.json")
        assert "s3://no-such-bucket-here/store" in str(caught.value)
        _no_botocore_chain(caught.value)
        with pytest.raises(sos.Error, match="no bucket"):
            st.write("sos.json", b"{}")
        with pytest.raises(sos.Error, match="no bucket"):
            st.list()
    finally:
        st.close()


def test_bad_credentials_are_a_clear_error(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    st = S3Storage(s3_url)
    try:
        for call in (lambda: st.read("sos.json"), lambda: st.write("a", b"x"), st.list):
            with pytest.raises(sos.Error, match="credentials") as caught:
                call()
            assert s3_url in str(caught.value)
            _no_botocore_chain(caught.value)
    finally:
        st.close()


def test_an_unreachable_endpoint_is_a_clear_error(
    stub_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (port,) = free_ports(1)  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    st = S3Storage("s3://bucket/store")
    try:
        with pytest.raises(sos.Error, match="cannot reach the S3 endpoint") as caught:
            st.read("sos.json")
        assert f"127.0.0.1:{port}" in str(caught.value) and "s3://bucket/store" in str(caught.value)
        _no_botocore_chain(caught.value)
    finally:
        st.close()


@pytest.mark.long
def test_throttling_is_retried_then_a_clear_error(
    stub_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StubS3(throttle=True) as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL", stub.endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
        st = S3Storage("s3://bucket/store")
        try:
            with pytest.raises(sos.Error, match="throttling") as caught:
                st.write("a.json", b"x")
            assert "s3://bucket/store/a.json" in str(caught.value)
            assert stub.requests == 3  # botocore's own retries, as configured
            _no_botocore_chain(caught.value)
        finally:
            st.close()


def test_no_credentials_at_all_is_a_clear_error(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    st = S3Storage(s3_url)
    try:
        with pytest.raises(sos.Error, match="no AWS credentials") as caught:
            st.read("sos.json")
        _no_botocore_chain(caught.value)
    finally:
        st.close()


def test_without_boto3_an_s3_path_says_which_extra_to_install() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.modules['boto3'] = None\n"
        "import sos\n"
        "try:\n"
        "    sos.Dict('s3://bucket/store')\n"
        "except sos.Error as exc:\n"
        "    print(exc)\n"
    )
    root = str(Path(sos.__file__).parent.parent)
    done = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pip install 'sos-store[s3]'" in done.stdout

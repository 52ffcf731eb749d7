"""Many reads and writes at once on S3: a bounded pool, the usual order, the same data.

Against the real SeaweedFS server. Every client sos makes is watched through
botocore's own ``before-send`` event, which runs in the thread sending the
request just before it goes out: a short sleep there makes requests that are
in flight together overlap for sure, so the largest number seen at once is
the concurrency sos really used (1 when it sends one request at a time).
"""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import sos
import sos.cli
from sos.storage.s3 import bulk
from sos.storage.s3.storage import S3Storage

from .hooks import on_new_clients

N = 40  # keys: 5 times the pool, in ~37 fan-out directories; quick against the server


class InFlight:
    """Requests in flight at once, per operation name (GetObject, PutObject, ...):
    iterating lists the fan-out directories ahead of reading the documents,
    each through a pool of its own size."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.hold = 0.004  # seconds each request stays in flight, before it is sent
        self.held: set[str] | None = None  # the operations held (None: all)

    def __call__(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rpartition(".")[2]  # before-send.s3.GetObject
        with self.lock:
            self.now[operation] = now = self.now.get(operation, 0) + 1
            self.sent[operation] = self.sent.get(operation, 0) + 1
            self.peak[operation] = max(self.peak.get(operation, 0), now)
        time.sleep(self.hold if self.held is None or operation in self.held else 0.004)
        with self.lock:
            self.now[operation] -= 1

    def reset(self) -> None:
        with self.lock:
            self.peak.clear()
            self.sent.clear()


@pytest.fixture
def in_flight(monkeypatch: pytest.MonkeyPatch, private_clients: None) -> InFlight:
    """Every S3 client made from now on reports its requests to one tracker."""
    tracker = InFlight()
    on_new_clients(monkeypatch, "before-send.s3", tracker)
    return tracker


def _fill(url: str) -> dict[str, Any]:
    expected = {f"key{i:04d}": {"n": i, "tag": "x" * (i % 7)} for i in range(N)}
    with sos.Dict(url) as db:
        db.update(expected)
    return expected


@pytest.fixture
def filled(s3_url: str) -> tuple[str, dict[str, Any]]:
    return s3_url, _fill(s3_url)


def test_iteration_reads_and_lists_in_parallel_in_the_same_order(
    filled: tuple[str, dict[str, Any]], in_flight: InFlight, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "1")
    with sos.Dict(url) as db:
        sequential = list(db.items())
    assert in_flight.peak["GetObject"] == 1 and in_flight.peak["ListObjectsV2"] == 1
    monkeypatch.setenv("SOS_S3_POOL", "8")
    in_flight.reset()
    with sos.Dict(url) as db:
        assert db._storage.parallelism() == 8
        in_flight.reset()
        pairs = list(db.items())
        gets = in_flight.sent["GetObject"]
        assert [v for _, v in pairs] == list(db.values())
        assert list(db) == [k for k, _ in pairs]
        assert len(db) == N
    assert pairs == sequential  # the same order: the files' names, as ever
    assert dict(pairs) == expected and gets == N
    assert 2 <= in_flight.peak["GetObject"] <= 8
    with sos.Dict(url) as db:
        in_flight.reset()
        assert len(db) == N
    # A store of fewer than 1,000 objects: the root's LIST and one flat page.
    assert in_flight.sent["ListObjectsV2"] == 2


@pytest.mark.parametrize("page", [1, 12])
def test_directories_a_truncated_first_page_leaves_are_listed_in_parallel(
    filled: tuple[str, dict[str, Any]],
    in_flight: InFlight,
    monkeypatch: pytest.MonkeyPatch,
    page: int,
) -> None:
    """A store larger than the first flat page (made small here): the
    directories it finishes come from it, every other one is listed through
    the pool; the keys, values and order are those of a whole-page listing."""
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "8")
    with sos.Dict(url) as db:
        whole = list(db.items())
    monkeypatch.setattr(bulk, "FIRST_PAGE", page)
    with sos.Dict(url) as db:
        in_flight.reset()
        assert len(db) == N
        lists = in_flight.sent["ListObjectsV2"]
        assert list(db.items()) == whole and dict(whole) == expected
    directories = {name.split("/")[0] for name in _data_files(url)}
    # The root's LIST, the flat page, then one per directory it did not
    # finish: all but at most those of the page's first keys but the last
    # (12 keys: the root's support files, then data files; some finished).
    low, high = (0, 0) if page == 1 else (1, page - 1)
    assert len(directories) + 2 - high <= lists <= len(directories) + 2 - low
    assert 2 <= in_flight.peak["ListObjectsV2"] <= 8


def _data_files(url: str) -> list[str]:
    storage = S3Storage(url)
    try:
        return [name for name in storage.walk() if name.endswith(".json") and "/" in name]
    finally:
        storage.close()


def test_keys_of_a_fresh_handle_are_read_in_parallel(
    filled: tuple[str, dict[str, Any]], in_flight: InFlight, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh handle knows no file's key: iterating the keys reads each file
    once, the whole pool in flight across fan-out directories (N keys in ~37
    directories: read directory by directory, at most 2 or 3 would be)."""
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "6")
    in_flight.hold = 0.05  # long enough for the pool's threads to overlap on a busy machine
    with sos.Dict(url) as db:
        in_flight.reset()
        assert sorted(db) == sorted(expected)
    assert in_flight.sent["GetObject"] == N
    assert 4 <= in_flight.peak["GetObject"] <= 6  # the pool; one at a time, it was 1 or 2


def test_keys_of_a_fresh_handle_in_a_batch_are_read_in_parallel(
    filled: tuple[str, dict[str, Any]], in_flight: InFlight, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within a batch the keys come from the same read-ahead, with the
    batch's own adds and deletes applied on top."""
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "6")
    in_flight.hold, in_flight.held = 0.05, {"GetObject"}
    with sos.Dict(url) as db, db.batch():
        db["added"] = 1
        del db["key0003"]
        in_flight.reset()
        keys = list(db)
        assert 4 <= in_flight.peak["GetObject"] <= 6  # the pool; one at a time, it was 1 or 2
    assert sorted(keys) == sorted(["added", *expected.keys() - {"key0003"}])
    assert len(keys) == len(set(keys))


def test_a_migration_reads_through_the_pool(
    filled: tuple[str, dict[str, Any]], in_flight: InFlight, monkeypatch: pytest.MonkeyPatch
) -> None:
    """migrate() reads the documents it converts with the pool in flight."""
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "6")
    in_flight.hold = 0.05
    with sos.Dict(url) as db:
        in_flight.reset()
        in_flight.held = {"GetObject"}
        db.migrate(lambda value: value["n"], int)
        assert 4 <= in_flight.peak["GetObject"] <= 6  # the pool; one at a time, it was 1 or 2
        in_flight.held = set()
        assert dict(db.items()) == {key: value["n"] for key, value in expected.items()}


def test_a_transaction_re_checks_its_files_through_the_pool(
    filled: tuple[str, dict[str, Any]], in_flight: InFlight, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its commit point a transaction HEADs every file it read or
    wrote (did another client write it?): the pool in flight, not one round
    trip per file."""
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "6")
    with sos.Dict(url) as db:
        with db.transaction():
            for key in list(expected)[:20]:
                db[key] = "new"
            in_flight.reset()
            in_flight.hold, in_flight.held = 0.05, {"HeadObject"}
        assert in_flight.sent["HeadObject"] >= 20
        assert 4 <= in_flight.peak["HeadObject"] <= 6  # the pool; one at a time, it was 1 or 2
        assert [db[key] for key in list(expected)[:20]] == ["new"] * 20


def test_reading_ahead_is_bounded_when_the_reader_stops(
    filled: tuple[str, dict[str, Any]], in_flight: InFlight, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat in the store's size: a reader that takes one value
    has caused at most the read-ahead window (twice the pool) of GETs."""
    url, _ = filled
    monkeypatch.setenv("SOS_S3_POOL", "4")
    with sos.Dict(url) as db:
        in_flight.reset()
        values = iter(db.values())
        next(values)
        time.sleep(0.2)  # anything still to be sent would be by now
        assert 1 <= in_flight.sent["GetObject"] <= 2 * 4 + 1
        del values


def test_update_extend_and_transactions_write_in_parallel(
    s3_url: str, in_flight: InFlight, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOS_S3_POOL", "8")
    with sos.Dict(s3_url + "/d") as db:
        in_flight.reset()
        db.update({f"k{i}": i for i in range(30)})
        assert 2 <= in_flight.peak["PutObject"] <= 8
        assert 2 <= in_flight.peak["GetObject"] <= 8  # the transaction's before-reads
        in_flight.reset()
        with db.transaction():
            for i in range(20):
                db[f"t{i}"] = i
        assert 2 <= in_flight.peak["PutObject"] <= 8
        assert db["k29"] == 29 and db["t19"] == 19 and len(db) == 50
    with sos.List(s3_url + "/l") as lst:
        in_flight.reset()
        lst.extend(range(25))
        assert 2 <= in_flight.peak["PutObject"] <= 8
        in_flight.reset()
        assert list(lst) == list(range(25))  # the manifest's order, read ahead
        assert list(reversed(lst)) == list(range(24, -1, -1))
        assert 2 <= in_flight.peak["GetObject"] <= 8


def test_dump_check_info_and_load_in_parallel(
    filled: tuple[str, dict[str, Any]],
    in_flight: InFlight,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "8")
    out = io.StringIO()
    with redirect_stdout(out):
        assert sos.cli.main(["dump", url]) == 0
    assert json.loads(out.getvalue()) == expected
    assert 2 <= in_flight.peak["GetObject"] <= 8
    in_flight.reset()
    assert sos.check(url) == []
    assert 2 <= in_flight.peak["GetObject"] <= 8
    assert 2 <= in_flight.peak["ListObjectsV2"] <= 8
    in_flight.reset()
    out = io.StringIO()
    with redirect_stdout(out):
        assert sos.cli.main(["info", url]) == 0
    assert f"{N}" in out.getvalue()
    # The count: the root and one flat page (N < 1,000); the sizes: one walk.
    assert in_flight.sent["ListObjectsV2"] == 3
    source = tmp_path / "users.json"
    source.write_text(json.dumps(expected))
    in_flight.reset()
    assert sos.cli.main(["load", url + "-loaded", str(source)]) == 0
    assert 2 <= in_flight.peak["PutObject"] <= 8
    with sos.Dict(url + "-loaded") as loaded:
        assert dict(loaded.items()) == expected


def test_a_missing_document_is_skipped_and_an_error_still_names_its_file(
    filled: tuple[str, dict[str, Any]], s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file deleted between the listing and its read is skipped, as with
    one read at a time; a damaged one raises CorruptError naming it."""
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "8")
    with sos.Dict(url) as db:
        names = {key: db.path_of(key) for key in ("key0003", "key0077")}
        items = db.items().__iter__()
        first = next(items)
        storage = S3Storage(url)
        try:
            storage.remove([names["key0003"].split(url + "/")[1]])
        finally:
            storage.close()
        rest = [first, *items]
    # The window may already have read the removed key; otherwise it is skipped.
    assert {k for k, _ in rest} >= set(expected) - {"key0003"}
    client = s3_server.client()
    bucket = url[len("s3://") :].partition("/")[0]
    client.put_object(Bucket=bucket, Key=names["key0077"][len(f"s3://{bucket}/") :], Body=b"{")
    with sos.Dict(url) as db, pytest.raises(sos.CorruptError, match=r"\.json"):
        list(db.items())


@pytest.mark.parametrize("bad", ["0", "-3", "many", "100000"])
def test_a_bad_pool_size_is_a_clear_error(
    s3_url: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOS_S3_POOL", bad)
    with pytest.raises(sos.Error, match="SOS_S3_POOL must be a whole number"):
        sos.Dict(s3_url)
    monkeypatch.delenv("SOS_S3_POOL")
    with pytest.raises(sos.Error, match="the pool option must be"):
        sos.Dict(s3_url, storage_options={"pool": bad})
    with sos.Dict(s3_url, storage_options={"pool": 3}) as db:
        assert db._storage.parallelism() == 3


def test_the_pool_option_wins_over_the_variable(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOS_S3_POOL", "5")
    storage = S3Storage(s3_url)
    assert storage.parallelism() == 5
    storage.close()
    storage = S3Storage(s3_url + "?pool=2")
    assert storage.parallelism() == 2 and storage.url == s3_url
    storage.close()
    monkeypatch.delenv("SOS_S3_POOL")
    storage = S3Storage(s3_url)
    assert storage.parallelism() == 16
    storage.close()


@pytest.mark.parametrize("server", ["weed", "rclone"])
def test_list_many_gives_each_directory_its_listing_whatever_the_first_page(
    server: str, s3_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Names that extend a directory's name with a character below "/" sort
    apart in the keys' byte order (rclone lists in it) and in a walk of names
    (SeaweedFS does): a first page cut anywhere finishes only what it holds."""
    if server == "rclone":
        request.getfixturevalue("rclone_s3")
        s3_url = "s3://bucket/p"
    storage = S3Storage(s3_url)
    names = ["ab/1.json", "ab/2.json", "ab-x/3.json", "ab.json", "ab0/4.json", "b/5.json", "c"]
    try:
        for name in names:
            storage.write(name, b"{}\n")
        directories = ["ab", "ab-x", "ab0", "b", "c", "none"]
        expected = [(d, sorted(storage.list(d))) for d in directories]
        assert expected[0] == ("ab", ["1.json", "2.json"]) and expected[-2:] == [
            ("c", []),
            ("none", []),
        ]
        for page in range(1, len(names) + 2):
            monkeypatch.setattr(bulk, "FIRST_PAGE", page)
            got = [(d, sorted(entries)) for d, entries in storage.list_many(directories)]
            assert got == expected, page
            twice = [(d, sorted(entries)) for d, entries in storage.list_many(directories * 2)]
            assert twice == expected * 2, page
        with pytest.raises(sos.Error, match="bad name"):
            list(storage.list_many(["ab", ".."]))
    finally:
        storage.remove_all()
        storage.close()


def test_a_conflict_found_by_the_re_check_leaves_no_request_running(
    filled: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-check's pool is joined when it finds a conflict, even while
    the caller keeps the error: no HEAD of the transaction is still in
    flight after its lease is gone, no thread idles until a collection."""
    url, expected = filled
    monkeypatch.setenv("SOS_S3_POOL", "8")
    keys = sorted(expected)[:20]
    with sos.Dict(url) as db, sos.Dict(url) as other:
        with pytest.raises(sos.ConflictError) as caught, db.transaction():
            values = [db[key] for key in keys]  # read: each re-checked
            other[keys[0]] = "changed"  # the first one checked conflicts
            for key, value in zip(keys, values, strict=True):
                db[key] = [value]
        pool = [t for t in threading.enumerate() if t.name.startswith("sos-s3")]
        assert caught.value is not None and pool == [], pool
        assert db[keys[0]] == "changed" and db[keys[1]] == expected[keys[1]]

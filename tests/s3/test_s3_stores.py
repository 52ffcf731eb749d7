"""sos.Dict and sos.List on S3, against a real server: the same behaviour as
locally (the conformance checkers), many writers, and stores copied between a
directory and a bucket by a tool that knows nothing of sos (plain boto3)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import forked
import pytest
from conformance import check_bad_key_types, check_mapping, check_sequence

import sos
from sos.storage.s3.storage import S3Storage

from .weed import S3Server

pytestmark = [
    pytest.mark.s3,  # a real server: .ci/s3.sh installs it
    pytest.mark.usefixtures("fork_server"),  # its child processes: tests/forked.py
]

ROOT = str(Path(sos.__file__).resolve().parent.parent)


def split(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def test_dict_conformance(s3_url: str) -> None:
    with sos.Dict(s3_url) as db:
        check_mapping(db)
        check_bad_key_types(db)
    with sos.Dict(s3_url) as db:  # what it left is what a new handle reads
        assert len(db) == len(dict(db.items()))


def test_list_conformance(s3_url: str) -> None:
    with sos.List(s3_url) as lst:
        check_sequence(lst)


def test_open_finds_the_kind(s3_url: str) -> None:
    sos.List(s3_url + "/l").close()
    sos.Dict(s3_url + "/d").close()
    with sos.open(s3_url + "/l") as a, sos.open(s3_url + "/d") as b:
        assert isinstance(a, sos.List) and isinstance(b, sos.Dict)
    with pytest.raises(sos.Error, match="not a sos store"):
        sos.open(s3_url + "/nothing")


def test_a_document_is_the_object_at_its_key(s3_server: S3Server, s3_url: str) -> None:
    import hashlib

    with sos.Dict(s3_url) as db:
        db["ada"] = {"born": 1815}
    digest = hashlib.sha256(b"ada").hexdigest()[:32]
    bucket, prefix = split(s3_url)
    client = s3_server.client()
    try:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}/{digest[:2]}/{digest}.json")
        expected = b'{\n  "key": "ada",\n  "value": {\n    "born": 1815\n  }\n}\n'
        assert body["Body"].read() == expected
    finally:
        client.close()


_APPENDER = """
import sys
sys.path.insert(0, sys.argv[3])
import sos
lst = sos.List(sys.argv[1])
for i in range(int(sys.argv[2])):
    lst.append({"writer": sys.argv[4], "i": i})
lst.close()
"""


@pytest.mark.long
def test_four_processes_appending_lose_nothing(s3_url: str) -> None:
    """4 processes x 50 appends to one S3 List: exactly 200 items, each once,
    each writer's items in its own order (forked warm, the four contend on
    order.txt's compare-and-swap from their first append)."""
    sos.List(s3_url).close()
    procs = [forked.start("-c", _APPENDER, s3_url, "50", ROOT, str(w)) for w in range(4)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0, 0, 0]
    with sos.List(s3_url) as lst:
        items = list(lst)
    assert len(items) == 200
    for w in range(4):
        assert [x["i"] for x in items if x["writer"] == str(w)] == list(range(50))


def test_transactions_from_eight_threads_count_exactly(s3_url: str) -> None:
    """8 threads, each with its own handle, increment one key inside
    transactions (a read-modify-write only the lease protects): exact count,
    and no record or lease left behind."""
    sos.Dict(s3_url).close()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with sos.Dict(s3_url) as db:
                for _ in range(3):
                    with db.transaction():
                        db["n"] = db.get("n", 0) + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sos.Dict(s3_url) as db:
        assert db["n"] == 24
    storage = S3Storage(s3_url)
    try:
        assert storage.list(".sos") in ([], ["txn.done"])  # no record, no part, no lease
    finally:
        storage.close()


def _local_store(tmp_path: Path) -> tuple[Path, Path]:
    d, lst = tmp_path / "users", tmp_path / "todo"
    with sos.Dict(d) as db:
        db.update({"ada": {"born": 1815}, "grace": [1906, "é"], "": None})
    with sos.List(lst) as todo:
        todo.extend(["design", {"n": 2}, 3])
        del todo[1]
        todo.insert(0, "first")
    return d, lst


def _upload(client, directory: Path, bucket: str, prefix: str) -> int:
    """Every file, object by object, key = its path under the directory."""
    count = 0
    for root, _, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            rel = path.relative_to(directory).as_posix()
            client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=path.read_bytes())
            count += 1
    return count


def _download(client, bucket: str, prefix: str, directory: Path) -> int:
    count = 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for item in page.get("Contents", ()):
            path = directory / item["Key"][len(prefix) + 1 :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            count += 1
    return count


def _uploaded(s3_server: S3Server, s3_url: str, tmp_path: Path) -> tuple[Path, Path]:
    d, lst = _local_store(tmp_path)
    bucket, prefix = split(s3_url)
    client = s3_server.client()
    try:
        assert _upload(client, d, bucket, f"{prefix}/users") > 3
        assert _upload(client, lst, bucket, f"{prefix}/todo") > 3
    finally:
        client.close()
    return d, lst


def test_a_local_store_uploaded_object_by_object_opens_on_s3(
    s3_server: S3Server, s3_url: str, tmp_path: Path
) -> None:
    d, _ = _uploaded(s3_server, s3_url, tmp_path)
    with sos.open(f"{s3_url}/users") as db, sos.Dict(d) as local:
        assert isinstance(db, sos.Dict)
        assert dict(db.items()) == dict(local.items())
        assert len(db) == 3
    with sos.open(f"{s3_url}/todo") as todo:
        assert isinstance(todo, sos.List)
        assert list(todo) == ["first", "design", 3]
        todo.append("more")  # and it stays writable there
    with sos.List(f"{s3_url}/todo") as todo:
        assert list(todo) == ["first", "design", 3, "more"]


def test_check_is_clean_on_an_uploaded_store(
    s3_server: S3Server, s3_url: str, tmp_path: Path
) -> None:
    _uploaded(s3_server, s3_url, tmp_path)
    assert sos.check(f"{s3_url}/users") == []
    assert sos.check(f"{s3_url}/todo") == []


def test_an_s3_store_downloaded_object_by_object_opens_locally(
    s3_server: S3Server, s3_url: str, tmp_path: Path
) -> None:
    with sos.Dict(f"{s3_url}/users") as db:
        db.update({"ada": {"born": 1815}, "grace": [1906, "é"]})
    with sos.List(f"{s3_url}/todo") as todo:
        todo.extend(["a", "b", "c"])
        todo.pop(1)
    bucket, prefix = split(s3_url)
    client = s3_server.client()
    try:
        assert _download(client, bucket, f"{prefix}/users", tmp_path / "users") >= 3
        assert _download(client, bucket, f"{prefix}/todo", tmp_path / "todo") >= 3
    finally:
        client.close()
    assert sos.check(tmp_path / "users") == []
    assert sos.check(tmp_path / "todo") == []
    with sos.open(tmp_path / "users") as db:
        assert dict(db.items()) == {"ada": {"born": 1815}, "grace": [1906, "é"]}
    with sos.open(tmp_path / "todo") as todo:
        assert list(todo) == ["a", "c"]


# -- the command line, and what a store refuses --------------------------------------


def sos_command(*args: str) -> forked.Child:
    return forked.run("-m", "sos", *args)


def test_the_command_line_reads_an_s3_store(s3_url: str) -> None:
    with sos.Dict(s3_url) as db:
        db["ada"] = {"born": 1815}
    done = sos_command("get", s3_url, "ada")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"born": 1815}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bucket": "no-such-bucket"}, "there is no bucket 'no-such-bucket'"),
        ({"AWS_SECRET_ACCESS_KEY": "wrong"}, "refused the credentials"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_MAX_ATTEMPTS": "1"}, "cannot reach"),
    ],
)
def test_the_command_line_names_the_url_without_a_traceback(
    s3_url: str, monkeypatch: pytest.MonkeyPatch, change: dict[str, str], message: str
) -> None:
    with sos.Dict(s3_url) as db:
        db["ada"] = 1
    url = s3_url
    for name, value in change.items():
        if name == "bucket":
            url = f"s3://{value}/{split(s3_url)[1]}"
        else:
            monkeypatch.setenv(name, value)
    done = sos_command("get", url, "ada")
    assert done.returncode != 0
    assert message in done.stderr and url in done.stderr
    assert "Traceback" not in done.stderr and "botocore" not in done.stderr


def test_a_store_is_not_created_or_written_on_a_server_ignoring_conditions(
    rclone_s3: str, tmp_path: Path
) -> None:
    with pytest.raises(sos.Error, match="ignores If-None-Match") as caught:
        sos.List("s3://bucket/store")
    assert rclone_s3 in str(caught.value) and "s3://bucket/store" in str(caught.value)
    storage = S3Storage("s3://bucket/store")
    try:
        assert list(storage.walk()) == []  # nothing was written
        # A store made elsewhere opens for reading; its first write is refused.
        local = tmp_path / "made-elsewhere"
        with sos.List(local) as lst:
            lst.append("kept")
        for path in local.rglob("*"):
            if path.is_file():
                storage.write(path.relative_to(local).as_posix(), path.read_bytes())
    finally:
        storage.close()
    with sos.List("s3://bucket/store") as lst:
        assert list(lst) == ["kept"]
        with pytest.raises(sos.Error, match="ignores If-None-Match"):
            lst.append("lost?")
        assert list(lst) == ["kept"]

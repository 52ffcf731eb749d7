"""``sos copy`` and ``sos diff`` between a local directory and the real S3
server (SeaweedFS), in-process through ``sos.cli.main``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import SOS, sos

import sos as sos_api
from sos.storage.registry import open_storage
from sos.storage.s3.storage import S3Storage

pytestmark = pytest.mark.s3  # a real server: .ci/s3.sh installs it


def files(store: str | Path, *, reserved: bool = False) -> dict[str, bytes]:
    """A store's files, name -> bytes; ``.sos/`` only if ``reserved``."""
    storage = open_storage(str(store))
    try:
        return {n: storage.read(n) for n in storage.walk() if reserved or not n.startswith(".sos/")}
    finally:
        storage.close()


def is_document(name: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{32}\.json", name) is not None


# Three times the S3 pool's 8 requests in flight: enough to show the copy's
# parallelism and resume; each key costs ~7 requests per test.
KEYS = 24
VALUES = {f"user-{i}": {"n": i, "tags": ["a", "b"][: i % 3]} for i in range(KEYS)}


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    with sos_api.Dict(path) as db:
        db.update(VALUES)
    return path


def test_copy_to_s3_and_back_keeps_every_byte(users: Path, s3_url: str, tmp_path: Path):
    done = sos("copy", users, s3_url)
    assert done.stderr == (
        f"sos: copied {KEYS} keys from {users} to {s3_url} "
        f"({KEYS + 4} files written and verified)\n"
    )
    assert files(s3_url) == files(users)
    assert sos("diff", users, s3_url).stdout == ""
    back = tmp_path / "back"
    sos("copy", s3_url, back)
    assert files(back) == files(users)
    assert json.loads((back / ".sos" / "copy.json").read_text())["source"] == s3_url


def test_a_list_on_s3_keeps_its_order(tmp_path: Path, s3_url: str):
    todo = tmp_path / "todo"
    with sos_api.List(todo) as lst:
        lst.extend(range(40))
        lst.insert(3, "three")
        del lst[10:20]
        expected = list(lst)
    sos("copy", todo, s3_url)
    with sos_api.open(s3_url) as lst:
        assert list(lst) == expected
    assert files(s3_url)["order.txt"] == (todo / "order.txt").read_bytes()


def test_the_copy_to_s3_runs_requests_in_parallel(
    users: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch
):
    busy, most = 0, 0
    guard = threading.Lock()
    put = S3Storage.put_object

    def counting(self: S3Storage, name: str, data: bytes, **conditions: str) -> str | None:
        nonlocal busy, most
        with guard:
            busy += 1
            most = max(most, busy)
        try:
            return put(self, name, data, **conditions)
        finally:
            with guard:
                busy -= 1

    monkeypatch.setattr(S3Storage, "put_object", counting)
    sos("copy", users, s3_url)
    assert 1 < most <= S3Storage(s3_url).parallelism()
    assert files(s3_url) == files(users)


def test_a_rerun_on_s3_resumes(users: Path, s3_url: str):
    sos("copy", users, s3_url)
    storage = open_storage(s3_url)
    try:
        record = json.loads(storage.read(".sos/copy.json"))
        storage.write(".sos/copy.json", json.dumps({**record, "finished": False}).encode())
        docs = sorted(n for n in files(s3_url) if n.endswith(".json") and "/" in n)
        storage.remove(["sos.json", *docs[:5]])
        storage.write(docs[5], b'{"key": "user-0", "value": "changed"}\n')
    finally:
        storage.close()
    done = sos("copy", users, s3_url)
    assert "(7 files written and verified)" in done.stderr  # 5 + 1 + sos.json
    assert files(s3_url) == files(users)


def test_copy_refuses_a_non_empty_bucket_prefix_and_writes_nothing(users: Path, s3_url: str):
    with sos_api.Dict(s3_url) as db:
        db["other"] = 1
    before = files(s3_url, reserved=True)
    proc = sos("copy", users, s3_url, expect=1)
    assert proc.stderr == (
        f"sos copy: {s3_url}: is not empty (it holds a sos store); --force to make it a "
        f"copy of {users}\n"
    )
    assert files(s3_url, reserved=True) == before
    proc = sos("copy", s3_url, s3_url + "/", expect=2)
    assert "are the same store" in proc.stderr
    sos("copy", "--force", users, s3_url)
    assert sos("diff", "--stat", users, s3_url).stdout.endswith(f", {KEYS} the same (keys)\n")


def test_diff_between_s3_and_a_directory(users: Path, s3_url: str):
    sos("copy", users, s3_url)
    with sos_api.open(s3_url) as db:
        db["user-1"] = "changed"
        del db["user-2"]
    proc = sos("diff", users, s3_url, expect=1)
    assert proc.stdout.startswith(f"only in {users}: user-2\n--- {users} user-1\n")
    assert sos("diff", "--stat", s3_url, users, expect=1).stdout == (
        f"0 only in {s3_url}, 1 only in {users}, 1 changed, {KEYS - 2} the same (keys)\n"
    )
    proc = sos("diff", users, s3_url + "/missing", expect=2)
    assert proc.stderr == f"sos diff: {s3_url}/missing: not a sos store (no sos.json)\n"


@pytest.mark.slow  # the rerun waits out the dead copy's lease (30 s)
def test_a_copy_to_s3_killed_halfway_then_rerun_ends_equal(tmp_path: Path, s3_url: str):
    source = tmp_path / "source"
    (tmp_path / "in.json").write_text(json.dumps([{"n": i} for i in range(1500)]))
    sos("load", source, tmp_path / "in.json")
    proc = subprocess.Popen(
        [SOS, "copy", str(source), s3_url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    storage = open_storage(s3_url)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and not any(map(is_document, storage.walk())):
            assert time.monotonic() < deadline, "the copy wrote nothing in 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, f"the copy ended before it was killed: {err}"
        assert not storage.exists("sos.json")  # cut short: not a store
        assert 0 < sum(map(is_document, storage.walk())) < 1500
    finally:
        storage.close()
    resumed = sos("copy", source, s3_url)
    assert f"sos copy: {s3_url}: waiting for its lock" in resumed.stderr  # the dead one's lease
    assert "copied 1,500 items" in resumed.stderr
    assert sos("diff", source, s3_url).stdout == ""
    assert files(s3_url) == files(source)

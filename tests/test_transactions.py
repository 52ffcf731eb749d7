"""Transactions: all or nothing, isolated until commit, safe read-modify-write."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import digest_path, plant_crash_leftovers, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

import sos
from sos import txn as _txn
from sos.storage import atomic as _atomic
from sos.txn import record as _record


def test_a_transfer_commits_both_keys(store_path: Path):
    with sos.Dict(store_path) as db:
        db.update(alice=100, bob=0)
        with db.transaction():
            a, b = db["alice"], db["bob"]
            db["alice"] = a - 10
            db["bob"] = b + 10
            assert db["alice"] == 90 and db["bob"] == 10  # reads see the block's writes
        assert dict(db) == {"alice": 90, "bob": 10}
    assert not (store_path / ".sos" / "txn.json").exists()  # the record is gone


@pytest.mark.parametrize("kind", [sos.Dict, sos.List])
def test_an_exception_leaves_the_directory_byte_identical(store_path: Path, kind: type):
    with kind(store_path) as store:
        if kind is sos.Dict:
            store.update(a=1, b=2)
        else:
            store.extend([1, 2, 3])
        with store.transaction():  # the first one also raises the format to 2
            pass
        before = snapshot(store_path)
        with pytest.raises(RuntimeError), store.transaction():
            if kind is sos.Dict:
                store["a"] = "changed"
                store["new"] = [1]
                del store["b"]
            else:
                store[0] = "changed"
                store.append("new")
                del store[1]
            raise RuntimeError("abort")
        assert snapshot(store_path) == before


def test_large_transactions_spill_to_disk_and_read_back(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Staged bytes past PART_LIMIT go to part files, not memory; reads inside
    the block still find them, and the commit applies every one."""
    monkeypatch.setattr(_txn.record, "PART_LIMIT", 2000)
    values = {f"k{i}": {"n": i, "pad": "x" * 100} for i in range(60)}
    with sos.Dict(store_path) as db:
        with db.transaction():
            for key, value in values.items():
                db[key] = value
            parts = [p for p in (store_path / ".sos").iterdir() if p.name.endswith(".part")]
            assert len(parts) >= 2, "nothing was written out before the commit"
            assert db["k0"] == values["k0"]  # read back from a part file
            db["k0"] = "overwritten after it was spilled"
        assert db["k0"] == "overwritten after it was spilled"
        assert {k: db[k] for k in values if k != "k0"} == {
            k: v for k, v in values.items() if k != "k0"
        }
    # parts and record gone; the record retired as txn.done, for watchers
    assert [p.name for p in (store_path / ".sos").iterdir()] == ["txn.done"]


def test_nested_transactions_and_close_inside_are_errors(store_path: Path):
    with sos.Dict(store_path) as db, db.transaction():
        db["a"] = 1
        with pytest.raises(sos.Error, match="do not nest"), db.transaction():
            pass
        with pytest.raises(sos.Error, match="close"):
            db.close()
        with db.batch():  # a batch inside joins the transaction (it promises less)
            db["b"] = 2
    with sos.Dict(store_path) as db:
        assert dict(db) == {"a": 1, "b": 2}


def test_other_threads_and_processes_see_nothing_until_commit(store_path: Path):
    with sos.Dict(store_path) as db:
        db["k"] = "old"
        seen: list[Any] = []
        with db.transaction():
            db["k"] = "new"
            db["added"] = 1
            thread = threading.Thread(target=lambda: seen.append((db["k"], "added" in db)))
            thread.start()
            thread.join()
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sos,sys; d=sos.Dict(sys.argv[1]); print(d['k'])",
                    str(store_path),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.stdout.strip() == "old", out.stderr
        assert seen == [("old", False)]
        assert db["k"] == "new"


def test_format_is_raised_and_support_files_refreshed_before_the_first_transaction(
    store_path: Path,
):
    with sos.Dict(store_path) as db:
        db["a"] = 1
    meta = json.loads((store_path / "sos.json").read_text())
    assert meta["format"] == 1  # an older sos can still open a store never used so
    (store_path / ".gitignore").write_text(".sos-tmp-*\n")  # as an older sos wrote it
    with sos.Dict(store_path) as db, db.transaction():
        db["b"] = 2
    assert json.loads((store_path / "sos.json").read_text())["format"] == 2
    assert ".sos/" in (store_path / ".gitignore").read_text()
    assert "- .sos/" in (store_path / ".rsync-filter").read_text()


def test_update_is_all_or_nothing(store_path: Path):
    with sos.Dict(store_path) as db:
        db["a"] = 1
        with pytest.raises(TypeError):
            db.update({"a": 2, "b": object()})  # refused before anything is written
        assert dict(db) == {"a": 1}
        db.update({"a": 2, "b": 3})
        assert dict(db) == {"a": 2, "b": 3}


def test_list_transaction_is_atomic_and_reads_its_own_order(store_path: Path):
    with sos.List(store_path) as lst:
        lst.extend(["a", "b", "c"])
        with lst.transaction():
            lst[0] = "A"
            lst.append("d")
            lst.insert(0, "first")
            del lst[2]
            lst.append("temp")
            lst.pop()
            assert list(lst) == ["first", "A", "c", "d"]
        assert list(lst) == ["first", "A", "c", "d"]
        assert sos.check(store_path) == []


def test_transactions_on_memory_storage(memory_url: str):
    with sos.Dict(memory_url) as db:
        db["n"] = 0
        with pytest.raises(RuntimeError), db.transaction():
            db["n"] = 99
            raise RuntimeError
        with db.transaction():
            db["n"] = db["n"] + 1
        assert db["n"] == 1


COUNTER = """
import sys, sos
db = sos.Dict(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with db.transaction():
        db["n"] = db.get("n", 0) + 1
"""


def test_four_processes_incrementing_in_transactions_lose_nothing(store_path: Path):
    sos.Dict(store_path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", COUNTER, str(store_path), "100"]) for _ in range(4)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    with sos.Dict(store_path) as db:
        assert db["n"] == 400


def test_threads_incrementing_in_transactions_lose_nothing(store_path: Path):
    with sos.Dict(store_path) as db:
        db["n"] = 0

        def work() -> None:
            for _ in range(25):
                with db.transaction():
                    db["n"] = db["n"] + 1

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert db["n"] == 200


TRANSFERS = """
import sys, sos
db = sos.Dict(sys.argv[1])
print("ready", flush=True)
while True:
    with db.transaction():
        db["a"] = db["a"] - 1
        db["b"] = db["b"] + 1
"""


def test_dump_and_reading_never_mix_a_transactions_before_and_after(
    store_path: Path, capsys: pytest.CaptureFixture[str]
):
    from sos.cli import main

    with sos.Dict(store_path) as db:
        db.update(a=1000, b=0, **{f"pad{i}": i for i in range(30)})
    writer = subprocess.Popen(
        [sys.executable, "-c", TRANSFERS, str(store_path)], stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
        sums = set()
        for _ in range(20):
            assert main(["dump", str(store_path)]) == 0
            data = json.loads(capsys.readouterr().out)
            sums.add(data["a"] + data["b"])
            with sos.Dict(store_path) as db, db.reading():
                items = dict(db.items())
                sums.add(items["a"] + items["b"])
        assert sums == {1000}
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
    # kill -9 may land inside a write and leave its temporary file: the
    # store's own repair removes it, and the sum still holds.
    sos.check(store_path, repair=True)
    assert sos.check(store_path) == []
    with sos.Dict(store_path) as db:
        assert db["a"] + db["b"] == 1000


def test_a_handles_first_transaction_removes_what_a_crashed_one_left(store_path: Path):
    """A writer killed while it wrote a record leaves a temp file in .sos/,
    one killed before its commit point its spilled parts: the next handle's
    first transaction removes them (under the exclusive lock, where no live
    writer can own them), so they do not stay for good where no one runs
    sos check --repair. Plain writes do not look (not on their path)."""
    with sos.Dict(store_path) as db:
        db["a"] = 1
    temp, part = plant_crash_leftovers(store_path)
    with sos.Dict(store_path) as db:
        db["b"] = 2
        assert temp.exists() and part.exists()
        with db.transaction():
            db["c"] = 3
        assert not temp.exists() and not part.exists()
        temp.write_bytes(b"made after this handle looked")  # once per handle
        with db.transaction():
            db["d"] = 4
        assert temp.exists()
        temp.unlink()
        assert dict(db) == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert sos.check(store_path) == []


def test_a_leftover_the_sweep_cannot_remove_does_not_stop_a_transaction(store_path: Path):
    """The sweep is best effort: a leftover it cannot remove (here a
    directory under a temp file's name) stays for sos check to report."""
    with sos.Dict(store_path) as db:
        db["a"] = 1
    stuck = store_path / ".sos" / ".sos-tmp-00000000000000bb"
    stuck.mkdir(parents=True)
    (stuck / "inside").write_bytes(b"x")
    with sos.Dict(store_path) as db:
        with db.transaction():
            db["b"] = 2
        assert dict(db) == {"a": 1, "b": 2}
    assert stuck.is_dir()
    shutil.rmtree(stuck)


def test_applying_a_spilled_transaction_reads_each_part_once(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Applying must not re-read a part file per name (quadratic on a big load)."""
    monkeypatch.setattr(_txn.record, "PART_LIMIT", 2000)
    reads: list[str] = []

    with sos.Dict(store_path) as db:
        storage = db._storage
        original = storage.read

        def counting_read(name: str) -> bytes:
            if name.endswith(".part"):
                reads.append(name)
            return original(name)

        monkeypatch.setattr(storage, "read", counting_read)
        db.update({f"k{i}": {"pad": "x" * 100} for i in range(200)})
        assert db["k199"] == {"pad": "x" * 100}
    parts = set(reads)
    assert len(parts) >= 5
    assert len(reads) == len(parts), "a part file was read more than once"


def test_a_transaction_keeps_old_modes_and_stats_no_new_key_for_one(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A key the transaction found absent (under the exclusive lock) has no
    old file whose mode to keep: it is staged without that stat, and gets
    the umask's mode; a replaced key keeps its own (a user's chmod 600)."""
    keys = {digest_path(store_path, k).name: k for k in ["old", *(f"new{i}" for i in range(5))]}
    looked_up: list[str] = []
    real = _atomic._mode_to_keep

    def counting(target: str, temp_fd: int) -> int | None:
        if os.path.basename(target) in keys:  # not the store's own files
            looked_up.append(keys[os.path.basename(target)])
        return real(target, temp_fd)

    with sos.Dict(store_path) as db:
        db["old"] = 1
        with db.transaction():  # the first one raises the store's format: not counted
            db["other"] = 0
        digest_path(store_path, "old").chmod(0o600)
        monkeypatch.setattr(_atomic, "_mode_to_keep", counting)
        with db.transaction():
            db["old"] = 2
            for i in range(5):
                db[f"new{i}"] = i
        assert looked_up == ["old"]
        assert stat.S_IMODE(digest_path(store_path, "old").stat().st_mode) == 0o600
        umask = os.umask(0)
        os.umask(umask)
        for i in range(5):
            mode = stat.S_IMODE(digest_path(store_path, f"new{i}").stat().st_mode)
            assert mode == 0o666 & ~umask
        assert {k: db[k] for k in db} == {"old": 2, "other": 0, **{f"new{i}": i for i in range(5)}}


@settings(max_examples=200, deadline=None)
@given(name=st.text(), before=st.none() | st.text(), after=st.none() | st.text())
def test_a_record_line_is_what_json_dumps_writes(
    name: str, before: str | None, after: str | None
) -> None:
    """The record's lines are built by hand for speed; readers parse them as
    JSON, so they must be exactly the encoder's output, every escape included."""
    data = None if after is None else after.encode("utf-8")
    line = _record.entry(name, before, data)
    fields = {"name": name, "before": before, "after": after}
    assert line == json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n"
    assert json.loads(line) == fields

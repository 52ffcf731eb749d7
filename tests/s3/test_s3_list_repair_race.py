"""``sos check --repair`` on a live S3 store (issue 22): appends there take no
lock, so one may land between the scan's read of ``order.txt`` and the
repair's rewrite of it. The rewrite is a compare-and-swap: the append is kept.
Forced interleavings (as in tests/test_list_repair_race.py, on SeaweedFS) and
real appending processes (tests/s3/list_worker.py) while the manifest is
damaged and repaired."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest
from test_list_repair_race import RACE_DAMAGES, keeps_losing, race_repair

import sos
from sos.storage.registry import open_storage
from sos.storage.s3.storage import S3Storage

from .test_s3_list_swap import entries, start

pytestmark = [
    pytest.mark.s3,  # a real server: .ci/s3.sh installs it
    pytest.mark.usefixtures("fork_server"),  # its appenders: tests/forked.py
]


@pytest.mark.parametrize("kind", sorted(RACE_DAMAGES))
def test_an_append_during_repair_is_kept_on_s3(s3_url: str, kind: str) -> None:
    race_repair(s3_url, S3Storage, kind)


def test_repair_gives_up_when_the_manifest_keeps_changing_on_s3(s3_url: str) -> None:
    keeps_losing(s3_url, S3Storage)


def name_missing_items(url: str, prefix: str) -> None:
    """Damage the manifest as a bad merge would: a line naming ten items no
    file holds. By compare-and-swap, so the damage itself drops no append."""
    storage = open_storage(url)
    try:
        while True:
            data, version = storage.read_versioned("order.txt")
            if storage.swap("order.txt", data + f"{prefix} 0-9\n".encode(), version):
                return
    finally:
        storage.close()


@pytest.mark.long
def test_repairs_while_processes_append_lose_no_append(s3_url: str, tmp_path: Path) -> None:
    """Two processes append (no lease) while this one damages the manifest
    and repairs it, again and again: every acknowledged append is in the
    list exactly once, and the store ends clean."""
    url = s3_url + "/live"
    sos.List(url).close()
    logs = [tmp_path / f"a{n}.log" for n in range(2)]
    procs = [start("append", url, f"a{n}", log, 20) for n, log in enumerate(logs)]
    rounds, raced, gave_up = 0, 0, 0
    try:
        deadline = time.monotonic() + 60
        while not any(entries(log) for log in logs):  # appending
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.01)
        while any(p.poll() is None for p in procs) or rounds < 3:
            name_missing_items(url, f"dead{rounds:012x}")
            try:
                found = sos.check(url, repair=True)
            except sos.Error as exc:  # lost every try: it says so, writes nothing
                assert "another writer kept changing" in str(exc)
                gave_up += 1
            else:
                dropped = [p for p in found if p.code == "missing-item"]
                assert dropped
                assert all("dropped from the manifest" in str(p.action) for p in dropped)
                raced += any("appended while repair ran" in str(p.action) for p in found)
            rounds += 1
    finally:
        for proc in procs:
            if proc.poll() is None and rounds == 0:
                proc.kill()
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    if gave_up:
        sos.check(url, repair=True)  # no one appends now: it finishes
    assert sos.check(url) == []
    acknowledged = [tuple(e["append"]) for log in logs for e in entries(log)]
    assert len(acknowledged) == 40
    with sos.List(url) as lst:
        found_items = collections.Counter((v["w"], v["i"]) for v in lst)
    assert found_items == collections.Counter(acknowledged), (
        f"appends lost or doubled in {rounds} repairs ({raced} raced an append)"
    )
    print(f"{rounds} repairs, {raced} raced an append, {gave_up} gave up")

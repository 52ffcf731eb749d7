"""The bounded pool behind many-at-once reads (sos.storage.pool) and the
sequential defaults of Storage.read_many / list_many / write_many_lazy."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

import sos
from sos.storage import pool as _pool
from sos.storage.registry import open_storage


class Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.started = 0

    def __call__(self, n: int) -> int:
        with self.lock:
            self.now += 1
            self.started += 1
            self.peak = max(self.peak, self.now)
        time.sleep(random.uniform(0.001, 0.006))  # finish out of order
        with self.lock:
            self.now -= 1
        if n == 13:
            raise ValueError("thirteen")
        return n * n


def test_results_come_in_input_order_with_bounded_concurrency() -> None:
    calls = Calls()
    assert list(_pool.ordered(calls, range(12), 4)) == [n * n for n in range(12)]
    assert 2 <= calls.peak <= 4


def test_an_error_is_raised_at_its_place() -> None:
    got = []
    with pytest.raises(ValueError, match="thirteen"):
        for value in _pool.ordered(Calls(), range(40), 4):
            got.append(value)
    assert got == [n * n for n in range(13)]


def test_a_reader_that_stops_early_started_at_most_the_window() -> None:
    calls = Calls()
    results = _pool.ordered(calls, range(10_000), 3)
    assert next(results) == 0
    results.close()
    assert calls.started <= 2 * 3 + 1


def test_one_worker_is_plain_map_in_this_thread() -> None:
    threads: set[int] = set()

    def where(n: int) -> int:
        threads.add(threading.get_ident())
        return n

    assert list(_pool.ordered(where, range(5), 1)) == list(range(5))
    assert threads == {threading.get_ident()}


def test_the_pool_size_comes_from_the_option_then_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SOS_S3_POOL", raising=False)
    assert _pool.pool_size() == 16
    monkeypatch.setenv("SOS_S3_POOL", "5")
    assert _pool.pool_size() == 5 and _pool.pool_size(3) == 3
    monkeypatch.setenv("SOS_S3_POOL", "lots")
    with pytest.raises(sos.Error, match="SOS_S3_POOL must be a whole number from 1 to 256"):
        _pool.pool_size()


def test_the_sequential_defaults_match_read_and_list(tmp_path: Path) -> None:
    with sos.Dict(tmp_path / "d") as db:
        db.update({"a": 1, "b": 2})
        names = [db.path_of(k).split(str(tmp_path / "d") + "/")[1] for k in ("a", "b")]
    storage = open_storage(tmp_path / "d")
    try:
        assert storage.parallelism() == 1
        got = dict(storage.read_many([names[0], "ff/missing.json", names[1]]))
        assert got == {
            names[0]: storage.read(names[0]),
            "ff/missing.json": None,
            names[1]: storage.read(names[1]),
        }
        dirs = [n.split("/")[0] for n in names]
        assert [(d, sorted(e)) for d, e in storage.list_many(dirs)] == [
            (d, sorted(storage.list(d))) for d in dirs
        ]
        storage.write_many_lazy([(names[0], storage.read(names[1]))])
        storage.sync_names([names[0]])
        assert storage.read(names[0]) == storage.read(names[1])
    finally:
        storage.close()

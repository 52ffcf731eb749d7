"""A batch's uncommitted changes are seen by its own thread and by nothing else:
not another thread sharing the handle, not another handle, not another process.

For Dict, List and writeback alike (the bug this guards against: a List item
set inside a batch, and a writeback Dict's key, were visible to other threads
before the batch committed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sos


def in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` run in another thread; its result, or the exception it raised."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except Exception as exc:
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "a read from another thread waited on the batch"
    return box[0]


def in_process(path: Path, code: str) -> str:
    """What a fresh process prints after opening the store at ``path`` as ``db``."""
    script = f"import sos, json, sys\ndb = sos.open(sys.argv[1])\n{code}"
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("writeback", [False, True])
def test_dict_batch_is_invisible_outside_its_thread(store_path: Path, writeback: bool):
    with sos.Dict(store_path, writeback=writeback) as db:
        db["old"] = "committed"
        db["gone"] = "still here"
        with db.batch():
            db["old"] = "uncommitted"
            db["new"] = "uncommitted"
            del db["gone"]
            # the batch's own thread sees its writes
            assert db["old"] == "uncommitted" and "new" in db and "gone" not in db
            # another thread of the same handle does not
            assert in_thread(lambda: db["old"]) == "committed"
            assert in_thread(lambda: "new" in db) is False
            assert in_thread(lambda: db["gone"]) == "still here"
            assert in_thread(lambda: sorted(db)) == ["gone", "old"]
            # nor does another handle, nor another process
            with sos.Dict(store_path) as other:
                assert other["old"] == "committed" and "new" not in other
            seen = json.loads(in_process(store_path, "print(json.dumps(dict(db)))"))
            assert seen == {"gone": "still here", "old": "committed"}
            assert in_process(store_path, "print(db['old'], 'new' in db)") == "committed False"
        assert in_thread(lambda: db["old"]) == "uncommitted"
        assert in_thread(lambda: "gone" in db) is False
    assert in_process(store_path, "print(db['old'], db['new'])") == "uncommitted uncommitted"


@pytest.mark.parametrize("writeback", [False, True])
def test_list_batch_is_invisible_outside_its_thread(store_path: Path, writeback: bool):
    with sos.List(store_path, writeback=writeback) as lst:
        lst.extend(["a", "b"])
        with lst.batch():
            lst[0] = "uncommitted"
            lst.append("c")
            assert lst == ["uncommitted", "b", "c"]
            assert in_thread(lambda: lst[0]) == "a"
            assert in_thread(lambda: len(lst)) == 2
            assert in_thread(lambda: list(lst)) == ["a", "b"]
            with sos.List(store_path) as other:
                assert list(other) == ["a", "b"]
            assert in_process(store_path, "print(json.dumps(list(db)))") == '["a", "b"]'
        assert in_thread(lambda: list(lst)) == ["uncommitted", "b", "c"]
    assert in_process(store_path, "print(json.dumps(list(db)))") == '["uncommitted", "b", "c"]'


def test_writeback_values_kept_inside_a_batch_are_the_batchs_own(store_path: Path):
    """A writeback value read and changed inside a batch is written on commit,
    and another thread reads the committed value, not the batch's copy."""
    with sos.Dict(store_path, writeback=True) as db:
        db["k"] = [1]
        db.sync()
        with db.batch():
            db["k"].append(2)  # changed in place: written back when the batch commits
            assert db["k"] == [1, 2]
            assert in_thread(lambda: db["k"]) == [1]
        assert in_process(store_path, "print(db['k'])") == "[1, 2]"


def test_a_discarded_batch_leaves_no_trace_for_any_thread(store_path: Path):
    with sos.List(store_path, writeback=True) as lst:
        lst.append("a")
        with pytest.raises(RuntimeError), lst.batch():
            lst[0] = "never"
            raise RuntimeError
        assert lst[0] == "a"
        assert in_thread(lambda: lst[0]) == "a"


def test_a_second_handle_in_the_batch_thread_is_refused_not_deadlocked(store_path: Path):
    """flock would make the second handle wait for the first, forever."""
    with sos.Dict(store_path) as a, sos.Dict(store_path) as b, a.batch():
        a["x"] = 1
        with pytest.raises(sos.Error, match="another handle"):
            b["y"] = 2
        with pytest.raises(sos.Error, match="another handle"):
            sos.check(store_path, repair=True)
    with sos.Dict(store_path) as db:
        assert dict(db) == {"x": 1}

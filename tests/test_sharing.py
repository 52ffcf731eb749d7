"""Threads and processes sharing a store: nothing lost, doubled or torn; a killed
lock holder blocks no one."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import forked
import pytest
from conftest import temp_files

import sos

pytestmark = pytest.mark.usefixtures("fork_server")  # the children of _start

# Each child waits for the "go" file so that all of them really run at once.
_PRELUDE = textwrap.dedent(
    """
    import json, os, sys, time
    import sos
    path, go = sys.argv[1], sys.argv[2]
    while not os.path.exists(go):
        time.sleep(0.001)
    """
)


def _start(tmp_path: Path, body: str, *args: str, count: int) -> list[forked.Child]:
    """``count`` processes running ``body`` (forked warm: tests/forked.py)."""
    script = _PRELUDE + textwrap.dedent(body)
    go = tmp_path / "go"
    procs = [
        forked.start("-c", script, str(tmp_path / "store"), str(go), str(n), *args)
        for n in range(count)
    ]
    go.write_bytes(b"")
    return procs


def _finish(procs: list[forked.Child], timeout: float = 120) -> list[str]:
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def test_four_processes_appending_lose_and_double_nothing(tmp_path: Path):
    store = tmp_path / "store"
    sos.List(store).close()
    procs = _start(
        tmp_path,
        """
        n = int(sys.argv[3])
        with sos.List(path) as lst:
            for i in range(100):
                lst.append(f"{n}:{i}")
        """,
        count=4,
    )
    _finish(procs)
    with sos.List(store) as lst:
        items = list(lst)
    assert len(items) == 400
    assert len(set(items)) == 400
    for n in range(4):
        mine = [item for item in items if item.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(100)]  # each writer's order kept
    assert temp_files(store) == []


def test_processes_popping_take_each_item_once(tmp_path: Path):
    store = tmp_path / "store"
    with sos.List(store) as lst:
        lst.extend(range(90))
    procs = _start(
        tmp_path,
        """
        taken = []
        with sos.List(path) as lst:
            while True:
                try:
                    taken.append(lst.pop(0))
                except IndexError:
                    break
        print(json.dumps(taken))
        """,
        count=3,
    )
    import json

    taken = [json.loads(out) for out in _finish(procs)]
    everything = sorted(v for t in taken for v in t)
    assert everything == list(range(90))
    for t in taken:
        assert t == sorted(t)  # pop(0) under the lock: each saw a shrinking prefix
    with sos.List(store) as lst:
        assert len(lst) == 0


def test_setdefault_across_processes_has_one_winner(tmp_path: Path):
    store = tmp_path / "store"
    sos.Dict(store).close()
    procs = _start(
        tmp_path,
        """
        with sos.Dict(path) as db:
            print(json.dumps(db.setdefault("winner", int(sys.argv[3]))))
        """,
        count=4,
    )
    answers = {out.strip() for out in _finish(procs)}
    assert len(answers) == 1
    with sos.Dict(store) as db:
        assert str(db["winner"]) == answers.pop()


def test_last_writer_wins_and_no_reader_sees_a_torn_value(tmp_path: Path):
    store = tmp_path / "store"
    with sos.Dict(store) as db:
        db["k"] = {"writer": -1, "i": -1, "pad": ""}
    procs = _start(
        tmp_path,
        """
        n = int(sys.argv[3])
        with sos.Dict(path) as db:
            for i in range(40):
                db["k"] = {"writer": n, "i": i, "pad": str(n) * 20000}
        """,
        count=3,
    )
    reads = 0
    with sos.Dict(store) as db:
        while any(p.poll() is None for p in procs) or reads < 50:
            value = db["k"]  # a CorruptError here would be a torn read
            assert value["pad"] == ("" if value["writer"] < 0 else str(value["writer"]) * 20000)
            reads += 1
        _finish(procs)
        final = db["k"]
    assert final["i"] == 39  # the last write of one of the writers
    assert final["pad"] == str(final["writer"]) * 20000


def test_a_lock_held_by_a_killed_process_blocks_no_one(tmp_path: Path):
    store = tmp_path / "store"
    with sos.List(store) as lst:
        lst.append("before")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, sos\n"
            "lst = sos.List(sys.argv[1])\n"
            "with lst._storage.lock():\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            str(store),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        # really held: a non-blocking flock on the directory fails
        fd = os.open(store, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        # readers take no lock: reading works while a writer holds it
        with sos.List(store) as lst:
            assert lst == ["before"]
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    assert holder.returncode == -signal.SIGKILL
    # the next writer goes straight through (in a child, so a hang fails by timeout)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, sos\nwith sos.List(sys.argv[1]) as lst: lst.append('after')\n",
            str(store),
        ],
        check=True,
        timeout=60,
    )
    with sos.List(store) as lst:
        assert lst == ["before", "after"]


def errors_in_threads(work: Callable[[int], None], count: int = 4) -> list[BaseException]:
    """Run ``work(0)`` … ``work(count - 1)`` in threads at once; what they raised."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_threads_sharing_one_list_handle(store_path: Path):
    with sos.List(store_path) as lst:

        def work(n: int) -> None:
            for i in range(25):
                lst.append([n, i])
                lst.insert(0, [n, -i - 1])

        assert errors_in_threads(work) == []
        items = [tuple(v) for v in lst]
        assert len(items) == 200
        assert Counter(items) == Counter(
            (n, i) for n in range(4) for i in [*range(25), *range(-25, 0)]
        )
        for n in range(4):  # within a thread, appends stay in order
            assert [i for m, i in items if m == n and i >= 0] == list(range(25))


def test_threads_sharing_one_dict_handle(store_path: Path):
    popped: list[tuple[str, Any]] = []
    with sos.Dict(store_path) as db:
        db.update({f"k{n}": n for n in range(60)})

        def work(_: int) -> None:
            while True:
                try:
                    popped.append(db.popitem())
                except KeyError:
                    return

        assert errors_in_threads(work) == []
        assert sorted(popped) == sorted((f"k{n}", n) for n in range(60))
        assert len(db) == 0


def test_threads_with_their_own_handles(store_path: Path):
    sos.Dict(store_path).close()

    def work(n: int) -> None:
        with sos.Dict(store_path) as db:
            for i in range(20):
                db[f"{n}-{i}"] = i
                db.setdefault("shared", n)

    assert errors_in_threads(work) == []
    with sos.Dict(store_path) as db:
        assert len(db) == 81
        assert db["shared"] in range(4)


def _child_appends(lst: sos.List) -> None:
    lst.extend(["child"] * 5)
    lst.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_gets_its_own_ids(store_path: Path):
    """A handle inherited through fork must not reuse the parent's item ids."""
    with sos.List(store_path) as lst:
        lst.extend(["parent"] * 5)
        child = multiprocessing.get_context("fork").Process(target=_child_appends, args=(lst,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        lst.extend(["parent"] * 5)
        assert lst == ["parent"] * 5 + ["child"] * 5 + ["parent"] * 5
        lines = (store_path / "order.txt").read_text().splitlines()[1:]
        prefixes = [line.split()[0] for line in lines]
        assert len(set(prefixes)) == 2


def test_processes_creating_one_store_at_once(tmp_path: Path):
    """Half want a Dict, half a List, at a path that does not exist yet: one
    kind wins, its side all succeed, the others get a clear sos.Error."""
    procs = _start(
        tmp_path,
        """
        n = int(sys.argv[3])
        cls = sos.Dict if n % 2 else sos.List
        try:
            with cls(path) as store:
                if cls is sos.Dict:
                    store[f"k{n}"] = n
                else:
                    store.append(n)
            print("ok", cls.__name__)
        except sos.Error as exc:
            print("refused", cls.__name__)
        """,
        count=6,
    )
    results = [out.split() for out in _finish(procs)]
    with sos.open(tmp_path / "store") as store:
        winner = type(store).__name__
        assert len(store) == 3
    for verdict, kind in results:
        assert verdict == ("ok" if kind == winner else "refused")

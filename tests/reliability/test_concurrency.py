"""Writers in several processes, threads inside each, on one Dict and one List,
while reader processes iterate both all the time.

Afterwards: no reader saw an exception or a torn value; no list item lost or
doubled; and the final state is one a serial order of the reported operations
explains (each key holds the last thing some thread did to it; the list holds
exactly what was added and not popped).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import sos
from sos.storage import locks as _lock

from . import harness

LONG = os.environ.get("SOS_LONG") == "1"
WRITERS, THREADS, OPS = (4, 3, 400) if LONG else (3, 2, 60)
READERS = 2
KEYS = 6


def item(tag: str) -> dict[str, str]:
    return {"id": tag, "sum": hashlib.sha256(tag.encode()).hexdigest()}


def is_whole(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and value.get("sum") == hashlib.sha256(value["id"].encode()).hexdigest()
    )


def writer_thread(db: sos.Dict, lst: sos.List, tag: str, seed: int, log: list) -> None:
    rng = random.Random(seed)
    for n in range(OPS):
        value = item(f"{tag}-{n}")
        dice = rng.random()
        try:
            if dice < 0.3:
                key = f"k{rng.randrange(KEYS)}"
                db[key] = value
                log.append(["set", key, value["id"]])
            elif dice < 0.4:
                key = f"k{rng.randrange(KEYS)}"
                try:
                    del db[key]
                    log.append(["del", key, None])
                except KeyError:
                    log.append(["del-missing", key, None])
            elif dice < 0.7:
                lst.append(value)
                log.append(["add", None, value["id"]])
            elif dice < 0.85:
                lst.insert(rng.randrange(-3, 30), value)
                log.append(["add", None, value["id"]])
            else:
                try:
                    popped = lst.pop(rng.choice([0, -1, 1]))
                    log.append(["pop", None, popped["id"] if is_whole(popped) else "TORN"])
                except IndexError:
                    log.append(["pop-empty", None, None])
        except Exception as exc:
            log.append(["error", None, f"{type(exc).__name__}: {exc}"])


def writer_process(root: Path, wid: int, broken: bool) -> None:
    if broken:  # a build without the store lock
        _lock.StoreLock.acquire = lambda self, *a, **k: True  # type: ignore[method-assign]
        _lock.StoreLock.release = lambda self: None  # type: ignore[method-assign]
    db = sos.Dict(root / "dict")
    lst = sos.List(root / "list")
    logs: list[list] = [[] for _ in range(THREADS)]
    threads = [
        threading.Thread(
            target=writer_thread, args=(db, lst, f"w{wid}t{t}", wid * 100 + t, logs[t])
        )
        for t in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (root / f"writer-{wid}.json").write_text(json.dumps(logs))


def reader_process(root: Path, rid: int) -> None:
    result = {"reads": 0, "errors": []}
    stop = root / "stop"
    db = sos.Dict(root / "dict", create=False)
    lst = sos.List(root / "list", create=False)

    def read_dict() -> None:
        while not stop.exists():
            try:
                for key, value in db.items():
                    result["reads"] += 1
                    if not is_whole(value) or not key.startswith("k"):
                        result["errors"].append(f"torn dict value at {key}")
            except Exception as exc:
                result["errors"].append(f"dict: {type(exc).__name__}: {exc}")

    def read_list() -> None:
        while not stop.exists():
            try:
                for value in lst:
                    result["reads"] += 1
                    if not is_whole(value):
                        result["errors"].append("torn list item")
                if len(lst):
                    lst[-1]
            except IndexError:
                pass  # emptied between len() and the read
            except Exception as exc:
                result["errors"].append(f"list: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=read_dict), threading.Thread(target=read_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (root / f"reader-{rid}.json").write_text(json.dumps(result))


def _spawn(fn: Any, *args: Any) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except BaseException:
            code = 1
        os._exit(code)
    return pid


def run_concurrently(root: Path, broken: bool = False) -> tuple[int, int, list[str]]:
    """(writer ops, reads, violations) of one concurrent run."""
    sos.Dict(root / "dict").close()
    sos.List(root / "list").close()
    readers = [_spawn(reader_process, root, r) for r in range(READERS)]
    writers = [_spawn(writer_process, root, w, broken) for w in range(WRITERS)]
    found = []
    for pid in writers:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            found.append(f"a writer process failed ({status})")
    time.sleep(0.1)  # readers keep reading the final state a moment
    (root / "stop").touch()
    for pid in readers:
        os.waitpid(pid, 0)
    reads = 0
    for r in range(READERS):
        result = json.loads((root / f"reader-{r}.json").read_text())
        reads += result["reads"]
        found += result["errors"][:5]
    logs = [t for w in range(WRITERS) for t in json.loads((root / f"writer-{w}.json").read_text())]
    ops = sum(len(t) for t in logs)
    return ops, reads, found + explain(root, logs)


def explain(root: Path, logs: list[list]) -> list[str]:
    """Violations of "a serial order of the reported operations explains the end"."""
    found = [f"writer error: {e[2]}" for t in logs for e in t if e[0] == "error"][:5]
    try:
        with sos.Dict(root / "dict", create=False) as db:
            final = dict(db.items())
        with sos.List(root / "list", create=False) as lst:
            ids = [v["id"] if is_whole(v) else "TORN" for v in lst]
    except sos.Error as exc:
        return [*found, f"reading the end state raised {type(exc).__name__}: {exc}"]
    for key in {f"k{i}" for i in range(KEYS)} | set(final):
        # the last thing each thread did to the key: any of them may be last
        last = {None}
        touched = False
        for thread in logs:
            ops = [e for e in thread if e[1] == key and e[0] in ("set", "del")]
            if ops:
                last.add(ops[-1][2])
                touched = True
        if not touched:
            last = {None}
        got = final[key]["id"] if key in final else None
        if key in final and not is_whole(final[key]):
            found.append(f"dict key {key} torn")
        elif got not in last or (got is None and not touched and key in final):
            found.append(f"dict key {key} holds {got}, no serial order explains it")
    added = [e[2] for t in logs for e in t if e[0] == "add"]
    popped = [e[2] for t in logs for e in t if e[0] == "pop"]
    if len(ids) != len(set(ids)):
        found.append(f"list holds {len(ids) - len(set(ids))} item(s) twice")
    if len(popped) != len(set(popped)):
        found.append("an item was popped twice")
    missing = set(added) - set(popped) - set(ids)
    extra = set(ids) - (set(added) - set(popped))
    found += [f"list item {i} lost" for i in sorted(missing)[:5]]
    found += [f"list item {i} unexplained" for i in sorted(extra)[:5]]
    for kind in ("dict", "list"):
        found += harness.leftovers(str(root / kind), kind)[2]
        found += harness.check_problems(str(root / kind), kind)
    return found


@pytest.mark.slow
def test_concurrent_writers_and_readers(tmp_path: Path):
    ops, reads, found = run_concurrently(tmp_path)
    harness.add_figure("concurrent operations", ops)
    harness.add_figure("concurrent reads", reads)
    assert found == []
    assert ops == WRITERS * THREADS * OPS
    assert reads > 0


def test_concurrency_suite_catches_a_missing_lock(tmp_path: Path):
    _, _, found = run_concurrently(tmp_path, broken=True)
    assert found, "writers without the store lock lost nothing?"

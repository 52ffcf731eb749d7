"""Lists without the lease on object storage (issue 22, item 1).

An append is an item PUT (``If-None-Match: *``) and the manifest PUT with
``If-Match`` on the version the handle last saw, after a GET (304 when
cached) on a 412: no lease.
A transaction that changes the order marks order.txt first (a
compare-and-swap, before its commit point), so no appender swaps the
manifest between its commit point and its apply; lease holders swap too, and
put appends that landed meanwhile after their change. docs/s3.md, "Lists
without the lease". Real processes, a real SeaweedFS, real SIGKILLs.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import forked
import pytest

import sos
from sos.txn import MARK, RECORD

pytestmark = [pytest.mark.s3, pytest.mark.usefixtures("fork_server")]

WORKER = str(Path(__file__).with_name("list_worker.py"))
LEASE = ".sos/lease"


def start(role: str, url: str, worker: str, log: Path, ops: int, die: str = "") -> forked.Child:
    """A list_worker.py process (forked warm: tests/forked.py)."""
    args = [WORKER, role, url, worker, str(log), str(ops)]
    return forked.start(*args, die) if die else forked.start(*args)


def entries(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def keyed(items: list[Any]) -> list[str]:
    return [json.dumps(item, sort_keys=True) for item in items]


def order_bytes(url: str) -> bytes:
    with sos.List(url) as lst:
        return lst._storage.read("order.txt")


@pytest.mark.long
def test_appends_transactions_and_inserts_from_many_processes_lose_nothing(
    s3_url: str, tmp_path: Path
) -> None:
    """3 processes append (no lease), 1 runs transactions that insert at the
    front and append (marking order.txt), 1 inserts at the front under the
    lease (its swap rebased over appends): every acknowledged append and
    insert, and both changes of every committed transaction, are there
    exactly once; each appender's items in its order."""
    url = s3_url + "/swap"
    sos.List(url).close()
    appenders, appends, txns, inserts = 3, 40, 12, 10
    procs = [start("append", url, f"a{n}", tmp_path / f"a{n}.log", appends)
             for n in range(appenders)]
    procs.append(start("txn", url, "t", tmp_path / "t.log", txns))
    procs.append(start("insert", url, "p", tmp_path / "p.log", inserts))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    with sos.List(url) as lst:
        items = list(lst)
    counts = Counter(keyed(items))
    assert max(counts.values()) == 1, [k for k, c in counts.items() if c > 1]
    for n in range(appenders):
        logged = [e["append"][1] for e in entries(tmp_path / f"a{n}.log")]
        assert logged == list(range(appends))
        mine = [item["i"] for item in items if item.get("w") == f"a{n}"]
        assert mine == logged, f"appender a{n}: its items missing or out of order"
    committed = [e["txn"] for e in entries(tmp_path / "t.log")]
    assert len(committed) == txns
    assert {item["h"] for item in items if "h" in item} == set(committed)
    assert {item["t"] for item in items if "t" in item} == set(committed)
    inserted = [item["i"] for item in items if item.get("p") == "p"]
    assert sorted(inserted) == list(range(inserts))
    assert len(items) == appenders * appends + 2 * txns + inserts
    assert MARK not in order_bytes(url)


@pytest.mark.parametrize("point", ["after-mark", "after-record", "after-order-applied"])
@pytest.mark.long
def test_kill_9_mid_transaction_then_an_append_recovers(
    s3_url: str, tmp_path: Path, point: str
) -> None:
    """A transaction process is SIGKILLed at ``point``. An appender started
    then waits while the mark (and the dead process's lease) is there; once
    the lease is gone (the test removes it rather than wait its 30 s) the
    appender finishes the record (or drops the mark of a transaction that
    never reached its commit point) and appends after it."""
    url = s3_url + "/kill-" + point
    with sos.List(url) as lst:
        lst.extend(["a", "b"])
    dying = start("txn", url, "t", tmp_path / "t.log", 1, die=point)
    _, err = dying.communicate(timeout=120)
    assert dying.returncode == -signal.SIGKILL, err
    [last] = entries(tmp_path / "t.log")
    assert last["dying"] == point
    token = last["token"]
    with sos.List(url) as lst:
        storage = lst._storage
        assert storage.exists(LEASE)  # the dead process's
        assert storage.exists(RECORD) == (point != "after-mark")
        assert (MARK in storage.read("order.txt")) == (point != "after-order-applied")
        appender = start("append", url, "x", tmp_path / "x.log", 1)
        if point != "after-order-applied":
            time.sleep(2)
            assert appender.poll() is None, "an append swapped a marked manifest"
            assert entries(tmp_path / "x.log") == []
        storage.remove([LEASE])  # as its expiry would
        _, err = appender.communicate(timeout=120)
        assert appender.returncode == 0, err
        assert not storage.exists(RECORD)
        assert MARK not in storage.read("order.txt")
    with sos.List(url) as lst:
        items = list(lst)
    appended = {"w": "x", "i": 0}
    if point == "after-mark":  # before the commit point: it did not happen
        assert items == ["a", "b", appended]
    else:
        assert items == [{"h": token}, "a", "b", {"t": token}, appended]
    check = forked.run("-m", "sos", "check", url)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.long
def test_kill_9_mid_append_leaves_the_list_whole(s3_url: str, tmp_path: Path) -> None:
    """An appender SIGKILLed between its item PUT and its swap of order.txt:
    the list is as before, nothing waits (an append holds no lease), the
    next append lands, and sos check is clean (the orphan is within the
    grace an append in flight gets)."""
    url = s3_url + "/kill-append"
    with sos.List(url) as lst:
        lst.append("a")
    dying = start("append", url, "d", tmp_path / "d.log", 1, die="before-swap")
    _, err = dying.communicate(timeout=120)
    assert dying.returncode == -signal.SIGKILL, err
    with sos.List(url) as lst:
        assert not lst._storage.exists(LEASE)
        assert list(lst) == ["a"]
        lst.append("b")
        assert list(lst) == ["a", "b"]
    check = forked.run("-m", "sos", "check", url)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_lease_holder_puts_appends_that_landed_meanwhile_after_its_change(
    s3_url: str,
) -> None:
    """``pop`` under the lease, with another client's append (no lease)
    landing between its read of the order and its swap: the pop's swap is
    refused, and it is tried again with the appended item after it."""
    url = s3_url + "/rebase"
    with sos.List(url) as lst, sos.List(url) as other:
        lst.extend([1, 2, 3])
        fired: list[bool] = []
        original = lst._storage.swap

        def swap(name: str, data: bytes, version: Any) -> Any:
            if name == "order.txt" and not fired:
                fired.append(True)
                other.append(4)
            return original(name, data, version)

        lst._storage.swap = swap  # type: ignore[method-assign]
        assert lst.pop(0) == 1
        assert fired and list(other) == [2, 3, 4] and list(lst) == [2, 3, 4]


def test_a_transaction_whose_order_changed_conflicts_and_writes_nothing(s3_url: str) -> None:
    url = s3_url + "/conflict"
    with sos.List(url) as lst, sos.List(url) as other:
        lst.extend([1, 2])
        with pytest.raises(sos.ConflictError, match=r"order\.txt: changed"), lst.transaction():
            lst.insert(0, 0)
            other.append(3)  # no lease: lands while the transaction runs
        assert list(lst) == [1, 2, 3]
        assert MARK not in lst._storage.read("order.txt")


@pytest.mark.long
def test_a_mark_left_without_a_record_is_dropped_by_the_next_lease_holder(
    s3_url: str,
) -> None:
    """A mark whose transaction never wrote its record (written here as a
    crash after the mark leaves it): readers and sos check ignore it, and
    the next change under the lease (a pop) swaps it away."""
    url = s3_url + "/stale"
    with sos.List(url) as lst:
        lst.extend([1, 2, 3])
        storage = lst._storage
        storage.write("order.txt", storage.read("order.txt") + MARK + b"0123456789abcdef\n")
        assert list(lst) == [1, 2, 3] and lst[2] == 3
    check = forked.run("-m", "sos", "check", url)
    assert check.returncode == 0, check.stdout + check.stderr
    with sos.List(url) as lst:
        assert lst.pop() == 3
        assert MARK not in lst._storage.read("order.txt")
        lst.append(4)
        assert list(lst) == [1, 2, 4]


def test_a_transaction_failing_at_its_record_takes_its_mark_back(s3_url: str) -> None:
    url = s3_url + "/unmark"
    with sos.List(url) as lst:
        lst.extend([1, 2])
        storage = lst._storage
        original = storage.write_if_absent

        def refuse_record(name: str, data: bytes) -> bool:
            if name == RECORD:
                assert MARK in storage.read("order.txt")  # marked before the commit point
                raise sos.Error("no record today")
            return original(name, data)

        storage.write_if_absent = refuse_record  # type: ignore[method-assign]
        with pytest.raises(sos.Error, match="no record today"), lst.transaction():
            lst.append(3)
        storage.write_if_absent = original  # type: ignore[method-assign]
        assert MARK not in storage.read("order.txt")
        assert list(lst) == [1, 2]
        lst.append(3)  # no lease, no wait: the mark is gone
        assert list(lst) == [1, 2, 3]


def test_a_typed_writeback_append_keeps_what_a_read_gives(s3_url: str) -> None:
    """An append without the lease keeps, for writeback, the type's object a
    read gives (as every other write does), not the dict it was given."""
    import dataclasses

    @dataclasses.dataclass
    class User:
        name: str
        born: int

    with sos.List(s3_url, value_type=User, writeback=True) as lst:
        lst.append({"name": "Cy", "born": 1950})  # type: ignore[arg-type]
        assert lst[0] == User("Cy", 1950)
        lst[0].born = 1951  # changed in place: written back at close
    with sos.List(s3_url) as plain:
        assert plain[0] == {"name": "Cy", "born": 1951}

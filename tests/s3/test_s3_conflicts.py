"""Transactions see other writers (issue 22, item 2).

On object storage a plain set is one PUT that does not wait for a
transaction's lease. A transaction therefore notes the version (ETag) of
every file it reads or writes, re-checks them before its commit point
(:class:`sos.ConflictError` on a mismatch, nothing written) and applies each
file only if it still has that version (a refusal: a later writer won).
The same process test runs on a local store, where the lock gives this.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import forked
import pytest

import sos
from sos import format as _format

pytestmark = [pytest.mark.s3, pytest.mark.usefixtures("fork_server")]

WORKER = str(Path(__file__).with_name("conflict_worker.py"))


def test_a_plain_set_between_read_and_commit_aborts_the_transaction(s3_url: str) -> None:
    with sos.Dict(s3_url) as db, sos.Dict(s3_url) as other:
        db["n"] = 1
        db["untouched"] = "old"
        changed = r"/[0-9a-f]{2}/[0-9a-f]+\.json: changed"
        with pytest.raises(sos.ConflictError, match=changed), db.transaction():
            value = db["n"]
            other["n"] = 100  # another client's plain set: no lease
            db["n"] = value + 1
            db["untouched"] = "new"
        assert db["n"] == 100 and db["untouched"] == "old"  # nothing of it written
        assert issubclass(sos.ConflictError, sos.Error)


def test_a_plain_set_creating_a_key_the_transaction_saw_absent_conflicts(s3_url: str) -> None:
    with sos.Dict(s3_url) as db, sos.Dict(s3_url) as other:
        db["x"] = 0
        with pytest.raises(sos.ConflictError), db.transaction():
            assert "k" not in db
            other["k"] = "theirs"
            db["k"] = "ours"
        assert db["k"] == "theirs"


def test_an_undisturbed_transaction_commits(s3_url: str) -> None:
    with sos.Dict(s3_url) as db, sos.Dict(s3_url) as other:
        db["n"] = 1
        other["unrelated"] = 5
        with db.transaction():
            db["n"] = db["n"] + 1
            other["unrelated"] = 6  # a key the transaction never saw
            db["new"] = "x"
        assert (db["n"], db["new"], db["unrelated"]) == (2, "x", 6)


def test_a_set_landing_after_the_commit_point_wins_over_the_apply(
    s3_url: str, private_clients: None
) -> None:
    """A write between the record (commit point) and the apply's PUT (a
    bare PUT, as a plain set from another client is): the apply's If-Match
    is refused and the later write stands."""
    with sos.Dict(s3_url) as db, sos.Dict(s3_url) as other:
        db["n"] = 1
        db["m"] = 1
        key_of_n = db._storage._key(db._name("n"))
        fired: list[bool] = []

        def interleave(params: Any, **_: Any) -> None:
            if params.get("Key") == key_of_n and "IfMatch" in params and not fired:
                fired.append(True)
                name = other._name("n")
                other._storage.write(name, _format.encode_document("n", "later"))

        db._storage._client.meta.events.register("before-parameter-build.s3.PutObject", interleave)
        with db.transaction():
            db["n"] = db["n"] + 1
            db["m"] = db["m"] + 1
        assert fired == [True]
        assert db["n"] == "later"  # the later writer's value, not overwritten
        assert db["m"] == 2  # the rest of the transaction applied
        assert not db._storage.exists(".sos/txn.json")


def _run(url: str, log_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """2 processes incrementing ``c`` in transactions and 2 setting it, 30
    operations each: the logs of both kinds, and the final value."""
    with sos.Dict(url) as db:
        db["c"] = {"n": 0, "token": "initial"}
    roles = ["txn", "txn", "set", "set"]
    logs = [log_dir / f"w{i}.jsonl" for i in range(4)]
    procs = [
        forked.start(WORKER, role, url, str(i), str(logs[i]), "30")
        for i, role in enumerate(roles)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    entries = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    with sos.Dict(url) as db:
        final = db["c"]
    txns = [e for e in entries if "read" in e]
    sets = [e for e in entries if "set" in e]
    assert (len(txns), len(sets)) == (60, 60)
    return txns, sets, final


def _assert_no_lost_update(
    txns: list[dict[str, Any]], sets: list[dict[str, Any]], final: Any
) -> None:
    written = {"initial"} | {t["wrote"] for t in txns} | {s["set"] for s in sets}
    assert final["token"] in written
    assert all(t["read"] in written for t in txns)
    reads = [t["read"] for t in txns]
    assert len(reads) == len(set(reads)), "two committed transactions read the same value"
    readers = {t["read"]: t for t in txns}
    lost = []
    for t in txns:
        # A set that began after t's read returned, and was acknowledged
        # before someone read t's value (or before the end): t's value was
        # stored over that set though t never saw it. A lost update.
        later_sets = [s for s in sets if s["start"] > t["after_read"]]
        reader = readers.get(t["wrote"])
        seen_at = reader["before_read"] if reader else None
        if final["token"] == t["wrote"] and later_sets:
            lost.append((t, later_sets[0], "final"))
        elif seen_at is not None:
            lost += [(t, s, reader) for s in later_sets if s["end"] < seen_at]
    assert not lost, f"{len(lost)} lost updates, first: {lost[0]}"


@pytest.mark.long
def test_transactions_and_plain_sets_from_four_processes_lose_no_update_on_s3(
    s3_url: str, tmp_path: Path
) -> None:
    txns, sets, final = _run(s3_url, tmp_path)
    _assert_no_lost_update(txns, sets, final)


def test_transactions_and_plain_sets_from_four_processes_lose_no_update_locally(
    tmp_path: Path,
) -> None:
    (tmp_path / "logs").mkdir()
    txns, sets, final = _run(str(tmp_path / "store"), tmp_path / "logs")
    _assert_no_lost_update(txns, sets, final)


def test_recovery_keeps_what_other_clients_wrote_after_the_crash(s3_url: str) -> None:
    """A record left by a crash (committed, never applied); then another
    client sets one of its keys and deletes another, without looking for the
    record (one request each). Recovery rolls forward only the files still
    holding their before-bytes, each with If-Match: the set and the del
    stand, the untouched key gets the transaction's value."""
    from sos.txn import RECORD, Journal, recover

    with sos.Dict(s3_url) as db, sos.Dict(s3_url) as other:  # opened before the crash
        for key in ("a", "b", "c"):
            db[key] = "before"
        storage = db._storage
        journal = Journal(storage)
        for key in ("a", "b", "c"):
            journal.add(db._name(key), _format.encode_document(key, "txn"))
        journal.commit()  # the crash: the record is durable, nothing applied
        other["a"] = "set after the crash"
        del other["b"]
        assert storage.exists(RECORD)  # the set and the del did not finish it
        assert recover(storage)
        assert not storage.exists(RECORD)
        assert db["a"] == "set after the crash"
        assert "b" not in db
        assert db["c"] == "txn"


def test_setdefault_from_eight_threads_agrees_on_one_value(s3_url: str) -> None:
    """Of 8 handles racing setdefault on an absent key (it runs under the
    lease: plain sets no longer finish records, but it must), all return
    the one value that is stored."""
    sos.Dict(s3_url).close()
    got: list[Any] = []
    barrier = threading.Barrier(8)

    def run(n: int) -> None:
        with sos.Dict(s3_url) as db:
            db["warm"] = n  # the probe, before the race
            barrier.wait()
            got.append(db.setdefault("k", n))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sos.Dict(s3_url) as db:
        assert got == [db["k"]] * 8



def test_a_blind_write_in_a_transaction_comes_after_a_set_it_never_read(s3_url: str) -> None:
    """A transaction that only writes a key (``update`` of many keys is one)
    does not conflict with a plain set of it: the set comes first, and the
    transaction's value, committed later, stands."""
    with sos.Dict(s3_url) as db, sos.Dict(s3_url) as other:
        db["a"] = 0
        with db.transaction():
            db["a"] = 1
            other["a"] = "theirs"  # after the transaction noted a's version
            db["b"] = 2
        assert (db["a"], db["b"]) == (1, 2)


def test_transaction_retries_re_runs_the_function_on_a_conflict(s3_url: str) -> None:
    with sos.Dict(s3_url) as db, sos.Dict(s3_url) as other:
        db["n"] = 1
        runs: list[int] = []

        @db.transaction(retries=2)
        def increment(disturb: int) -> int:
            runs.append(db["n"])
            if len(runs) <= disturb:
                other["n"] = 10 * len(runs)  # another client, mid-transaction
            db["n"] = db["n"] + 1
            return db["n"]

        assert increment(1) == 11  # re-run once, on the value the set left
        assert runs == [1, 10] and db["n"] == 11
        runs.clear()
        with pytest.raises(sos.ConflictError):
            increment(3)  # conflicts on all three runs: the last error is raised
        assert runs == [11, 10, 20] and db["n"] == 30  # nothing of it written
        refused = pytest.raises(sos.Error, match="cannot re-run a with block")
        with refused, db.transaction(retries=1):
            pass


def test_a_plain_set_during_a_migration_aborts_it(s3_url: str) -> None:
    """migrate() computes each new value from the old one inside a
    transaction: a plain set (no lease on object storage) made after
    migrate read that value must abort it, nothing written, not be
    overwritten by a value computed from the old one. (A List's item set
    waits for the transaction's lease instead.)"""
    seen: list[int] = []

    with sos.Dict(s3_url, value_type=int) as db, sos.Dict(s3_url, value_type=int) as other:
        db.update({f"k{i}": i for i in range(20)})

        def convert(old: int) -> str:
            if not seen:  # the first value read (k{old}): another client changes it now
                other[f"k{old}"] = 1000
            seen.append(old)
            return f"#{old}"

        with pytest.raises(sos.ConflictError, match="changed by another client"):
            db.migrate(convert, str)
        assert len(seen) == 20
    with sos.Dict(s3_url) as plain:
        assert dict(plain.items()) == {f"k{i}": 1000 if i == seen[0] else i for i in range(20)}


def test_a_migration_alone_converts_every_value(s3_url: str) -> None:
    with sos.Dict(s3_url, value_type=int) as db:
        db.update({f"k{i}": i for i in range(20)})
        db.migrate(lambda old: f"#{old}", str)
        db["new"] = "typed as str now"
        with pytest.raises(sos.ValidationError):
            db["bad"] = 5  # type: ignore[assignment]
    with sos.Dict(s3_url, value_type=str) as typed:
        expected = {f"k{i}": f"#{i}" for i in range(20)}
        assert dict(typed.items()) == {"new": "typed as str now", **expected}


def test_a_key_added_during_a_migration_aborts_it(s3_url: str) -> None:
    """A key another client adds while migrate() runs would keep its old
    type under the new schema: the migration refuses to commit instead."""
    with sos.Dict(s3_url, value_type=int) as db, sos.Dict(s3_url, value_type=int) as other:
        db.update({f"k{i}": i for i in range(5)})

        def convert(old: int) -> str:
            if "added" not in other:  # once: a plain set of a new key (setdefault
                other["added"] = 7  # would wait for the migration's lease)
            return f"#{old}"

        with pytest.raises(sos.ConflictError, match="added by another client"):
            db.migrate(convert, str)
    with sos.Dict(s3_url, value_type=int) as typed:  # the old type and values stand
        assert dict(typed.items()) == {"added": 7, **{f"k{i}": i for i in range(5)}}

"""The requests each operation sends to a real S3 server, counted with
botocore's own request events, against the table in docs/s3.md: the table
is what this test measures, so the documentation cannot drift from the code.

Counts are uncontended and exclude the conditional-write probe a process
makes once per store (the store is written once before counting starts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sos

from .hooks import on_new_clients

pytestmark = pytest.mark.s3

DOC = Path(__file__).resolve().parents[2] / "docs" / "s3.md"


def documented_counts() -> dict[str, int]:
    """Operation -> requests, from the table under "What each operation sends"."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## What each operation sends", 1)[1].split("\n## ", 1)[0]
    counts: dict[str, int] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"\d+", cells[1]):
            counts[cells[0]] = int(cells[1])
    return counts


class Counter:
    """Every request a store's client sends: method, key and conditions."""

    def __init__(self, store: Any) -> None:
        self.sent: list[str] = []
        # The store's client is shared with this process's other stores of the
        # same configuration: each count spans one operation, and stop() ends it.
        self._events = store._storage._client.meta.events
        self._events.register("before-send.s3", self._record)

    def stop(self) -> None:
        self._events.unregister("before-send.s3", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        conditions = [h for h in ("If-Match", "If-None-Match") if h in request.headers]
        path = request.url.split("?", 1)[0].rsplit("/", 2)[-2:]
        self.sent.append(f"{request.method} {'/'.join(path)} {' '.join(conditions)}".strip())

    def count(self, operation: Callable[[], object]) -> list[str]:
        start = len(self.sent)
        operation()
        return self.sent[start:]


def measure(url: str) -> dict[str, list[str]]:
    """The requests of each documented operation, on a fresh Dict and List."""
    db = sos.Dict(url + "/d")
    lst = sos.List(url + "/l")
    try:
        db["warm"] = 0  # the probe and the first write's set-up happen here
        lst.append("warm")
        len(lst)  # the manifest is cached from here on
        d, ll = Counter(db), Counter(lst)
        with db.transaction():  # a handle's first transaction reads sos.json once
            db["warm"] = 1

        def increment() -> None:
            with db.transaction():
                db["k"] += 1

        measured = {
            "`db[k] = v` (set)": d.count(lambda: db.__setitem__("k", 1)),
            "`db[k]` (get)": d.count(lambda: db["k"]),
            "`k in db`": d.count(lambda: "k" in db),
            "transaction: `db[k] += 1`": d.count(increment),
            "`del db[k]`": d.count(lambda: db.__delitem__("k")),
            "`setdefault` (absent)": d.count(lambda: db.setdefault("absent", 1)),
            "`lst.append(v)`": ll.count(lambda: lst.append("v")),
            "`lst[i]`": ll.count(lambda: lst[0]),
            "`len(lst)`": ll.count(lambda: len(lst)),
        }
        assert "k" not in db and db["absent"] == 1
        assert list(lst) == ["warm", "v"]
        d.stop()
        ll.stop()
        return measured
    finally:
        db.close()
        lst.close()


def test_the_documented_request_counts_are_the_measured_ones(s3_url: str) -> None:
    documented = documented_counts()
    measured = measure(s3_url)
    assert set(documented) >= set(measured), f"rows missing from docs/s3.md: {documented}"
    wrong = {
        op: (documented[op], len(sent), sent)
        for op, sent in measured.items()
        if len(sent) != documented[op]
    }
    assert not wrong, f"docs/s3.md says (documented, measured, requests): {wrong}"


def _sent_by(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request of every client made from now on: ``"GetObject sos.json"``."""
    sent: list[str] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = str(params.get("Key") or params.get("Prefix") or "")
        sent.append(f"{model.name} {key.split('/', 1)[-1]}")

    on_new_clients(monkeypatch, "before-parameter-build.s3", record)
    return sent


def test_opening_reads_the_metadata_once(
    s3_url: str, private_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sos.open and the commands open a store in 3 requests (sos.json, the
    transaction record's HEAD, schema.json): the kind sos.open reads to
    choose the class is not read again, and sos keys reads through the one
    handle it opened."""
    from sos.cli import main

    sent = _sent_by(monkeypatch)
    with sos.Dict(s3_url) as db:
        db.update({"a": 1, "b": 2})
    sent.clear()
    sos.open(s3_url).close()
    assert sent == ["GetObject sos.json", "HeadObject .sos/txn.json", "GetObject schema.json"]
    for command in (["get", s3_url, "a"], ["keys", s3_url]):
        sent.clear()
        assert main(command) == 0
        assert [r for r in sent if r.endswith("sos.json")] == ["GetObject sos.json"], sent
    # open; the root's LIST and one flat LIST page for its 2 fan-out directories; 2 GETs
    assert len(sent) == 3 + 2 + 2, sent


def test_check_lists_each_fan_out_directory_once(
    s3_url: str, private_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sos check asks each fan-out directory for its entries, whether it is
    one and its marker in one delimited LIST (it was three), and reads each
    document once; the row of docs/s3.md's table says so."""
    keys = [f"k{i}" for i in range(30)]
    sent = _sent_by(monkeypatch)
    with sos.Dict(s3_url) as db:
        db.update(dict.fromkeys(keys, 1))
        directories = {db.path_of(k).rsplit("/", 2)[-2] for k in keys}
    sent.clear()
    assert sos.check(s3_url) == []
    lists = [r for r in sent if r.startswith("ListObjectsV2")]
    listed = sorted(r.split(" ", 1)[1].rstrip("/") for r in lists)
    assert sorted(d for d in listed if d in directories) == sorted(directories), lists
    # + the store's root and .sos/ (what a crash may have left there)
    assert len(lists) == len(directories) + 2, lists
    assert {"ListObjectsV2 ", "ListObjectsV2 .sos/"} <= set(lists), lists
    reads = [r for r in sent if r.startswith("GetObject") and "/" in r.split(" ", 1)[1]]
    assert len(reads) == len(keys), sent
    assert "one delimited LIST per fan-out directory" in DOC.read_text(encoding="utf-8")


def test_a_migration_reads_each_document_once(
    s3_url: str, private_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """migrate() reads each document once: the read that computes its new
    value also gives its version (re-checked before the commit) and its
    before-bytes for the record (not a second GET per document)."""
    sent = _sent_by(monkeypatch)
    with sos.Dict(s3_url, value_type=int) as db:
        db.update({f"k{i}": i for i in range(30)})
        sent.clear()
        db.migrate(str, str)
    documents = [r for r in sent if r.startswith("GetObject") and r.endswith(".json") and "/" in r]
    assert len(documents) == 30 == len(set(documents)), sent


def test_update_applies_each_file_only_if_it_still_has_the_version_seen(s3_url: str) -> None:
    """update() of many keys is a transaction: its apply step writes each
    existing file with If-Match (a later writer's change is never
    overwritten), each new one with If-None-Match, like a single set in a
    transaction. It wrote them unconditionally."""
    with sos.Dict(s3_url) as db:
        db.update({"a": 0, "b": 0})
        counter = Counter(db)
        sent = counter.count(lambda: db.update({"a": 1, "b": 1, "c": 1}))
        counter.stop()
        assert dict(db.items()) == {"a": 1, "b": 1, "c": 1}
    puts = [r for r in sent if r.startswith("PUT ") and r.split()[1].endswith(".json")]
    data_puts = [r for r in puts if not r.split()[1].startswith(".sos/")]
    assert len(data_puts) == 3, sent
    assert sorted(r.rsplit(" ", 1)[-1] for r in data_puts) == [
        "If-Match", "If-Match", "If-None-Match"
    ], data_puts


def test_update_in_a_transaction_does_not_read_again_what_it_read(
    s3_url: str, private_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key the transaction's code read is not read again for the record's
    before-bytes, by a set or by update(): one GET of it in all."""
    sent = _sent_by(monkeypatch)
    with sos.Dict(s3_url) as db:
        db.update({"a": 1, "b": 2})
        name = db.path_of("a").split("/", 3)[-1].split("/", 1)[-1]
        sent.clear()
        with db.transaction():
            db.update({"a": db["a"] + 1, "b": 3})
        assert sent.count(f"GetObject {name}") == 1, sent
        assert db["a"] == 2 and db["b"] == 3

"""``sos check --repair`` rewriting a List's manifest while another handle
appends without the lock (object storage: an append is a compare-and-swap of
``order.txt``): the append that lands between the scan's read of the manifest
and the repair's write is kept, after the repaired order (issue 22).

The interleaving is forced: the storage's ``read_versioned`` of ``order.txt``
is wrapped so that right after the scan's read returns, another handle
appends. Here on ``memory://`` with appends that take no lock (as on S3);
tests/s3/test_s3_list_repair_race.py runs the same on a real SeaweedFS and
with real processes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_list_repair import Model, damage, lost_and_found, manifest

import sos
from sos.format.order import Order
from sos.storage.base import Storage
from sos.storage.memory import MemoryStorage, forget
from sos.storage.registry import register_scheme


class CasMemory(MemoryStorage):
    """``memory://`` whose List appends take no lock, as on object storage:
    the race this file forces needs an append that does not wait for repair."""

    def appends_without_lock(self) -> bool:
        return True


register_scheme("memcas", CasMemory)


@pytest.fixture
def cas_url() -> Iterator[str]:
    url = f"memcas://race-{uuid.uuid4().hex}"
    yield url
    forget(url)


@contextlib.contextmanager
def append_after_manifest_reads(
    storage_class: type[Storage], url: str, times: int = 1
) -> Iterator[list[int]]:
    """Right after each of the next ``times`` reads of ``order.txt`` (the
    repair's scan, then its re-reads), another handle appends; yields the
    values it appended, each added once its append returned. Both read
    methods are wrapped: the first read of ``order.txt`` in a repair is its
    scan's, whichever method it uses."""
    appended: list[int] = []
    state = {"left": times, "busy": False}

    def hooked(original: Callable[..., Any]) -> Callable[..., Any]:
        def read(self: Storage, name: str) -> Any:
            result = original(self, name)
            if name == "order.txt" and state["left"] and not state["busy"]:
                state["left"] -= 1
                state["busy"] = True  # the append's own reads are not hooked
                try:
                    value = 1000 + len(appended)
                    other.append(value)
                    appended.append(value)
                finally:
                    state["busy"] = False
            return result

        return read

    with sos.List(url) as other, pytest.MonkeyPatch.context() as mp:
        for method in ("read", "read_versioned"):
            mp.setattr(storage_class, method, hooked(getattr(storage_class, method)))
        yield appended


def cut_after_a_number(data: bytes) -> bytes:
    """The third run line ``P 3-5`` cut to ``P 3``: a manifest an appender
    still reads (and rewrites whole), which the scan judges cut short."""
    lines = data.split(b"\n")
    at = sum(len(line) + 1 for line in lines[:3]) + lines[3].index(b"-")
    return data[:at]


def names_a_missing_item(data: bytes) -> bytes:
    """A whole manifest with a line naming an item no file holds (repair drops it)."""
    return data + b"ffffffffffffffff 0\n"


RACE_DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "cut-after-a-number": cut_after_a_number,
    "names-a-missing-item": names_a_missing_item,
}


def two_writers(location: str) -> Model:
    """Runs A 0-2, B 0-2, A 3-5: what a cut of the last line leaves unnamed
    is one writer's, so the expected order needs no clock (S3's has seconds)."""
    model = Model(location, tick=0.0)
    for handle, count in [(0, 3), (1, 3), (0, 3)]:
        model.append(handle, count)
    model.close()
    assert len(manifest(location).splitlines()) == 4  # the header and three runs
    return model


def race_repair(location: str, storage_class: type[Storage], kind: str) -> None:
    """Damage the manifest, repair it with an append forced between the
    scan and the rewrite; the append is in the list, after the rest."""
    model = two_writers(location)
    damaged = RACE_DAMAGES[kind](manifest(location))
    damage(location, damaged)
    with append_after_manifest_reads(storage_class, location) as appended:
        found = sos.check(location, repair=True)
    assert appended == [1000], "the forced append did not happen"
    named, rest = model.expected(damaged)
    with sos.List(location) as lst:
        assert list(lst) == named + rest + appended  # the surviving prefix first
    assert sorted(named + rest) == sorted(model.values)
    assert lost_and_found(location) == []
    repaired = [p for p in found if p.code in ("bad-manifest", "missing-item")]
    kept = "kept the 1 item(s) appended while repair ran"
    assert repaired and all(kept in str(p.action) for p in repaired)
    assert sos.check(location) == []


@pytest.mark.parametrize("kind", sorted(RACE_DAMAGES))
def test_an_append_during_repair_is_kept(cas_url: str, kind: str) -> None:
    race_repair(cas_url, CasMemory, kind)


def keeps_losing(location: str, storage_class: type[Storage]) -> None:
    """Every re-read is followed by another append: after its tries, repair
    raises a clear Error, writes nothing, and every append stays named."""
    model = two_writers(location)
    damage(location, names_a_missing_item(manifest(location)))
    appending = append_after_manifest_reads(storage_class, location, times=100)
    with appending as appended, pytest.raises(sos.Error) as raised:
        sos.check(location, repair=True)
    message = str(raised.value)
    assert location in message and f"{location}/order.txt" in message
    assert "another writer kept changing" in message and "left as it was" in message
    assert len(appended) > 1
    # The repair wrote nothing (the missing item is still named), and every
    # append is named: the manifest is the last appender's.
    named = Order.decode(manifest(location), "order.txt")
    assert named.contains("ffffffffffffffff-0")
    assert len(named) == len(model.values) + 1 + len(appended)
    assert lost_and_found(location) == []
    sos.check(location, repair=True)  # no one appending: it finishes
    with sos.List(location) as lst:
        assert list(lst) == model.values + appended
    assert sos.check(location) == []


def test_repair_gives_up_when_the_manifest_keeps_changing(cas_url: str) -> None:
    keeps_losing(cas_url, CasMemory)


def test_a_big_append_while_the_items_are_listed_is_kept(
    cas_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One extend of 5,000 items (more ids than a scan looks up one by one)
    landing just after the scan listed the item files: the scan read
    order.txt before it listed them, so it never takes the new ids for
    named items whose files are missing (repair dropped them from the
    manifest: found by the review, this test failed on the code before)."""
    from sos.check import scan

    with sos.List(cas_url) as lst:
        lst.extend(range(3))
    list_files = scan._Scan._list_files
    landed: list[bool] = []

    def then_append(self: Any) -> None:
        list_files(self)
        if not landed:
            landed.append(True)
            with sos.List(cas_url) as other:
                other.extend(range(100, 5100))

    monkeypatch.setattr(scan._Scan, "_list_files", then_append)
    sos.check(cas_url, repair=True)
    monkeypatch.undo()
    assert landed == [True]
    with sos.List(cas_url) as lst:
        assert len(lst) == 5003
        assert lst[0] == 0 and lst[3] == 100 and lst[-1] == 5099
    assert sos.check(cas_url) == []

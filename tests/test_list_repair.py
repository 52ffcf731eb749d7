"""``sos check --repair`` of a List whose manifest (``order.txt``) is empty, cut
short or unreadable: the list is rebuilt from its item files, nothing is sent to
lost+found; and ``sos adopt`` puts items back from lost+found in their order.

The expected order comes from a model kept while appending (which handle
appended which value, and when), never from sos's own ordering code: first the
items the manifest's surviving whole lines name, in their order; then the
others by number within each writer's id prefix, prefixes in the order their
first item was written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_helpers import sos as sos_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sos
from sos.storage.registry import open_storage

# Local mtimes may tick as coarsely as a jiffy (4 ms at HZ=250): when writers
# take turns, the next one writes this long after the last.
TICK = 0.02


@dataclass
class Model:
    """What the list holds and how it got there: values by (prefix, number)."""

    location: str
    tick: float = TICK  # between writers' first items: above the clock's resolution
    handles: list[sos.List] = field(default_factory=list)
    ids: dict[int, str] = field(default_factory=dict)  # value -> item id
    values: list[int] = field(default_factory=list)  # in list order
    counter: int = 0
    last: int = -1  # the writer of the last append

    def append(self, handle: int, count: int) -> None:
        while len(self.handles) <= handle:
            self.handles.append(sos.List(self.location))
        lst = self.handles[handle]
        if handle != self.last:  # another writer's turn: a later time than the last's
            time.sleep(self.tick)
        self.last = handle
        lst.extend(range(self.counter, self.counter + count))
        self.values += range(self.counter, self.counter + count)
        self.counter += count

    def close(self) -> None:
        """Close the writers; learn each value's item id from the item files."""
        for lst in self.handles:
            lst.close()
        storage = open_storage(self.location)
        try:
            for name in storage.walk():
                if "/" in name and name.endswith(".json") and not name.startswith("."):
                    doc = json.loads(storage.read(name))
                    self.ids[doc["value"]] = doc["key"]
        finally:
            storage.close()
        assert sorted(self.ids) == sorted(self.values)

    def expected(self, surviving: bytes) -> tuple[list[int], list[int]]:
        """(the values the manifest's whole lines name, in order; the rest in
        the rebuilt order), computed from the model alone."""
        by_id = {i: v for v, i in self.ids.items()}
        prefixes = {prefix(i) for i in by_id}
        named: list[int] = []
        text = surviving[: surviving.rfind(b"\n") + 1].decode("ascii", "replace")
        for line in text.splitlines():
            parts = line.split(" ")
            if line.startswith("#") or len(parts) != 2:
                continue
            first, _, last = parts[1].partition("-")
            if not (first.isdigit() and (not last or last.isdigit())):
                continue
            lo, hi = int(first), int(last or first)
            if parts[0] not in prefixes:
                continue  # garbage that looks like a run: names no item
            step = 1 if hi >= lo else -1
            for n in range(lo, hi + step, step):
                value = by_id.get(f"{parts[0]}-{n}")
                if value is not None and value not in named:
                    named.append(value)
        rest = [v for v in self.values if v not in named]
        # Appends only: list order is write order, so a writer's place is
        # where the first of its items to put back was written.
        first: dict[str, int] = {}
        for v in rest:
            first.setdefault(prefix(self.ids[v]), len(first))
        rest.sort(key=lambda v: (first[prefix(self.ids[v])], number(self.ids[v])))
        return named, rest


def prefix(item: str) -> str:
    return item.rsplit("-", 1)[0]


def number(item: str) -> int:
    return int(item.rsplit("-", 1)[1])


# -- the damage ---------------------------------------------------------------------


def manifest(location: str) -> bytes:
    storage = open_storage(location)
    try:
        return storage.read("order.txt")
    finally:
        storage.close()


def damage(location: str, data: bytes) -> None:
    """Replace order.txt's bytes as a user's shell would (``: > order.txt``)."""
    if "://" in location:
        storage = open_storage(location)
        try:
            storage.write("order.txt", data)
        finally:
            storage.close()
    else:
        Path(location, "order.txt").write_bytes(data)


def lost_and_found(location: str) -> list[str]:
    storage = open_storage(location)
    try:
        return storage.list("lost+found")
    finally:
        storage.close()


def cut_mid_line(data: bytes) -> bytes:
    """Cut in the middle of the third run line (the header is line 1)."""
    lines = data.split(b"\n")
    at = sum(len(line) + 1 for line in lines[:3]) + len(lines[3]) // 2
    return data[:at]


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda data: b"",
    "cut-mid-line": cut_mid_line,
    "garbage": lambda data: b"\x89PNG\r\n\x1a\n\x00\xff garbage \xfe\n",
    "prefix-then-garbage": lambda data: b"\n".join(data.split(b"\n")[:3]) + b"\n\xff\xfe\x00junk",
}


@pytest.fixture(params=["local", "memory"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "todo")
        return
    from sos.storage.memory import forget

    url = f"memory://repair-{uuid.uuid4().hex}"
    yield url
    forget(url)


#: (handle, how many values) of three_writers' turns: runs A, B, A, C, B.
TURNS = [(0, 2), (1, 2), (0, 2), (2, 1), (1, 1)]


def three_writers(location: str, tick: float = TICK) -> Model:
    """Three handles appending in turn: runs A, B, A, C, B in the manifest."""
    model = Model(location, tick)
    for handle, count in TURNS:
        model.append(handle, count)
    model.close()
    assert len(manifest(location).splitlines()) == 6  # the header and five runs
    return model


def assert_rebuilt(location: str, model: Model, surviving: bytes, found: list[sos.Problem]):
    named, rest = model.expected(surviving)
    with sos.List(location) as lst:
        assert list(lst) == named + rest
    assert sorted(named + rest) == sorted(model.values)
    assert lost_and_found(location) == [], "an item of the list went to lost+found"
    [rebuilt] = [p for p in found if p.code == "bad-manifest"]
    assert rebuilt.action is not None and rebuilt.action.startswith("rebuilt ")
    assert f"{len(rest)} by number within their writer's id prefix" in rebuilt.action
    assert "nothing was moved to lost+found" in rebuilt.action
    prefixes = {prefix(model.ids[v]) for v in rest}
    assert ("best guess" in rebuilt.action) == (len(prefixes) > 1)
    assert "orphan-item" not in [p.code for p in found]
    assert sos.check(location) == []


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_a_damaged_manifest_is_rebuilt_by_check_repair(location: str, kind: str):
    model = three_writers(location)
    damaged = DAMAGES[kind](manifest(location))
    damage(location, damaged)
    with pytest.raises(sos.CorruptError), sos.List(location) as lst:
        list(lst)  # readers refuse it: the damage is seen, never a shorter list
    assert "bad-manifest" in [p.code for p in sos.check(location)]
    found = sos.check(location, repair=True)
    assert_rebuilt(location, model, damaged, found)


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_sos_check_repair_command_rebuilds_a_damaged_manifest(location: str, kind: str):
    model = three_writers(location)
    damaged = DAMAGES[kind](manifest(location))
    damage(location, damaged)
    sos_cli("check", location, expect=1)
    proc = sos_cli("check", "--repair", location)
    assert "bad-manifest:" in proc.stdout and "rebuilt " in proc.stdout
    assert "best guess" in proc.stdout and "nothing was moved to lost+found" in proc.stdout
    assert "orphan-item" not in proc.stdout
    assert "repaired, now clean" in proc.stderr
    named, rest = model.expected(damaged)
    assert json.loads(sos_cli("dump", location).stdout) == named + rest
    assert lost_and_found(location) == []


def test_a_cut_line_that_still_parses_is_not_trusted(location: str):
    """``P 2-3`` cut to ``P 2`` is a valid run line: the manifest reads, but
    names too few items; the cut line is dropped and the items put back."""
    model = Model(location)
    model.append(0, 2)
    model.append(1, 2)
    model.append(0, 12)  # its run reads "P 2-13": cut after "P 2-1"
    model.close()
    data = manifest(location)
    damaged = data[: data.rstrip(b"\n").rfind(b"-") + 2]
    assert damaged.endswith(b"-1")
    damage(location, damaged)
    with sos.List(location) as lst:
        assert len(lst) < len(model.values)  # the reader takes "P 2-1" at its word
    [problem] = sos.check(location)
    assert problem.code == "bad-manifest" and "without a newline" in problem.message
    found = sos.check(location, repair=True)
    with sos.List(location) as lst:
        assert list(lst) == model.values
    named, rest = model.expected(damaged)
    assert named + rest == model.values
    assert_rebuilt(location, model, damaged, found)


def test_storage_modified_says_when_a_file_was_written(location: str):
    """What the rebuild orders writers by, from every storage (S3: tests/s3)."""
    storage = open_storage(location)
    try:
        storage.make_root()  # writes go into the directory a handle holds
        assert storage.modified("a.json") is None
        storage.write("a.json", b"1")
        first = storage.modified("a.json")
        assert first is not None and abs(first - time.time()) < 60
        time.sleep(TICK)
        storage.write("a.json", b"2")
        later = storage.modified("a.json")
        assert later is not None and later > first
        storage.remove(["a.json"])
        assert storage.modified("a.json") is None
    finally:
        storage.close()


# -- hypothesis: random appends from several writers, random damage -----------------

APPENDS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=8
)  # (which writer, how many items)


@st.composite
def damages(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.split(b"\n")[:-1]
    how = draw(st.sampled_from(["empty", "cut", "lines-then-garbage"]))
    if how == "empty":
        return b""
    if how == "cut":  # anywhere but right after a newline (that is a whole manifest)
        at = draw(st.integers(1, len(data) - 1))
        if data[at - 1 : at] == b"\n":
            at -= 1
        return data[:at]
    keep = draw(st.integers(0, len(lines)))
    garbage = draw(st.binary(max_size=30))
    return b"".join(line + b"\n" for line in lines[:keep]) + b"\xff" + garbage


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(appends=APPENDS, data=st.data())
@pytest.mark.long
def test_rebuilt_order_matches_the_model(tmp_path: Path, appends, data):
    for where in ("local", "memory"):
        location = (
            str(tmp_path / uuid.uuid4().hex)
            if where == "local"
            else f"memory://model-{uuid.uuid4().hex}"
        )
        try:
            model = Model(location)
            for handle, count in appends:
                model.append(handle, count)
            model.close()
            damaged = data.draw(damages(manifest(location)))
            damage(location, damaged)
            found = sos.check(location, repair=True)
            named, rest = model.expected(damaged)
            with sos.List(location) as lst:
                got = list(lst)
            assert got[: len(named)] == named  # the surviving lines' order
            assert sorted(got) == sorted(model.values)  # every item, once
            assert got == named + rest  # then by number, writers by first write
            assert lost_and_found(location) == []
            codes = [p.code for p in found if p.code != "missing-item"]
            # Only a lost final newline can leave nothing to find: all is named.
            assert codes == ["bad-manifest"] or (codes == [] and got == model.values)
            assert sos.check(location) == []
        finally:
            if where == "local":
                shutil.rmtree(location, ignore_errors=True)
            else:
                from sos.storage.memory import forget

                forget(location)


# -- sos adopt: back from lost+found in order -------------------------------------------


def test_adopt_restores_lost_items_in_their_order(tmp_path: Path):
    """Items a crashed writer never named go to lost+found (they have no
    place); adopting them all at once appends them in their own order, not in
    the order of their hashed file names."""
    location = str(tmp_path / "todo")
    model = Model(location)
    for handle, count in [(0, 2), (1, 3), (0, 3), (2, 2)]:
        model.append(handle, count)
    model.close()
    data = manifest(location)
    first = data.split(b"\n")[:2]
    damage(location, b"\n".join(first) + b"\n")  # a whole manifest: the rest is unnamed
    found = sos.check(location, repair=True)
    assert {p.code for p in found} == {"orphan-item"}
    lost = sorted(Path(location, "lost+found").glob("*.json"))  # as a shell glob lists them
    assert len(lost) == len(model.values) - 2
    # The record tells the order, not the files' times: scramble those.
    for n, path in enumerate(lost):
        os.utime(path, (1000 + n, 1000 + n))
    proc = sos_cli("adopt", location, *lost)
    assert f"appended {len(lost)} items" in proc.stderr
    assert not any(p.exists() for p in lost)
    with sos.List(location) as lst:
        assert list(lst) == model.values
    assert sos.check(location) == []


def test_adopt_orders_items_by_number_and_prefixes_by_mtime(tmp_path: Path):
    """Files from anywhere: within a prefix by number, whatever the command
    line's order; across prefixes by the files' earliest mtime."""
    location = str(tmp_path / "todo")
    with sos.List(location):
        pass
    files = []
    for n, (item, when) in enumerate(
        [("bbbb-10", 300), ("aaaa-2", 200), ("bbbb-9", 400), ("aaaa-1", 250), ("cccc-0", 100)]
    ):
        path = tmp_path / f"{n}.json"
        path.write_text(json.dumps({"key": item, "value": item}))
        os.utime(path, (when, when))
        files.append(path)
    sos_cli("adopt", location, *files)
    with sos.List(location) as lst:
        assert list(lst) == ["cccc-0", "aaaa-1", "aaaa-2", "bbbb-9", "bbbb-10"]


def plant_lost_items(location: str, record: list[str]) -> list[str]:
    """Item documents in the store's lost+found, as repair leaves them (by
    hashed name, with the record naming their order); their URLs or paths."""
    from sos.format.names import key_relpath

    storage = open_storage(location)
    try:
        names = []
        for item in record:
            name = f"lost+found/{key_relpath(item).split('/')[1]}"
            storage.write(name, json.dumps({"key": item, "value": item}).encode())
            names.append(name)
        runs = "".join(f"{i.rsplit('-', 1)[0]} {i.rsplit('-', 1)[1]}\n" for i in record)
        header = "# sos list order: one run of item ids per line (PREFIX FIRST-LAST)\n"
        storage.write("lost+found/order.txt", (header + runs).encode())
    finally:
        storage.close()
    sep = "/" if "://" in location else os.sep
    return sorted(location + sep + n.replace("/", sep) for n in names)  # as a glob lists them


def test_adopt_follows_the_lost_and_found_record(location: str):
    """On every storage (a URL inside the store is read through the store's
    storage): the record's order, which no id or name could tell."""
    with sos.List(location) as lst:
        lst.append("kept")
    record = ["ffff-3", "aaaa-1", "ffff-1", "cccc-0"]
    files = plant_lost_items(location, record)
    proc = sos_cli("adopt", location, *files)
    assert "appended 4 items" in proc.stderr
    with sos.List(location) as lst:
        assert list(lst) == ["kept", *record]
    storage = open_storage(location)
    try:
        assert storage.list("lost+found") == ["order.txt"]  # each adopted file removed
    finally:
        storage.close()
    one = sos_cli("adopt", location, files[0], expect=1)
    assert "no such file" in one.stderr

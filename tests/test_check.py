"""sos.check and repair, through the Python API, on real files damaged by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import damage
import pytest
from conftest import crash_after_commit_point, digest_path, plant_crash_leftovers, snapshot

import sos
from sos import format as _format
from sos import txn as _txn


def codes(problems: list[sos.Problem]) -> list[str]:
    return sorted(p.code for p in problems)


def doc_bytes(key: str, value: object) -> bytes:
    return (json.dumps({"key": key, "value": value}, indent=2, ensure_ascii=False) + "\n").encode()


@pytest.fixture
def users(store_path: Path) -> Path:
    with sos.Dict(store_path) as db:
        db.update({"ada": {"born": 1815}, "alan": {"born": 1912}, "grace": [1, 2]})
    return store_path


@pytest.fixture
def todo(store_path: Path) -> Path:
    with sos.List(store_path) as lst:
        lst.extend(["a", "b", "c", "d"])
    return store_path


def item_ids(store: Path) -> list[str]:
    with sos.List(store) as lst:
        return [json.loads(Path(lst.path_of(i)).read_bytes())["key"] for i in range(len(lst))]


def test_clean_stores_have_no_problems(users: Path, tmp_path: Path):
    assert sos.check(users) == []
    with sos.List(tmp_path / "l") as lst:
        lst.extend(range(5))
        del lst[1]
        lst.reverse()
    assert sos.check(tmp_path / "l") == []
    assert sos.check(users, repair=True) == []


def test_not_a_store_is_an_error(tmp_path: Path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    with pytest.raises(sos.Error, match="not a sos store"):
        sos.check(tmp_path / "plain")
    with pytest.raises(sos.Error, match="no such store"):
        sos.check(tmp_path / "missing")


def test_foreign_files_are_not_problems(users: Path):
    """Files that cannot be taken for data are not findings; a ``*.json`` is
    (see test_every_json_file_is_a_finding)."""
    (users / "README.md").write_text("# my data\n")
    (users / "schema.json").write_text('{"type": "object"}')  # reserved for typed stores
    (users / ".DS_Store").write_bytes(b"\0\1")
    fan = digest_path(users, "ada").parent
    (fan / ".x.json.swp").write_bytes(b"swap")
    (fan / "notes.txt").write_text("x")
    (users / "lost+found").mkdir()
    (users / "config.json").mkdir()  # a directory: not a file that looks like data
    assert sos.check(users) == []


def test_leftover_temp_files_are_reported_and_removed(users: Path):
    top = users / ".sos-tmp-0123456789abcdef"
    inner = digest_path(users, "ada").parent / ".sos-tmp-fedcba9876543210"
    top.write_bytes(b"half")
    inner.write_bytes(b"half a doc")
    found = sos.check(users)
    assert codes(found) == ["temp-file", "temp-file"]
    assert {p.path for p in found} == {str(top), str(inner)}
    assert all(p.path in p.message for p in found)
    assert top.exists() and inner.exists(), "check without repair changes nothing"
    fixed = sos.check(users, repair=True)
    assert codes(fixed) == ["temp-file", "temp-file"]
    assert all(p.action and "removed" in p.action for p in fixed)
    assert not top.exists() and not inner.exists()
    assert sos.check(users) == []


def test_a_live_writers_temp_file_is_not_reported(users: Path):
    """A writer holds the store lock while its temp file exists: check waits, sees none."""
    script = textwrap.dedent(
        """
        import fcntl, os, sys, time
        root = sys.argv[1]
        fd = os.open(root, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        tmp = os.path.join(root, ".sos-tmp-00000000000000aa")
        open(tmp, "wb").write(b"in flight")
        print("ready", flush=True)
        time.sleep(1.0)
        os.unlink(tmp)
        fcntl.flock(fd, fcntl.LOCK_UN)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(users)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        assert (users / ".sos-tmp-00000000000000aa").exists()
        assert sos.check(users) == []
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()


def test_invalid_json_names_file_line_and_column(users: Path):
    path = digest_path(users, "alan")
    path.write_bytes(b'{\n  "key": "alan",\n  "value": [1,,2]\n}\n')
    [problem] = sos.check(users)
    assert problem.code == "invalid-json"
    assert (problem.path, problem.line, problem.column) == (str(path), 3, 15)
    assert str(path) in problem.message and "line 3, column 15" in problem.message
    before = snapshot(users)
    [after] = sos.check(users, repair=True)
    assert after.code == "invalid-json"
    assert snapshot(users) == before, "a damaged document is never changed by repair"


@pytest.mark.parametrize("diff3", [False, True])
def test_conflict_markers_name_the_key_and_the_command(users: Path, diff3: bool):
    path = digest_path(users, "ada")
    base = '||||||| base\n  "value": 0\n' if diff3 else ""
    path.write_text(
        '{\n  "key": "ada",\n<<<<<<< HEAD\n  "value": 1\n'
        + base
        + '=======\n  "value": 2\n>>>>>>> theirs\n}\n'
    )
    [problem] = sos.check(users)
    assert problem.code == "conflict-markers"
    assert (problem.key, problem.line) == ("ada", 3)
    assert "'ada'" in problem.message and str(path) in problem.message
    assert f"sos resolve {users} ada --ours" in problem.action
    assert f"sos edit {users} ada" in problem.action
    before = snapshot(users)
    assert codes(sos.check(users, repair=True)) == ["conflict-markers"]
    assert snapshot(users) == before


def test_split_conflict_both_styles():
    from sos.format.conflicts import split_conflict

    plain = b"a\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> b\nz\n"
    diff3 = b"a\n<<<<<<< HEAD\nours\n||||||| base\nold\n=======\ntheirs\n>>>>>>> b\nz\n"
    assert split_conflict(plain) == (b"a\nours\nz\n", b"a\ntheirs\nz\n")
    assert split_conflict(diff3) == (b"a\nours\nz\n", b"a\ntheirs\nz\n")
    assert split_conflict(b"a\nb\n") is None
    assert split_conflict(b"<<<<<<< HEAD\nunfinished\n") is None


def test_bad_shape(users: Path):
    path = digest_path(users, "grace")
    path.write_text('{"key": "grace"}\n')
    [problem] = sos.check(users)
    assert (problem.code, problem.path) == ("bad-shape", str(path))
    assert str(path) in problem.message


def test_a_hand_dropped_document_is_adopted(users: Path):
    dropped = users / "new-user.json"
    dropped.write_bytes(doc_bytes("linus", {"born": 1969}))
    [problem] = sos.check(users)
    assert (problem.code, problem.key, problem.path) == ("misplaced", "linus", str(dropped))
    [fixed] = sos.check(users, repair=True)
    assert str(digest_path(users, "linus")) in fixed.action
    assert not dropped.exists()
    assert digest_path(users, "linus").read_bytes() == doc_bytes("linus", {"born": 1969})
    with sos.Dict(users) as db:
        assert db["linus"] == {"born": 1969}
    assert sos.check(users) == []


def test_a_renamed_file_is_moved_back(users: Path):
    right = digest_path(users, "ada")
    wrong = users / "00" / ("00" + "1" * 30 + ".json")
    wrong.parent.mkdir()
    os.rename(right, wrong)
    [problem] = sos.check(users)
    assert (problem.code, problem.key) == ("misplaced", "ada")
    sos.check(users, repair=True)
    assert right.exists() and not wrong.exists()
    assert sos.check(users) == []


def test_key_conflict_changes_neither(users: Path):
    (users / "other-ada.json").write_bytes(doc_bytes("ada", {"born": 1816}))
    [problem] = sos.check(users)
    assert (problem.code, problem.key) == ("key-conflict", "ada")
    assert str(digest_path(users, "ada")) in problem.message
    before = snapshot(users)
    [after] = sos.check(users, repair=True)
    assert after.code == "key-conflict"
    assert snapshot(users) == before


def test_an_identical_copy_is_removed(users: Path):
    """What a crash between the two steps of a move leaves: repair finishes it."""
    copy = users / "copy.json"
    copy.write_bytes(digest_path(users, "ada").read_bytes())
    [problem] = sos.check(users)
    assert problem.code == "misplaced"
    sos.check(users, repair=True)
    assert not copy.exists() and digest_path(users, "ada").exists()
    assert sos.check(users) == []


@pytest.mark.parametrize("damage", ["missing", "garbage", "future-kind"])
def test_metadata(users: Path, damage: str):
    meta = users / "sos.json"
    if damage == "missing":
        meta.unlink()
    elif damage == "garbage":
        meta.write_text("{kind: dict")
    else:
        meta.write_text('{"format": 1, "kind": "tree"}')
    [problem] = sos.check(users)
    assert (problem.code, problem.path) == ("metadata", str(meta))
    sos.check(users, repair=True)
    assert json.loads(meta.read_text()) == {"format": 1, "kind": "dict"}
    with sos.open(users) as db:
        assert db["ada"] == {"born": 1815}


def test_missing_metadata_of_a_list_is_rewritten_as_a_list(todo: Path):
    (todo / "sos.json").unlink()
    sos.check(todo, repair=True)
    with sos.open(todo) as lst:
        assert isinstance(lst, sos.List) and list(lst) == ["a", "b", "c", "d"]


def test_missing_item_is_dropped(todo: Path):
    ids = item_ids(todo)
    os.unlink(digest_path(todo, ids[1]))
    [problem] = sos.check(todo)
    assert (problem.code, problem.key) == ("missing-item", ids[1])
    assert problem.path == str(todo / "order.txt")
    sos.check(todo, repair=True)
    with sos.List(todo) as lst:
        assert list(lst) == ["a", "c", "d"]
    assert sos.check(todo) == []


def test_orphan_item_is_moved_to_lost_and_found(todo: Path):
    prefix = item_ids(todo)[0].split("-")[0]
    orphan_id = f"{prefix}-99"
    orphan = digest_path(todo, orphan_id)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(doc_bytes(orphan_id, "resurrect me?"))
    [problem] = sos.check(todo)
    assert (problem.code, problem.key, problem.path) == ("orphan-item", orphan_id, str(orphan))
    [fixed] = sos.check(todo, repair=True)
    lost = todo / "lost+found" / orphan.name
    assert not orphan.exists()
    assert lost.read_bytes() == doc_bytes(orphan_id, "resurrect me?")
    assert "sos adopt" in fixed.action and str(lost) in fixed.action
    with sos.List(todo) as lst:
        assert list(lst) == ["a", "b", "c", "d"], "never appended: it may be a removed item"
    assert sos.check(todo) == []


def test_duplicate_entries_keep_the_first(todo: Path):
    order = todo / "order.txt"
    lines = order.read_text().splitlines()
    with sos.List(todo) as lst:
        lst.append("e")
    order.write_text(order.read_text() + lines[-1] + "\n")  # a-d named again at the end
    found = sos.check(todo)
    assert codes(found) == ["duplicate-entry"]
    with sos.List(todo) as lst:
        assert list(lst) == ["a", "b", "c", "d", "e"]  # readers count each id once
    assert b"\n" + lines[-1].encode() + b"\n" in order.read_bytes()  # the file still repeats
    sos.check(todo, repair=True)
    with sos.List(todo) as lst:
        assert list(lst) == ["a", "b", "c", "d", "e"]
    assert order.read_text().count(lines[-1]) == 1
    assert sos.check(todo) == []


def test_conflicted_manifest_keeps_every_run_of_both_sides(store_path: Path):
    with sos.List(store_path) as lst:
        lst.extend([1, 2])
    with sos.List(store_path) as ours:
        ours.append("ours")
    with sos.List(store_path) as theirs:
        theirs.append("theirs")
    order = store_path / "order.txt"
    header, base, our_line, their_line = order.read_text().splitlines()
    order.write_text(
        f"{header}\n{base}\n<<<<<<< HEAD\n{our_line}\n=======\n{their_line}\n>>>>>>> other\n"
    )
    found = sos.check(store_path)
    assert "bad-manifest" in codes(found)
    sos.check(store_path, repair=True)
    with sos.List(store_path) as lst:
        assert list(lst) == [1, 2, "ours", "theirs"]
    assert sos.check(store_path) == []


def test_garbage_manifest_line_loses_no_item(todo: Path):
    order = todo / "order.txt"
    order.write_text(order.read_text() + "this is not a run\n")
    [problem] = sos.check(todo)
    assert (problem.code, problem.line) == ("bad-manifest", 3)
    sos.check(todo, repair=True)
    with sos.List(todo) as lst:
        assert list(lst) == ["a", "b", "c", "d"]


def test_missing_manifest_is_rebuilt_from_the_items(todo: Path):
    (todo / "order.txt").unlink()
    assert codes(sos.check(todo)) == ["bad-manifest"]
    sos.check(todo, repair=True)
    with sos.List(todo) as lst:
        assert sorted(lst) == ["a", "b", "c", "d"]  # one writer's ids: their order
        assert list(lst) == ["a", "b", "c", "d"]


def test_a_damaged_item_stays_in_the_list(todo: Path):
    ids = item_ids(todo)
    digest_path(todo, ids[2]).write_text("{broken")
    os.unlink(digest_path(todo, ids[0]))
    assert codes(sos.check(todo)) == ["invalid-json", "missing-item"]
    sos.check(todo, repair=True)
    assert item_ids_raw(todo) == ids[1:]
    assert codes(sos.check(todo)) == ["invalid-json"]


def item_ids_raw(store: Path) -> list[str]:
    from sos.format.order import Order

    return Order.decode((store / "order.txt").read_bytes(), "order.txt").ids()


def test_problem_is_a_frozen_dataclass():
    p = sos.Problem("temp-file", "/s/.sos-tmp-x", "leftover")
    assert (p.key, p.line, p.column, p.action) == (None, None, None, None)
    with pytest.raises(AttributeError):
        p.code = "other"  # type: ignore[misc]


LIVE_WRITER = textwrap.dedent(
    """
    import json, os, sys
    import sos
    path, stop = sys.argv[1:]
    lst = sos.List(path)
    n = 0
    while not os.path.exists(stop):
        lst.extend([n, n + 1])
        del lst[0]
        if n == 20:
            print("running", flush=True)
        n += 2
    print(json.dumps(list(lst)), flush=True)
    lst.close()
    """
)


def test_check_and_repair_beside_a_live_writer_find_nothing(store_path: Path, tmp_path: Path):
    """Writers hold the lock while files and manifest disagree: no false finding, no damage."""
    sos.List(store_path).close()
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(store_path), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "running\n"
        for _ in range(15):
            assert sos.check(store_path) == []
            assert sos.check(store_path, repair=True) == []
    finally:
        stop.touch()
        final = json.loads(proc.stdout.readline())
        assert proc.wait(timeout=60) == 0
        proc.stdout.close()
    with sos.List(store_path) as lst:
        assert list(lst) == final
    assert not (store_path / "lost+found").exists()


def test_a_bad_line_that_says_missing_is_not_a_missing_manifest(todo: Path):
    with sos.List(todo) as lst:
        lst.reverse()  # so that rebuilding from the ids would show
    order = todo / "order.txt"
    order.write_text(order.read_text() + "missing manifest\n")
    sos.check(todo, repair=True)
    with sos.List(todo) as lst:
        assert list(lst) == ["d", "c", "b", "a"]
    assert sos.check(todo) == []


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"key": "ada", "value": NaN}', "invalid-json"),
        (b'{"key": "ada", "value": "\xff"}', "invalid-json"),
        (b"", "invalid-json"),
        (b'["key", "value"]', "bad-shape"),
        (b'{"key": 5, "value": 1}', "bad-shape"),
        (b'{"key": "ada", "value": 1, "extra": 2}', "bad-shape"),
    ],
)
def test_damage_is_classified(users: Path, content: bytes, code: str):
    digest_path(users, "ada").write_bytes(content)
    [problem] = sos.check(users)
    assert (problem.code, problem.path) == (code, str(digest_path(users, "ada")))


def test_codes_know_whether_repair_fixes_them():
    from sos.check.problems import Code

    assert {c.value for c in Code if not c.repairable} == {
        "invalid-json",
        "foreign-file",
        "conflict-markers",
        "bad-shape",
        "key-conflict",
        "unmerged",
        "not-a-directory",
        "schema",  # a value the schema rejects: only a person knows the right one
    }
    problem = sos.Problem("temp-file", "/s/.sos-tmp-x", "leftover")
    assert problem.code is Code.TEMP_FILE and problem.code == "temp-file"
    assert problem.code.repairable and f"{problem.code}" == "temp-file"
    with pytest.raises(ValueError):
        sos.Problem("no-such-code", "/s/x", "?")


@pytest.mark.parametrize(
    "markers",
    [b"<<<<<<< HEAD\n", b"|||||||\n", b"<<<<<<< HEAD\n=======\n=======\n>>>>>>> b\n"],
    ids=["unfinished", "diff3-base-only", "two-separators"],
)
def test_badly_nested_markers_are_conflict_markers_everywhere(users: Path, markers: bytes):
    """One rule for reads and check: any marker line makes a file conflicted."""
    path = digest_path(users, "ada")
    path.write_bytes(b'{\n  "key": "ada",\n' + markers + b'  "value": 1\n}\n')
    [problem] = sos.check(users)
    assert problem.code == "conflict-markers" and problem.line == 3
    assert "not well nested" in problem.message
    with sos.Dict(users) as db, pytest.raises(sos.CorruptError, match="conflict markers"):
        db["ada"]


def test_check_and_repair_through_any_storage(memory_url: str):
    """check speaks only to the Storage interface: an in-memory store is checked
    and repaired as a directory is (object storage gets it the same way)."""
    from sos.storage.registry import open_storage

    with sos.List(memory_url) as lst:
        lst.extend(["milk", "eggs"])
    storage = open_storage(memory_url)
    try:
        storage.write("dropped.json", doc_bytes("abc-7", "jam"))  # an orphan, misplaced
        storage.write(".sos-tmp-0000000000000001", b"half")
        storage.write(digest_rel("zzz-1"), b'{"key": "zzz-1", "value": [1,}')
        found = sos.check(memory_url)
        assert codes(found) == ["invalid-json", "misplaced", "temp-file"]
        assert all(p.path.startswith(memory_url + "/") for p in found)
        assert codes(sos.check(memory_url, repair=True)) == codes(found)
        # Moved into place, the item is an orphan (the manifest never named it).
        assert codes(sos.check(memory_url, repair=True)) == ["invalid-json", "orphan-item"]
        assert codes(sos.check(memory_url)) == ["invalid-json"]  # left to a person
        lost = f"lost+found/{digest_rel('abc-7').split('/')[1]}"
        assert storage.read(lost) == doc_bytes("abc-7", "jam")
        assert not storage.exists("dropped.json")
    finally:
        storage.close()
    with sos.List(memory_url) as lst:
        assert list(lst) == ["milk", "eggs"]


def digest_rel(key: str) -> str:
    from sos.format.names import key_relpath

    return key_relpath(key)


def test_a_pending_transaction_is_reported_and_rolled_forward(users: Path):
    crash_after_commit_point(users, {"ada": "new", "linus": 1969})
    assert codes(sos.check(users)) == ["pending-transaction"]
    [done] = sos.check(users, repair=True)
    assert done.code == "pending-transaction" and "rolled forward" in done.action
    assert sos.check(users) == [] and not (users / ".sos" / "txn.json").exists()
    with sos.Dict(users) as db:
        assert db["ada"] == "new" and db["linus"] == 1969


def test_crash_leftovers_in_the_reserved_space_are_reported_and_removed(users: Path):
    """A writer killed while it wrote a transaction's record leaves a temp file
    in .sos/, and one killed before the commit point of a transaction that
    had spilled entries leaves a part no record names: nothing else would
    ever remove them, so check reports them and repair removes them."""
    temp, part = plant_crash_leftovers(users)
    found = sos.check(users)
    assert codes(found) == ["temp-file", "temp-file"]
    assert {p.path for p in found} == {str(temp), str(part)}
    by_path = {p.path: p.message for p in found}
    assert "leftover temporary file" in by_path[str(temp)]
    assert "part of a transaction record never committed" in by_path[str(part)]
    assert temp.exists() and part.exists(), "check without repair changes nothing"
    fixed = sos.check(users, repair=True)
    assert codes(fixed) == ["temp-file", "temp-file"]
    assert all(p.action and "removed" in p.action for p in fixed)
    assert [p.name for p in temp.parent.iterdir() if p.name != "txn.done"] == []
    assert sos.check(users) == []
    with sos.Dict(users) as db:
        assert db["ada"] == {"born": 1815}, "the store's data is untouched"


def test_a_part_that_a_pending_record_names_is_not_a_leftover(users: Path):
    """A crash after the commit point leaves the record and its parts: check
    reports the pending transaction (repair finishes it, which removes the
    parts), never its parts as leftovers."""
    with sos.Dict(users) as db:
        storage = db._storage
        journal = _txn.Journal(storage)
        journal.add(_format.key_relpath("ada"), _format.encode_document("ada", "rolled"))
        journal._spill()  # the entries go to a part, as a big transaction's do
        journal.commit()  # the commit point; then the writer dies
    parts = sorted(p.name for p in (users / ".sos").iterdir() if p.name.endswith(".part"))
    assert len(parts) == 1
    assert codes(sos.check(users)) == ["pending-transaction"]
    fixed = sos.check(users, repair=True)
    assert codes(fixed) == ["pending-transaction"]
    assert not any(p.name.endswith(".part") for p in (users / ".sos").iterdir())
    with sos.Dict(users) as db:
        assert db["ada"] == "rolled"
    assert sos.check(users) == []


def test_repair_leaves_young_orphans_alone_where_the_storage_has_a_grace(
    memory_url: str, monkeypatch: pytest.MonkeyPatch
):
    """Object storage has no lock an appender takes: an orphan younger than the
    storage's orphan_grace may be a live append, so check reports nothing for it
    and repair leaves it; an older one is an orphan-item, moved (docs/s3.md)."""
    from sos.storage.memory import MemoryStorage
    from sos.storage.registry import open_storage

    with sos.List(memory_url) as lst:
        lst.append("milk")
    storage = open_storage(memory_url)
    storage.write(digest_rel("abc-7"), doc_bytes("abc-7", "jam"))
    storage.close()
    monkeypatch.setattr(MemoryStorage, "orphan_grace", 3600.0, raising=False)
    monkeypatch.setattr(MemoryStorage, "age", lambda self, name: 5.0, raising=False)
    assert sos.check(memory_url) == [] and sos.check(memory_url, repair=True) == []
    assert sos.List(memory_url)[:] == ["milk"]  # left where it was
    monkeypatch.setattr(MemoryStorage, "age", lambda self, name: 7200.0, raising=False)
    [found] = sos.check(memory_url)
    assert found.code == "orphan-item"
    [old] = sos.check(memory_url, repair=True)
    assert "moved to" in old.action and sos.check(memory_url) == []


# -- issue 19: nothing in the store directory is silently ignored ----------------------

TYPO = b'{"key": "grace", "value": {"born": 1906},}\n'  # the issue's own example


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("grace.json", TYPO, "invalid-json"),
        ("grace.json", b"\xef\xbb\xbf" + doc_bytes("grace", {"born": 1906}), "invalid-json"),
        ("grace.json", b'{"name": "not a document"}', "foreign-file"),
        ("grace.json", b"[1, 2, 3]", "foreign-file"),
        ("package.json", b'{"name": "my-app", "version": "1.0.0"}', "foreign-file"),
        ("Grace.JSON", TYPO, "invalid-json"),
        ("{fan}/grace.json", TYPO, "invalid-json"),
        ("{fan}/grace.json", b'{"key": 5}', "foreign-file"),
        ("{fan}/grace.json", doc_bytes("grace", 1), "misplaced"),
        ("grace.json", doc_bytes("grace", 1), "misplaced"),
    ],
)
def test_every_json_file_is_a_finding(users: Path, name: str, content: bytes, code: str):
    """A typo or a BOM no longer hides a hand-dropped document from check."""
    with sos.Dict(users) as db:
        del db["grace"]  # so a valid "grace" document is misplaced, not a key conflict
    path = users / name.format(fan=digest_path(users, "ada").parent.name)
    path.write_bytes(content)
    [problem] = sos.check(users)
    assert (problem.code, problem.path) == (code, str(path))
    if code == "invalid-json":
        assert (problem.line, problem.column) != (None, None)
        assert f"line {problem.line}" in problem.message or "byte order mark" in problem.message


def test_invalid_json_names_line_and_column_of_the_typo(users: Path):
    (users / "grace.json").write_bytes(TYPO)
    [problem] = sos.check(users)
    assert (problem.code, problem.line, problem.column) == ("invalid-json", 1, 42)
    assert "grace.json: invalid JSON at line 1, column 42" in problem.message


def test_repair_moves_misplaced_documents_and_leaves_the_rest(users: Path):
    """Only the valid, misplaced document moves; the others stay, byte for byte,
    and the command exits non-zero: a person must look."""
    (users / "linus.json").write_bytes(doc_bytes("linus", 1969))
    (users / "grace.json").write_bytes(TYPO)
    (users / "notes.json").write_bytes(b'{"todo": "tidy up"}')
    proc = run_cli("check", "--repair", str(users))
    assert proc.returncode == 1, proc.stderr
    assert "misplaced:" in proc.stdout and "moved to" in proc.stdout
    assert "invalid-json:" in proc.stdout and "foreign-file:" in proc.stdout
    assert not (users / "linus.json").exists()
    assert (users / "grace.json").read_bytes() == TYPO
    assert (users / "notes.json").read_bytes() == b'{"todo": "tidy up"}'
    with sos.Dict(users) as db:
        assert db["linus"] == 1969
    assert codes(sos.check(users)) == ["foreign-file", "invalid-json"]


def test_the_issues_typo_fails_sos_check(users: Path):
    """`echo '{... 1906},}' > users/grace.json; sos check users` said nothing and exited 0."""
    (users / "grace.json").write_bytes(TYPO)
    proc = run_cli("check", str(users))
    assert proc.returncode == 1
    assert f"invalid-json: {users / 'grace.json'}: invalid JSON at line 1, column 42" in (
        proc.stdout
    )


def test_a_document_of_another_kind_in_a_list_is_a_foreign_file(todo: Path):
    (todo / "ada.json").write_bytes(doc_bytes("ada", {"born": 1815}))  # a Dict's document
    [problem] = sos.check(todo, repair=True)
    assert problem.code == "foreign-file" and "not a list item id" in problem.message
    assert (todo / "ada.json").exists()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sos", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("case", sorted(damage.CASES))
@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("storage", ["local", "memory"])
def test_check_never_reports_clean_while_a_data_file_is_unreadable(
    storage: str, kind: str, case: str, store_path: Path, memory_url: str
):
    url = str(store_path) if storage == "local" else memory_url
    damage.assert_never_clean(url, kind, case)


# -- issue 19: no error swallowed ------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (mounting needs root: CI runs as root)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,nr_inodes=256", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"a full-disk test needs mount -t tmpfs (root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def fill(fs: Path) -> Path:
    """Take every free block of ``fs``; returns the filler to remove."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


def test_repair_on_a_full_disk_fails_and_names_what_is_left(tiny_fs: Path):
    """A repair whose write fails (ENOSPC) exits non-zero, says which findings
    are still to do and how, and leaves their files as they were."""
    store = tiny_fs / "users"
    with sos.Dict(store) as db:
        db["ada"] = 1815
    dropped = doc_bytes("linus", 1969)
    (store / "linus.json").write_bytes(dropped)
    (store / ".sos-tmp-0123456789abcdef").write_bytes(b"half")
    filler = fill(tiny_fs)
    proc = run_cli("check", "--repair", str(store))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "repair did not finish: 1 of 2 finding(s)" in proc.stderr, proc.stderr
    assert f"misplaced: {store / 'linus.json'}" in proc.stderr
    assert "No space left on device" in proc.stderr
    assert f"run sos check --repair {store} again" in proc.stderr
    assert (store / "linus.json").read_bytes() == dropped
    assert not (store / ".sos-tmp-0123456789abcdef").exists()  # the others were done
    filler.unlink()
    proc = run_cli("check", "--repair", str(store))
    assert proc.returncode == 0, proc.stderr
    with sos.Dict(store) as db:
        assert db["linus"] == 1969


def test_repair_over_quota_raises_with_every_finding(
    users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """EDQUOT (a quota, where a test cannot set one up) from the file write:
    sos.check raises an Error carrying each finding and what was done to it."""
    import errno

    import sos.cli
    from sos.storage import atomic as _atomic

    (users / "linus.json").write_bytes(doc_bytes("linus", 1969))
    (users / ".sos-tmp-0123456789abcdef").write_bytes(b"half")

    def over_quota(fd: int, data: bytes) -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(_atomic.ops, "write", over_quota)
    with pytest.raises(sos.Error, match="repair did not finish") as raised:
        sos.check(users, repair=True)
    done = {p.code: p.action for p in raised.value.problems}  # type: ignore[attr-defined]
    assert done["temp-file"].startswith("removed")
    assert done["misplaced"].startswith("NOT repaired (repair moves it there)")
    assert os.strerror(errno.EDQUOT) in done["misplaced"]
    assert sos.cli.main(["check", "--repair", str(users)]) == 1
    err = capsys.readouterr().err
    assert "misplaced" in err and os.strerror(errno.EDQUOT) in err and "--repair" in err
    monkeypatch.undo()
    assert codes(sos.check(users, repair=True)) == ["misplaced"]
    assert sos.check(users) == []


def test_a_git_that_times_out_is_an_error_naming_the_command(
    users: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A hung git (a lock, a stuck mount) used to read as "nothing unmerged"."""
    import time

    from sos import git as _git

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text("#!/bin/sh\nexec sleep 5\n")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(_git, "TIMEOUT", 0.5, raising=False)
    (users.parent / ".git").mkdir(exist_ok=True)  # in a work tree, as far as sos can tell
    start = time.monotonic()
    with pytest.raises(sos.Error, match=r"did not finish in 0\.5 s") as raised:
        sos.check(users)
    assert time.monotonic() - start < 4
    assert f"git -C {users} ls-files -u -z -- ." in str(raised.value)


def test_watcher_close_errors_are_logged(users: Path, caplog: pytest.LogCaptureFixture):
    import logging

    with sos.Dict(users) as db:
        watcher = db.watch(poll=0.1)
        storage = watcher._core.storage

        def broken_close() -> None:
            raise OSError(5, "Input/output error", "the storage")

        storage.close = broken_close
        with caplog.at_level(logging.WARNING, logger="sos.watch"):
            watcher.close()
    [record] = [r for r in caplog.records if r.name == "sos.watch"]
    assert "closing the storage failed" in record.getMessage()
    assert "Input/output error" in record.getMessage() and str(users) in record.getMessage()
    assert record.exc_info is not None and watcher.closed


def test_one_predicate_names_data_files():
    from sos import format as _format

    name = digest_path(Path("s"), "ada").relative_to("s").as_posix()
    assert _format.is_data_path(name) and _format.is_data_file(name[:2], name[3:])
    other = "00" if not name.startswith("00") else "01"
    for not_data in [
        f"{other}/{name[3:]}",  # in a fan-out directory not its own
        name[3:],  # at the top
        name.upper(),
        name.replace(".json", ".JSON"),
        f"{name[:2]}/x/{name[3:]}",
        f"{name[:2]}/{name[3:-5]}0.json",  # 33 digits
    ]:
        assert not _format.is_data_path(not_data), not_data
    assert not _format.is_data_file("", name[3:])

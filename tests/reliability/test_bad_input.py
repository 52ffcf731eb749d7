"""Bad input, table-driven: every case ends in a clear error naming the problem
(and the file, for trouble on disk), and leaves the directory byte-identical."""

from __future__ import annotations

import decimal
import errno
import json
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import recording
from conftest import snapshot, temp_files
from recording import Recording

import sos
from sos import format as _format
from sos.storage import atomic as _atomic

from . import harness
from .mutants import KeepTemps

DICT_CONTENT = {"a": 1, "b": [1, 2]}
LIST_CONTENT = [1, 2, 3]
NAN = float("nan")
INF = float("inf")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # the store made first: "dict", "list" or "none"
    action: Callable[[Path], Any]  # given the store's path
    error: type[BaseException]
    text: str  # must appear in the message
    damage: Callable[[Path], Any] | None = None  # on-disk trouble made beforehand


def on_dict(fn: Callable[[sos.Dict], Any]) -> Callable[[Path], Any]:
    def action(path: Path) -> Any:
        with sos.Dict(path) as db:
            return fn(db)

    return action


def on_list(fn: Callable[[sos.List], Any]) -> Callable[[Path], Any]:
    def action(path: Path) -> Any:
        with sos.List(path) as lst:
            return fn(lst)

    return action


def dset(key: Any, value: Any = 1) -> Callable[[Path], Any]:
    return on_dict(lambda db: db.__setitem__(key, value))


def lappend(value: Any) -> Callable[[Path], Any]:
    return on_list(lambda lst: lst.append(value))


def _cycle_list() -> list:
    a: list = [1]
    a.append(a)
    return a


def _cycle_dict() -> dict:
    d: dict = {}
    d["self"] = {"again": d}
    return d


def _deep(n: int) -> list:
    v: list = []
    for _ in range(n):
        v = [v]
    return v


def write(relpath: str, data: bytes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        target = path / relpath
        if target.is_dir():
            shutil.rmtree(target)
        target.write_bytes(data)

    return damage


def remove(relpath: str) -> Callable[[Path], None]:
    return lambda path: (path / relpath).unlink()


def _drop_first_item(path: Path) -> None:
    with sos.List(path) as lst:
        first = lst._order().ids()[0]
    (path / _format.key_relpath(first)).unlink()


def _misplace(path: Path) -> None:
    # key "a"'s file now holds key "zzz": a hand-renamed file
    target = path / _format.key_relpath("a")
    target.write_bytes(_format.encode_document("zzz", 1))


def _closed_write(path: Path) -> None:
    db = sos.Dict(path)
    db.close()
    db["a"] = 2


CASES = [
    # keys that are not str, on write
    Case("int key", "dict", dset(5), TypeError, "keys must be str, not int"),
    Case("bytes key", "dict", dset(b"a"), TypeError, "keys must be str, not bytes"),
    Case("None key", "dict", dset(None), TypeError, "keys must be str, not NoneType"),
    Case("tuple key", "dict", dset(("a",)), TypeError, "keys must be str, not tuple"),
    Case("float key", "dict", dset(1.5), TypeError, "keys must be str, not float"),
    Case("update int key", "dict", on_dict(lambda d: d.update({5: 1})), TypeError, "must be str"),
    Case(
        "update with one bad key writes nothing",
        "dict",
        on_dict(lambda d: d.update({"ok": 1, "ok2": 2, 7: 3})),
        TypeError,
        "must be str",
    ),
    Case("setdefault int key", "dict", on_dict(lambda d: d.setdefault(5, 1)), TypeError, "str"),
    Case("lone surrogate key", "dict", dset("a\ud800"), ValueError, "lone surrogate"),
    Case("path_of int key", "dict", on_dict(lambda d: d.path_of(5)), TypeError, "must be str"),
    # values JSON cannot hold
    Case("object value", "dict", dset("k", object()), TypeError, "object, which JSON cannot"),
    Case("set value", "dict", dset("k", {1, 2}), TypeError, "set, which JSON cannot"),
    Case("bytes value", "dict", dset("k", b"x"), TypeError, "bytes, which JSON cannot"),
    Case("NaN", "dict", dset("k", NAN), ValueError, "finite"),
    Case("infinity", "dict", dset("k", INF), ValueError, "finite"),
    Case("minus infinity", "dict", dset("k", -INF), ValueError, "finite"),
    Case("nested NaN", "dict", dset("k", [1, {"x": NAN}]), ValueError, "value[1]['x'] is nan"),
    Case("list cycle", "dict", dset("k", _cycle_list()), ValueError, "contains itself"),
    Case("dict cycle", "dict", dset("k", _cycle_dict()), ValueError, "contains itself"),
    Case("int dict key", "dict", dset("k", {1: 2}), TypeError, "int dict key 1"),
    Case(
        "int dict key at depth 3",
        "dict",
        dset("k", {"a": [{"b": {2: 3}}]}),
        TypeError,
        "value['a'][0]['b'] has an int dict key",
    ),
    Case("tuple dict key", "dict", dset("k", {(1, 2): 3}), TypeError, "tuple dict key"),
    Case("None dict key", "dict", dset("k", {None: 1}), TypeError, "NoneType dict key"),
    Case("nesting past 500", "dict", dset("k", _deep(600)), ValueError, "deeper than 500"),
    Case("complex value", "dict", dset("k", 1j), TypeError, "complex"),
    Case("Decimal value", "dict", dset("k", decimal.Decimal(1)), TypeError, "Decimal"),
    Case("lone surrogate value", "dict", dset("k", "\udc80"), ValueError, "lone surrogate"),
    Case(
        "update with one bad value writes nothing",
        "dict",
        on_dict(lambda d: d.update({"x": 1, "a": 5, "y": NAN})),
        ValueError,
        "finite",
    ),
    # lists
    Case("append NaN", "list", lappend(NAN), ValueError, "finite"),
    Case("insert set", "list", on_list(lambda s: s.insert(0, {1})), TypeError, "set"),
    Case("set index bytes", "list", on_list(lambda s: s.__setitem__(0, b"")), TypeError, "bytes"),
    Case(
        "extend with one bad value writes nothing",
        "list",
        on_list(lambda s: s.extend([4, 5, object()])),
        TypeError,
        "object",
    ),
    Case(
        "slice set infinity",
        "list",
        on_list(lambda s: s.__setitem__(slice(0, 1), [INF])),
        ValueError,
        "finite",
    ),
    Case(
        "str index",
        "list",
        on_list(lambda s: s.__setitem__("x", 1)),
        TypeError,
        "indices must be integers",
    ),
    Case("float index read", "list", on_list(lambda s: s[1.5]), TypeError, "not float"),
    Case(
        "set index out of range",
        "list",
        on_list(lambda s: s.__setitem__(10, 1)),
        IndexError,
        "out of range",
    ),
    Case("pop out of range", "list", on_list(lambda s: s.pop(10)), IndexError, "out of range"),
    Case(
        "delete out of range",
        "list",
        on_list(lambda s: s.__delitem__(10)),
        IndexError,
        "out of range",
    ),
    Case("remove missing", "list", on_list(lambda s: s.remove(99)), ValueError, "not in list"),
    Case(
        "extended slice of wrong size",
        "list",
        on_list(lambda s: s.__setitem__(slice(None, None, 2), [1, 2, 3])),
        ValueError,
        "extended slice",
    ),
    Case(
        "insert str index",
        "list",
        on_list(lambda s: s.insert("a", 1)),
        TypeError,
        "indices must be integers",
    ),
    # missing keys
    Case("delete missing key", "dict", on_dict(lambda d: d.__delitem__("zz")), KeyError, "zz"),
    Case("pop missing key", "dict", on_dict(lambda d: d.pop("zz")), KeyError, "zz"),
    # the store itself
    Case(
        "path is a file",
        "none",
        lambda p: sos.Dict(p),
        sos.Error,
        "is a file, not a store directory",
        damage=lambda p: p.write_bytes(b"hello"),
    ),
    Case(
        "parent is a file",
        "none",
        lambda p: sos.Dict(p / "sub"),
        sos.Error,
        "a parent of the store is a file",
        damage=lambda p: p.write_bytes(b"hello"),
    ),
    Case(
        "non-empty directory without metadata",
        "none",
        lambda p: sos.Dict(p),
        sos.Error,
        "refusing to turn it into one",
        damage=lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")),
    ),
    Case("open a missing path", "none", lambda p: sos.open(p), sos.Error, "not a sos store"),
    Case(
        "create=False on a missing path",
        "none",
        lambda p: sos.List(p, create=False),
        sos.Error,
        "not a sos store",
    ),
    Case(
        "metadata missing",
        "dict",
        lambda p: sos.open(p),
        sos.Error,
        "not a sos store (no sos.json)",
        damage=remove("sos.json"),
    ),
    Case(
        "metadata bad JSON",
        "dict",
        lambda p: sos.open(p),
        sos.CorruptError,
        "sos.json: invalid JSON at line 1",
        damage=write("sos.json", b'{"format": 1, "kind": '),
    ),
    Case(
        "metadata empty",
        "dict",
        lambda p: sos.Dict(p),
        sos.CorruptError,
        "sos.json: invalid JSON",
        damage=write("sos.json", b""),
    ),
    Case(
        "metadata unknown kind",
        "dict",
        lambda p: sos.open(p),
        sos.CorruptError,
        "unknown store kind 'tree'",
        damage=write("sos.json", b'{"format": 1, "kind": "tree"}'),
    ),
    Case(
        "metadata newer format",
        "dict",
        lambda p: sos.open(p),
        sos.Error,
        "store format 99 is newer",
        damage=write("sos.json", b'{"format": 99, "kind": "dict"}'),
    ),
    Case(
        "metadata a JSON list",
        "list",
        lambda p: sos.open(p),
        sos.CorruptError,
        "metadata must be a JSON object",
        damage=write("sos.json", b"[1]"),
    ),
    Case(
        "metadata format a string",
        "list",
        lambda p: sos.List(p),
        sos.CorruptError,
        '"format" must be an integer',
        damage=write("sos.json", b'{"format": "1", "kind": "list"}'),
    ),
    Case(
        "metadata is a directory",
        "dict",
        lambda p: sos.open(p),
        sos.CorruptError,
        "sos.json: is a directory",
        damage=lambda p: ((p / "sos.json").unlink(), (p / "sos.json").mkdir()),
    ),
    Case("List on a Dict store", "dict", lambda p: sos.List(p), sos.Error, "is a sos dict store"),
    Case("Dict on a List store", "list", lambda p: sos.Dict(p), sos.Error, "is a sos list store"),
    Case(
        "manifest names a missing item",
        "list",
        on_list(lambda s: s[0]),
        sos.CorruptError,
        "order.txt: names item",
        damage=_drop_first_item,
    ),
    Case(
        "manifest missing",
        "list",
        on_list(len),
        sos.CorruptError,
        "order.txt: the list's manifest is missing",
        damage=remove("order.txt"),
    ),
    Case(
        "manifest garbage line",
        "list",
        on_list(list),
        sos.CorruptError,
        "order.txt: line 2: expected 'PREFIX FIRST-LAST'",
        damage=write("order.txt", b"# header\nnot a run\n"),
    ),
    Case(
        "manifest conflict markers",
        "list",
        on_list(len),
        sos.CorruptError,
        "git conflict markers",
        damage=write("order.txt", b"<<<<<<< HEAD\nab 1\n=======\nab 2\n>>>>>>> other\n"),
    ),
    Case(
        "document bad JSON",
        "dict",
        on_dict(lambda d: d["a"]),
        sos.CorruptError,
        f"{_format.key_relpath('a')}: invalid JSON at line 2",
        damage=write(_format.key_relpath("a"), b'{\n  "key": "a",,\n}'),
    ),
    Case(
        "document in the wrong file",
        "dict",
        on_dict(lambda d: d["a"]),
        sos.CorruptError,
        "holds key 'zzz', which belongs in",
        damage=_misplace,
    ),
    Case("write on a closed store", "dict", _closed_write, sos.ClosedError, "closed store"),
]


def run_case(case: Case, base: Path) -> list[str]:
    """What is wrong with how sos handled ``case`` (empty: all good)."""
    path = base / "store"
    if case.kind != "none":
        harness.make_store(path, case.kind, DICT_CONTENT if case.kind == "dict" else LIST_CONTENT)
    if case.damage is not None:
        case.damage(path)
    before = snapshot(base)
    out = []
    try:
        case.action(path)
        out.append(f"no error; expected {case.error.__name__}")
    except case.error as exc:
        message = str(exc) if not isinstance(exc, KeyError) else repr(exc)
        if case.text not in message:
            out.append(f"message {message!r:.300} does not name the problem ({case.text!r})")
    except Exception as exc:
        out.append(f"raised {type(exc).__name__}: {exc!s:.200}; expected {case.error.__name__}")
    if snapshot(base) != before:
        out.append("the directory changed")
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path):
    harness.add_figure("bad inputs: table cases", 1)
    assert run_case(case, tmp_path) == []


def test_at_least_forty_cases():
    assert len(CASES) >= 40


def test_bad_input_table_catches_a_missing_check(tmp_path: Path, monkeypatch):
    """Without value validation NaN is written (and the store changes): red."""
    monkeypatch.setattr(_format, "validate_value", lambda value: None)
    monkeypatch.setattr(_format.documents, "validate_value", lambda value: None)
    case = next(c for c in CASES if c.id == "NaN")
    assert run_case(case, tmp_path) != []


# -- strange but valid keys --------------------------------------------------------

NFC = unicodedata.normalize("NFC", "é")
NFD = unicodedata.normalize("NFD", "é")
STRANGE_KEYS = [
    "",
    "x" * 100_000,
    "a\0b",
    "line\nbreak",
    "a/b",
    "..",
    "../../outside",
    "/etc/passwd",
    "C:\\windows",
    NFC,
    NFD,
    "\u202e",
    " ",
    ".sos-tmp-0123456789abcdef",
    "sos.json",
]


def test_strange_keys_round_trip_as_distinct_keys_inside_the_store(tmp_path: Path):
    assert NFC != NFD
    path = tmp_path / "store"
    with sos.Dict(path) as db:
        for n, key in enumerate(STRANGE_KEYS):
            db[key] = n
    harness.add_figure("bad inputs: strange valid keys", len(STRANGE_KEYS))
    assert sorted(os.listdir(tmp_path)) == ["store"]  # nothing outside the store
    with sos.Dict(path) as db:
        assert len(db) == len(STRANGE_KEYS)
        assert {k: db[k] for k in db} == {k: n for n, k in enumerate(STRANGE_KEYS)}
        assert db.path_of(NFC) != db.path_of(NFD)
    assert harness.leftovers(str(path), "dict") == ([], [], [])
    assert sos.check(path) == []


def test_reads_with_non_str_keys_behave_like_a_dict_of_str(tmp_path: Path):
    with sos.Dict(tmp_path / "s") as db:
        db["5"] = "five"
        before = snapshot(tmp_path)
        assert 5 not in db
        assert db.get(5) is None
        assert db.get(b"5", "d") == "d"
        with pytest.raises(KeyError):
            db[5]
        with pytest.raises(KeyError):
            del db[5]
        assert db.pop(5, "gone") == "gone"
        assert snapshot(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "megabytes",
    # The 200 MB value only in the long form (not a skip: CI runs what it lists).
    [20, 200] if os.environ.get("SOS_LONG") == "1" else [20],
)
def test_very_large_value(megabytes: int, tmp_path: Path):
    value = {"blob": "x" * (megabytes * 1_000_000), "n": list(range(1000))}
    with sos.Dict(tmp_path / "s") as db:
        db["big"] = value
    with sos.Dict(tmp_path / "s") as db:
        assert db["big"] == value
    assert temp_files(tmp_path) == []
    harness.add_figure("bad inputs: very large values", 1)


# -- a read-only store directory (EACCES) ------------------------------------------------


def test_read_only_store_refuses_writes_cleanly():
    """Root ignores permission bits, so the writer runs in a forked child that
    drops to the ``nobody`` user first (a non-root run does it directly)."""
    import pwd

    base = Path(tempfile.mkdtemp(prefix="sos-readonly-"))
    try:
        os.chmod(base, 0o755)
        path = base / "store"
        harness.make_store(path, "dict", DICT_CONTENT)
        os.chmod(path, 0o555)
        before = snapshot(base)

        def child() -> str:
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            with sos.Dict(path) as db:
                assert db["a"] == 1  # reading still works
                try:
                    db["new"] = 1
                except PermissionError as exc:
                    return f"{type(exc).__name__}: {exc}"
                return "no error"

        outcome = harness.in_fork(child)
        assert outcome.startswith("PermissionError: [Errno 13] Permission denied")
        assert str(path) in outcome
        assert snapshot(base) == before
        harness.add_figure("bad inputs: read-only store", 1)
    finally:
        os.chmod(base / "store", 0o755)
        shutil.rmtree(base)


# -- a full disk (ENOSPC), simulated at each write and fsync in turn ---------------------


FULL_DISK_CALLS = {
    "dict set new key": on_dict(lambda d: d.__setitem__("new", [1])),
    "dict overwrite": on_dict(lambda d: d.__setitem__("a", "changed")),
    # a warm handle's set is sos.storage.plain's one-frame write
    "dict overwrite, warm handle": on_dict(
        lambda d: (d.__setitem__("b", d["b"]), d.__setitem__("a", "changed"))
    ),
    "dict update": on_dict(lambda d: d.update({"a": 2, "n1": 1, "n2": 2})),
    "list append": on_list(lambda s: s.append(4)),
    "list insert": on_list(lambda s: s.insert(0, 0)),
    "list set index": on_list(lambda s: s.__setitem__(1, "x")),
    "list extend": on_list(lambda s: s.extend([7, 8, 9])),
    "list pop": on_list(lambda s: s.pop()),
}


# Every call here is all or nothing (Dict.update is one transaction). A
# transaction that fails after its commit point raises NotDurableError and
# must read as all new once the store is opened again (recovery).
AFTER_COMMIT = {"dict update": {**DICT_CONTENT, "a": 2, "n1": 1, "n2": 2}}


def full_disk_failures(name: str, base: Path) -> tuple[int, list[str]]:
    """(steps failed, violations): ENOSPC at each write/fsync of one call."""
    call = FULL_DISK_CALLS[name]
    kind = name.split()[0]
    out = []
    k = 0
    while True:
        k += 1
        path = base / f"k{k}" / "store"
        harness.make_store(path, kind, DICT_CONTENT if kind == "dict" else LIST_CONTENT)
        before = snapshot(path)
        # A full disk: ENOSPC at the k-th write or fsync. Not at a directory
        # fsync: once a rename is done the new value is in place, and a failing
        # directory fsync is a different failure (EIO).
        disk = Recording(fail={"write", "fsync", "fsync_file"}, nth=k, error=errno.ENOSPC)
        try:
            with recording.installed(disk):
                call(path)
        except sos.NotDurableError:
            new = AFTER_COMMIT.get(name)
            if new is None:
                out.append(f"step {k}: NotDurableError from a single-file change")
            else:
                violations = harness.violations(str(path), kind, DICT_CONTENT, new, done=True)
                out += [f"step {k}, after its commit point: {v}" for v in violations]
            continue
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                out.append(f"step {k}: {exc!r}")
        else:
            return k - 1, out
        if temp_files(path):
            out.append(f"step {k}: temp files left: {temp_files(path)}")
        after = snapshot(path)
        # An empty fan-out directory made for the new file may stay, and so
        # may the reserved .sos/ a transaction made: they hold no data and
        # readers skip them. Every file must be as it was.
        for new_dir in [n for n, data in after.items() if data is None and n not in before]:
            if not os.listdir(path / new_dir):
                del after[new_dir]
        if after != before:
            changed = sorted(p for p in {*after, *before} if after.get(p, 0) != before.get(p, 0))
            out.append(f"step {k}: the store changed: {changed}")


@pytest.mark.parametrize("name", list(FULL_DISK_CALLS))
def test_full_disk_leaves_the_store_as_it_was(name: str, tmp_path: Path):
    failed, found = full_disk_failures(name, tmp_path)
    harness.add_figure("bad inputs: ENOSPC failure points", failed)
    assert found == []
    assert failed >= 1


def test_full_disk_check_catches_a_leaked_temp_file(tmp_path: Path, monkeypatch):
    """If a failed write kept its temp file, the suite would say so."""
    monkeypatch.setattr(_atomic, "ops", KeepTemps())  # the full disk goes below it
    _, found = full_disk_failures("dict overwrite", tmp_path)
    assert any("temp files left" in f for f in found)


def test_error_messages_are_json_free_of_reprs_of_huge_keys(tmp_path: Path):
    """A 100,000-character bad key must not flood the message."""
    with sos.Dict(tmp_path / "s") as db, pytest.raises(ValueError) as info:
        db["\ud800" + "x" * 100_000] = 1
    assert len(str(info.value)) < 300
    assert json.dumps(str(info.value))

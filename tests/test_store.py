"""Opening, creating, closing; paths and kinds; foreign files; reads reflect the disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import digest_path, snapshot, temp_files

import sos

KINDS = [sos.Dict, sos.List]


class CustomPath:
    """An os.PathLike that is neither str nor pathlib."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return str(self._path)


# -- opening and kinds ---------------------------------------------------------------


@pytest.mark.parametrize("cls", KINDS)
def test_open_picks_the_kind(store_path: Path, cls: type):
    cls(store_path).close()
    with sos.open(store_path) as store:
        assert type(store) is cls
        assert store.path == store_path


def test_open_with_str_and_reads_the_data(store_path: Path, tmp_path: Path):
    with sos.Dict(store_path) as db:
        db["ada"] = {"born": 1815}
    with sos.open(str(store_path)) as same:
        assert same["ada"]["born"] == 1815
    with sos.List(tmp_path / "l") as lst:
        lst.append("x")
    with sos.open(tmp_path / "l") as same:
        assert same == ["x"]


@pytest.mark.parametrize(("made", "opened"), [(sos.Dict, sos.List), (sos.List, sos.Dict)])
def test_wrong_kind_is_an_error_and_changes_nothing(store_path: Path, made: type, opened: type):
    with made(store_path) as store:
        if made is sos.Dict:
            store["k"] = 1
        else:
            store.append(1)
    before = snapshot(store_path)
    with pytest.raises(sos.Error, match=made.__name__.lower()):
        opened(store_path)
    assert snapshot(store_path) == before


@pytest.mark.parametrize("opener", [sos.Dict, sos.List, sos.open])
def test_non_empty_directory_that_is_not_a_store_is_refused(tmp_path: Path, opener: Callable):
    (tmp_path / "README").write_text("mine")
    (tmp_path / "sub").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(sos.Error):
        opener(tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("cls", KINDS)
def test_an_empty_directory_becomes_a_store(tmp_path: Path, cls: type):
    with cls(tmp_path) as store:
        assert len(store) == 0
    assert (tmp_path / "sos.json").is_file()
    assert type(sos.open(tmp_path)) is cls
    sos.open(tmp_path).close()


@pytest.mark.parametrize("cls", KINDS)
def test_a_half_made_store_may_be_claimed(tmp_path: Path, cls: type):
    """Support files and a temp file, but no sos.json: an interrupted creation."""
    (tmp_path / ".gitignore").write_text(".sos-tmp-*\n")
    (tmp_path / ".sos-tmp-0123456789abcdef").write_bytes(b"{")
    with cls(tmp_path) as store:
        assert len(store) == 0
    os.unlink(tmp_path / ".sos-tmp-0123456789abcdef")


def test_parents_are_created(tmp_path: Path):
    with sos.Dict(tmp_path / "a" / "b" / "c") as db:
        db["k"] = 1
    assert sos.open(tmp_path / "a" / "b" / "c").close() is None


def test_open_never_creates(tmp_path: Path):
    with pytest.raises(sos.Error):
        sos.open(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(sos.Error):
        sos.open(tmp_path)  # empty: not a store either
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("opener", [sos.Dict, sos.List, sos.open])
def test_a_file_is_not_a_store(tmp_path: Path, opener: Callable):
    path = tmp_path / "file"
    path.write_bytes(b"data")
    with pytest.raises(sos.Error, match="file"):
        opener(path)
    with pytest.raises(sos.Error):
        opener(path / "below")
    assert path.read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["file"]


def test_damaged_or_newer_metadata(store_path: Path):
    sos.Dict(store_path).close()
    meta = store_path / "sos.json"
    meta.write_text('{"format": 99, "kind": "dict"}')
    with pytest.raises(sos.Error, match="newer"):
        sos.open(store_path)
    meta.write_text("{not json")
    with pytest.raises(sos.CorruptError):
        sos.Dict(store_path)
    assert meta.read_text() == "{not json"


# -- paths, repr, close ----------------------------------------------------------------


@pytest.mark.parametrize("cls", KINDS)
@pytest.mark.parametrize("wrap", [str, Path, CustomPath], ids=["str", "Path", "PathLike"])
def test_path_types(store_path: Path, cls: type, wrap: Callable[[Path], Any]):
    with cls(wrap(store_path)) as store:
        assert store.path == store_path
        assert isinstance(store.path, Path)
        assert cls.__name__ in repr(store) and str(store_path) in repr(store)
    assert "closed" in repr(store)
    with sos.open(wrap(store_path)) as again:
        assert type(again) is cls


def _dict_uses(db: Any) -> list[Callable[[], Any]]:
    return [
        lambda: db["k"],
        lambda: db.__setitem__("k", 1),
        lambda: db.__delitem__("k"),
        lambda: "k" in db,
        lambda: len(db),
        lambda: list(db),
        lambda: db.get("k"),
        lambda: db.pop("k", None),
        lambda: db.popitem(),
        lambda: db.setdefault("k", 1),
        lambda: db.update(a=1),
        lambda: db.clear(),
        lambda: list(db.items()),
        lambda: list(db.values()),
        lambda: db.__enter__(),
    ]


def _list_uses(lst: Any) -> list[Callable[[], Any]]:
    return [
        lambda: lst[0],
        lambda: lst[0:1],
        lambda: lst.__setitem__(0, 1),
        lambda: lst.__delitem__(0),
        lambda: len(lst),
        lambda: list(lst),
        lambda: 1 in lst,
        lambda: lst.append(1),
        lambda: lst.extend([1]),
        lambda: lst.insert(0, 1),
        lambda: lst.pop(),
        lambda: lst.remove(1),
        lambda: lst.index(1),
        lambda: lst.count(1),
        lambda: lst.reverse(),
        lambda: lst.sort(),
        lambda: lst.clear(),
        lambda: list(reversed(lst)),
        lambda: lst == [1],
        lambda: lst.__enter__(),
    ]


@pytest.mark.parametrize(("cls", "uses"), [(sos.Dict, _dict_uses), (sos.List, _list_uses)])
def test_a_closed_store_raises_on_every_use(store_path: Path, cls: type, uses: Callable):
    store = cls(store_path)
    if cls is sos.Dict:
        store["k"] = 1
    else:
        store.append(1)
    store.close()
    store.close()  # twice is fine
    assert store.closed
    before = snapshot(store_path)
    for use in uses(store):
        with pytest.raises(sos.ClosedError) as info:
            use()
        assert isinstance(info.value, ValueError) and isinstance(info.value, sos.Error)
        assert "closed" in str(info.value)
    assert snapshot(store_path) == before


def test_a_removed_store_is_not_recreated_by_a_write(store_path: Path):
    with sos.Dict(store_path) as db:
        shutil.rmtree(store_path)
        with pytest.raises(sos.Error, match="removed while open"):
            db["k"] = 1
        assert not store_path.exists()


# -- no lock file, foreign files ---------------------------------------------------------

SUPPORT = [".gitattributes", ".gitignore", ".rsync-filter", "sos.json"]


def test_no_lock_file_ever(store_path: Path, tmp_path: Path):
    with sos.Dict(store_path) as db:
        db["k"] = 1
        with db._storage.lock():  # held, as during any write
            assert sorted(os.listdir(store_path)) == sorted(
                [*SUPPORT, digest_path(store_path, "k").parent.name]
            )
    assert sorted(os.listdir(store_path)) == sorted(
        [*SUPPORT, digest_path(store_path, "k").parent.name]
    )
    with sos.List(tmp_path / "l") as lst:
        with lst._storage.lock():
            assert sorted(os.listdir(tmp_path / "l")) == sorted([*SUPPORT, "order.txt"])
        lst.append(1)


FOREIGN = [
    ".DS_Store",
    "README",
    "notes.json",
    ".sos-tmp-0123456789abcdef",
    "zz",  # not hex: not a fan-out directory
]


def _add_foreign_files(store: Path, inside: Path) -> None:
    for name in FOREIGN:
        (store / name).write_bytes(b"{not a document")
    (store / "ab").mkdir(exist_ok=True)  # an empty fan-out directory
    for name in [
        ".sos-tmp-fedcba9876543210",
        inside.name + ".swp",
        "." + inside.name + ".aB3xYz",  # rsync's temporary name
        inside.name + ".orig",
        inside.name.upper(),  # not lowercase hex
        "README",
    ]:
        (inside.parent / name).write_bytes(b"<<<<<<< HEAD\n")
    # a data name in the wrong fan-out directory
    wrong = store / ("00" if inside.parent.name != "00" else "01")
    wrong.mkdir(exist_ok=True)
    (wrong / inside.name).write_bytes(b"{}")


def test_foreign_files_are_ignored_by_a_dict(store_path: Path):
    with sos.Dict(store_path) as db:
        db.update(a=1, b=2)
        _add_foreign_files(store_path, digest_path(store_path, "a"))
        assert len(db) == 2
        assert sorted(db) == ["a", "b"]
        assert dict(db.items()) == {"a": 1, "b": 2}
        assert sorted(db.values()) == [1, 2]
        assert db == {"a": 1, "b": 2}
        db.clear()
        assert len(db) == 0
    with sos.open(store_path) as db:
        assert len(db) == 0
    _remove_fake_temp_files(store_path)


def test_foreign_files_are_ignored_by_a_list(store_path: Path):
    with sos.List(store_path) as lst:
        lst.extend(["a", "b"])
        first = digest_path(store_path, lst._order().id_at(0))
        _add_foreign_files(store_path, first)
        # an orphan item file (left by a crash) is no part of the list
        orphan = digest_path(store_path, "0123456789abcdef-0")
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(sos.format.encode_document("0123456789abcdef-0", "orphan"))
        assert len(lst) == 2
        assert lst == ["a", "b"]
        assert "orphan" not in lst
    _remove_fake_temp_files(store_path)


def _remove_fake_temp_files(store: Path) -> None:
    """Ours were planted by the test; the store_path fixture fails on any left."""
    for path in temp_files(store):
        os.unlink(path)


# -- reads reflect the disk ------------------------------------------------------------


def test_a_second_handle_sees_changes_at_once(store_path: Path):
    with sos.Dict(store_path) as a, sos.Dict(store_path) as b:
        a["k"] = 1
        assert b["k"] == 1 and "k" in b and len(b) == 1 and list(b) == ["k"]
        b["k"] = 2
        assert a["k"] == 2
        del b["k"]
        assert "k" not in a and len(a) == 0


def test_a_second_list_handle_sees_changes_at_once(store_path: Path):
    with sos.List(store_path) as a, sos.List(store_path) as b:
        a.append(1)
        assert len(b) == 1 and b[0] == 1
        b.append(2)
        assert a == [1, 2] and a[-1] == 2
        b[0] = "one"
        assert a[0] == "one"
        a.reverse()
        assert b == [2, "one"]
        b.append(3)  # b's own run continues after a reverse made by another handle
        assert a == [2, "one", 3]


_WRITER = textwrap.dedent(
    """
    import sys, sos
    kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with sos.open(path) as store:
        if kind == "dict":
            store[f"k{n}"] = n
        else:
            store.append(n)
    """
)


def _run_writer(kind: str, path: Path, n: int) -> None:
    subprocess.run([sys.executable, "-c", _WRITER, kind, str(path), str(n)], check=True)


def test_another_process_is_seen_without_reopening(store_path: Path, tmp_path: Path):
    list_path = tmp_path / "l"
    with sos.Dict(store_path) as db, sos.List(list_path) as lst:
        lst.append("mine")
        assert len(lst) == 1  # the manifest is now cached
        for n in range(3):
            _run_writer("dict", store_path, n)
            _run_writer("list", list_path, n)
            assert db[f"k{n}"] == n and len(db) == n + 1
            assert len(lst) == n + 2 and lst[-1] == n
        assert lst == ["mine", 0, 1, 2]


def test_a_hand_edit_is_seen(store_path: Path):
    with sos.Dict(store_path) as db:
        db["k"] = {"v": 1}
        path = digest_path(store_path, "k")
        path.write_text(path.read_text().replace('"v": 1', '"v": 2'))
        assert db["k"] == {"v": 2}


def test_files_copied_in_are_seen(store_path: Path, tmp_path: Path):
    other = tmp_path / "other"
    with sos.Dict(other) as o:
        o.update(x=1, y=2)
    with sos.Dict(store_path) as db:
        db["a"] = 0
        assert len(db) == 1
        shutil.copytree(other, store_path, dirs_exist_ok=True)
        assert db == {"a": 0, "x": 1, "y": 2}


@pytest.mark.parametrize("age", [0.0, 0.25], ids=["racy", "settled"])
def test_a_manifest_rewritten_in_place_with_the_same_size_is_seen(store_path: Path, age: float):
    """Same inode, same size: the stat cache must still not give a stale order,
    whether the cached manifest was young (racy) or old enough to be trusted."""
    with sos.List(store_path) as lst:
        lst.extend([1, 2, 3])
        time.sleep(age)
        assert lst == [1, 2, 3]
        order = store_path / "order.txt"
        data = order.read_bytes()
        # rewrite in place with the same size: a reversed run "0-2" -> "2-0"
        lines = data.splitlines(keepends=True)
        prefix, numbers = lines[1].decode().split()
        first, last = numbers.split("-")
        order.write_bytes(lines[0] + f"{prefix} {last}-{first}\n".encode())
        assert len(order.read_bytes()) == len(data)
        assert lst == [3, 2, 1]


def _git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_SYSTEM=os.devnull,
    )
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_git_checkout_of_an_older_commit_is_seen(tmp_path: Path):
    _git(tmp_path, "init", "-q", "-b", "main")
    with sos.Dict(tmp_path / "d") as db, sos.List(tmp_path / "l") as lst:
        db.update(a=1, b=2)
        lst.extend(["x", "y"])
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "commit", "-q", "-m", "one")
        assert _git(tmp_path, "status", "--porcelain") == ""  # nothing left to commit
        db["a"] = "changed"
        del db["b"]
        db["c"] = 3
        lst.append("z")
        lst[0] = "X"
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "commit", "-q", "-m", "two")
        assert (db == {"a": "changed", "c": 3}) and lst == ["X", "y", "z"]
        _git(tmp_path, "checkout", "-q", "HEAD~1")
        assert db == {"a": 1, "b": 2}
        assert len(db) == 2 and "c" not in db
        assert lst == ["x", "y"] and len(lst) == 2 and lst[0] == "x"
        _git(tmp_path, "checkout", "-q", "main")
        assert db == {"a": "changed", "c": 3}
        assert lst == ["X", "y", "z"]


@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
# -I: both manifests have the same size and may have the same mtime second,
# which rsync's quick check would take for "unchanged" and skip.
@pytest.mark.parametrize("flags", [["-aI", "--delete"], ["-aI", "--delete", "--inplace"]])
def test_rsync_into_an_open_store_is_seen(tmp_path: Path, flags: list[str]):
    """rsync -a keeps the source's mtimes (and --inplace the inode): the List's
    manifest cache must still notice the new order."""
    src_d, src_l = tmp_path / "src_d", tmp_path / "src_l"
    with sos.Dict(src_d) as d, sos.List(src_l) as lst:
        d.update(a=1, b=2)
        lst.extend(["p", "q", "r"])
    with sos.Dict(tmp_path / "d") as db, sos.List(tmp_path / "l") as mine:
        db["mine"] = 0
        mine.extend(["x", "y", "z"])  # the same manifest size as the source's
        time.sleep(0.15)  # past the racy window: the cache is trusted by stat
        assert mine == ["x", "y", "z"] and len(db) == 1
        for src, dst in [(src_d, tmp_path / "d"), (src_l, tmp_path / "l")]:
            subprocess.run(["rsync", *flags, f"{src}/", f"{dst}/"], check=True)
        assert db == {"a": 1, "b": 2}
        assert len(mine) == 3 and mine[0] == "p"
        assert mine == ["p", "q", "r"]
        mine.append("s")
        assert mine == ["p", "q", "r", "s"]


# -- opening does not scan ------------------------------------------------------------


@pytest.mark.parametrize("cls", KINDS)
def test_opening_an_existing_store_lists_no_directory(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type
):
    with cls(store_path) as store:
        if cls is sos.Dict:
            store.update({f"k{n}": n for n in range(50)})
        else:
            store.extend(range(50))

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("opening a store must not list a directory")

    monkeypatch.setattr(os, "listdir", refuse)
    monkeypatch.setattr(os, "scandir", refuse)
    monkeypatch.setattr(os, "walk", refuse)
    cls(store_path).close()
    sos.open(store_path).close()
    with pytest.raises(AssertionError):
        os.listdir(store_path)  # the patch is live

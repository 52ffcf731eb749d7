"""``sos copy`` and ``sos diff`` between a local directory and ``memory://``.

In-process (``sos.cli.main``, see ``cli_helpers.sos``), except the copy
killed with SIGKILL halfway, which is a real process. The same commands
against the real S3 server are in tests/s3/test_s3_copy_diff.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import SOS, sos

import sos as sos_api
from sos.storage import registry
from sos.storage.memory import MemoryStorage, forget
from sos.storage.registry import open_storage


def files(store: str | Path) -> dict[str, bytes]:
    """Every file of a store but its reserved ``.sos/``, name -> bytes."""
    storage = open_storage(str(store))
    try:
        return {n: storage.read(n) for n in storage.walk() if not n.startswith(".sos/")}
    finally:
        storage.close()


def everything(path: Path) -> dict[str, bytes]:
    """Every file under a local directory, ``.sos/`` included: what "nothing
    written" compares."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def memory() -> Iterator[str]:
    url = f"memory://copy-{uuid.uuid4().hex}"
    yield url
    forget(url)


KEYS = {
    "ada": {"born": 1815, "langs": ["en", "fr"]},
    "grace hopper": [1906, None, True, 1.5],
    "ключ": "значение",
    '"quoted"': {"nested": {"deep": [[]]}},
    "n": 12345678901234567890,
}


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    with sos_api.Dict(path) as db:
        db.update(KEYS)
    return path


@pytest.fixture
def todo(tmp_path: Path) -> Path:
    """A List whose order is not the order its items were written in."""
    path = tmp_path / "todo"
    with sos_api.List(path) as lst:
        lst.extend(["milk", "eggs", "bread", {"buy": "tea"}])
        lst.insert(0, "first")
        del lst[2]
        lst.append([1, 2])
    return path


# -- copy ------------------------------------------------------------------------------


def test_copy_a_dict_to_memory_and_back_keeps_every_byte(users: Path, memory: str, tmp_path: Path):
    done = sos("copy", users, memory)
    assert done.stdout == ""
    assert done.stderr == (
        f"sos: copied 5 keys from {users} to {memory} (9 files written and verified)\n"
    )
    assert files(memory) == files(users)
    with sos_api.open(memory) as db:
        assert dict(db.items()) == KEYS
    back = tmp_path / "back"
    sos("copy", memory, back)
    assert files(back) == files(users)
    with sos_api.open(back) as db:
        assert dict(db.items()) == KEYS
    assert json.loads((back / ".sos" / "copy.json").read_text()) == {
        "sos-copy": 1,
        "source": memory,
        "finished": True,
    }


def test_copy_a_list_keeps_its_order(todo: Path, memory: str, tmp_path: Path):
    with sos_api.List(todo) as lst:
        expected = list(lst)
    assert expected == ["first", "milk", "bread", {"buy": "tea"}, [1, 2]]
    sos("copy", todo, memory)
    back = tmp_path / "back"
    sos("copy", memory, back)
    for store in (memory, back):
        with sos_api.open(store) as lst:
            assert isinstance(lst, sos_api.List)
            assert list(lst) == expected
    assert files(back) == files(todo)
    assert (back / "order.txt").read_bytes() == (todo / "order.txt").read_bytes()


def test_schema_json_comes_along_and_other_files_do_not(users: Path, memory: str):
    (users / "schema.json").write_text('{"type": "object"}\n')
    (users / "notes.txt").write_text("not the store's\n")
    (users / "ab").mkdir(exist_ok=True)
    (users / "ab" / ".sos-tmp-cut-short").write_text("{")
    sos("copy", users, memory)
    copied = files(memory)
    assert copied["schema.json"] == b'{"type": "object"}\n'
    assert "notes.txt" not in copied and "ab/.sos-tmp-cut-short" not in copied
    assert copied == {n: d for n, d in files(users).items() if n in copied}


def test_copy_to_a_finished_copy_is_refused_and_changes_nothing(users: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    sos("copy", users, copy)
    before = everything(copy)
    again = sos("copy", users, copy, expect=1)
    assert again.stderr == (
        f"sos copy: {copy}: is already a copy of {users}; --force copies again "
        "(only what differs)\n"
    )
    assert everything(copy) == before


def unfinish(copy: Path) -> None:
    """Make a finished copy look like one cut short (sos.json not yet written)."""
    record = json.loads((copy / ".sos" / "copy.json").read_text())
    record["finished"] = False
    (copy / ".sos" / "copy.json").write_text(json.dumps(record))
    (copy / "sos.json").unlink()


def test_a_rerun_resumes_writing_only_what_is_missing_or_different(users: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    sos("copy", users, copy)
    unfinish(copy)
    with pytest.raises(sos_api.Error, match="not a sos store"):
        sos_api.open(copy)  # cut short, it is no store at all
    docs = sorted(n for n in files(copy) if n.endswith(".json") and "/" in n)
    (copy / docs[0]).unlink()
    (copy / docs[1]).unlink()
    (copy / docs[2]).write_bytes(b'{"key": "ada", "value": "changed"}\n')
    with sos_api.Dict(tmp_path / "other") as other:
        other["stranger"] = 1
    (stranger,) = [n for n in files(tmp_path / "other") if n.endswith(".json") and "/" in n]
    (copy / stranger).parent.mkdir(exist_ok=True)
    (copy / stranger).write_bytes(files(tmp_path / "other")[stranger])
    (copy / docs[3]).with_name(".sos-tmp-cut-short").write_bytes(b'{"key": "a')
    untouched = copy / docs[3]
    inode = untouched.stat().st_ino

    done = sos("copy", users, copy)
    # two missing + one changed + sos.json; the stranger and the temp file removed
    assert "(4 files written and verified, 2 removed)" in done.stderr
    assert files(copy) == files(users)
    assert untouched.stat().st_ino == inode  # equal bytes are not written again
    assert sos("diff", users, copy).stdout == ""


def test_force_makes_another_store_a_copy_and_leaves_other_files(users: Path, tmp_path: Path):
    other = tmp_path / "other"
    with sos_api.Dict(other) as db:
        db.update({"ada": "someone else", "zed": 1})
    (other / "notes.txt").write_text("mine\n")
    before = everything(other)
    refused = sos("copy", users, other, expect=1)
    assert refused.stderr == (
        f"sos copy: {other}: is not empty (it holds a sos store); --force to make it a "
        f"copy of {users}\n"
    )
    assert everything(other) == before
    sos("copy", "--force", users, other)
    assert sos("diff", users, other).stdout == ""
    assert (other / "notes.txt").read_text() == "mine\n"
    assert set(files(other)) == set(files(users)) | {"notes.txt"}


def test_force_drops_a_transaction_record_of_the_store_it_replaces(users: Path, tmp_path: Path):
    other = tmp_path / "other"
    with sos_api.Dict(other) as db:
        db["zed"] = 1
    (other / ".sos").mkdir(exist_ok=True)
    (other / ".sos" / "txn.json").write_text("not a record of this copy\n")
    sos("copy", "--force", users, other)
    assert not (other / ".sos" / "txn.json").exists()
    assert sos("diff", users, other).stdout == ""


def test_force_over_a_list_with_a_dict(todo: Path, users: Path):
    sos("copy", "--force", users, todo)
    assert not (todo / "order.txt").exists()
    with sos_api.open(todo) as db:
        assert dict(db.items()) == KEYS


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_a_copy_killed_halfway_then_rerun_ends_equal(kind: str, tmp_path: Path):
    source = tmp_path / "source"
    items = [{"n": i, "pad": "x" * 40} for i in range(2000)]
    data = {f"k{i}": v for i, v in enumerate(items)} if kind == "dict" else items
    (tmp_path / "in.json").write_text(json.dumps(data))
    sos("load", source, tmp_path / "in.json")
    target = tmp_path / "target"
    proc = subprocess.Popen(
        [SOS, "copy", str(source), str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not any(target.glob("??/*.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the copy wrote no document in 60 s"
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the copy ended before it was killed: {err}"
    copied = len(list(target.glob("??/*.json")))
    assert 0 < copied < 2000
    assert not (target / "sos.json").exists()  # cut short: not a store

    resumed = sos("copy", source, target)
    assert "copied 2,000" in resumed.stderr
    assert sos("diff", source, target).stdout == ""
    assert files(target) == files(source)


class BadDisk(MemoryStorage):
    """A storage that writes one document with a byte changed."""

    def write(self, name, data):  # write_many writes each through this
        super().write(name, data.replace(b"1815", b"1816"))


def test_the_copy_reads_back_what_it_wrote(users: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(registry._REGISTRY, "baddisk", BadDisk)
    url = f"baddisk://copy-{uuid.uuid4().hex}"
    try:
        failed = sos("copy", users, url, expect=1)
        assert "reads back other bytes than were written" in failed.stderr
        assert failed.stderr.startswith(f"sos copy: {url}/")
        with pytest.raises(sos_api.Error, match="not a sos store"):
            sos_api.open(url)
    finally:
        forget(url)


class CtrlC(MemoryStorage):
    """A storage where Ctrl-C comes during the third document written."""

    armed = True
    writes = 0

    def write(self, name, data):
        if CtrlC.armed and "/" in name and not name.startswith(".sos/"):
            CtrlC.writes += 1
            if CtrlC.writes == 3:
                raise KeyboardInterrupt
        super().write(name, data)


def test_ctrl_c_says_how_to_resume_and_the_rerun_does(users: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(registry._REGISTRY, "ctrlc", CtrlC)
    monkeypatch.setattr(CtrlC, "armed", True)
    monkeypatch.setattr(CtrlC, "writes", 0)
    url = f"ctrlc://copy-{uuid.uuid4().hex}"
    try:
        proc = sos("copy", users, url, expect=130)
        assert proc.stderr == (
            f"\nsos copy: interrupted; run the same command again to finish the copy to {url}\n"
        )
        with pytest.raises(sos_api.Error, match="not a sos store"):
            sos_api.open(url)
        monkeypatch.setattr(CtrlC, "armed", False)
        done = sos("copy", users, url)
        assert "(7 files written and verified)" in done.stderr  # 3 documents + 3 support + sos.json
        assert files(url) == files(users)
    finally:
        forget(url)


# -- copy: bad input -----------------------------------------------------------------


def make_dir_with_file(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("not a store\n")
    return path


def test_a_missing_source_is_refused(tmp_path: Path):
    proc = sos("copy", tmp_path / "nope", tmp_path / "dst", expect=1)
    assert proc.stderr == f"sos copy: {tmp_path / 'nope'}: not a sos store (no sos.json)\n"
    assert not (tmp_path / "dst").exists()


def test_a_source_that_is_not_a_store_is_refused(tmp_path: Path):
    src = make_dir_with_file(tmp_path / "src")
    proc = sos("copy", src, tmp_path / "dst", expect=1)
    assert proc.stderr == f"sos copy: {src}: not a sos store (no sos.json)\n"
    (tmp_path / "file").write_text("x")
    proc = sos("copy", tmp_path / "file", tmp_path / "dst", expect=1)
    assert proc.stderr == f"sos copy: {tmp_path / 'file'}: is a file, not a store directory\n"
    assert not (tmp_path / "dst").exists()


def test_a_destination_holding_other_files_is_refused(users: Path, tmp_path: Path):
    dst = make_dir_with_file(tmp_path / "dst")
    before = everything(dst)
    proc = sos("copy", users, dst, expect=1)
    assert proc.stderr == (
        f"sos copy: {dst}: is not empty (it holds 1 entries); --force to make it a copy "
        f"of {users}\n"
    )
    assert everything(dst) == before


def test_a_destination_that_is_a_file_is_refused(users: Path, tmp_path: Path):
    (tmp_path / "file").write_text("mine\n")
    for dst in (tmp_path / "file", tmp_path / "file" / "sub"):
        proc = sos("copy", users, dst, expect=1)
        assert proc.stderr == (f"sos copy: {dst}: not a directory (it or a parent is a file)\n")
    assert (tmp_path / "file").read_text() == "mine\n"


def test_another_stores_unfinished_copy_is_refused(users: Path, todo: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    sos("copy", todo, dst)
    unfinish(dst)
    before = everything(dst)
    proc = sos("copy", users, dst, expect=1)
    assert proc.stderr == (
        f"sos copy: {dst}: is an unfinished copy of {todo}, not of {users}; --force to "
        "copy over it\n"
    )
    assert everything(dst) == before


def test_a_damaged_copy_record_is_refused(users: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    (dst / ".sos").mkdir(parents=True)
    (dst / ".sos" / "copy.json").write_text("{half")
    before = everything(dst)
    proc = sos("copy", users, dst, expect=1)
    assert proc.stderr == (
        f"sos copy: {dst}/.sos/copy.json: not a copy record; --force to copy over it\n"
    )
    assert everything(dst) == before


def test_the_same_store_as_both_is_a_usage_error(users: Path, tmp_path: Path, memory: str):
    before = everything(users)
    spelled = tmp_path / "." / "users" / ".." / "users"
    proc = sos("copy", users, spelled, expect=2)
    assert proc.stderr == f"sos copy: {users} and {spelled} are the same store\n"
    inside = users / "backup"
    proc = sos("copy", users, inside, expect=2)
    assert proc.stderr == f"sos copy: {inside} is inside {users}: copy a store out of itself\n"
    assert everything(users) == before
    sos("copy", users, memory)
    proc = sos("copy", memory, memory, expect=2)
    assert proc.stderr == f"sos copy: {memory} and {memory} are the same store\n"


# -- diff ------------------------------------------------------------------------------


def test_diff_of_equal_stores_on_two_storages_says_nothing(users: Path, memory: str):
    with sos_api.Dict(memory) as db:
        db.update(reversed(list(KEYS.items())))  # written in another order
    proc = sos("diff", users, memory)
    assert (proc.stdout, proc.stderr) == ("", "")
    assert sos("diff", "--stat", users, memory).stdout == (
        f"0 only in {users}, 0 only in {memory}, 0 changed, 5 the same (keys)\n"
    )


def test_diff_names_keys_only_in_one_and_shows_changed_values(users: Path, tmp_path: Path):
    other = tmp_path / "other"
    with sos_api.Dict(other) as db:
        db.update(KEYS)
        del db["n"]
        db["ada"] = {"born": 1815, "langs": ["en", "de"]}
        db["new\nline"] = 0
    proc = sos("diff", users, other, expect=1)
    assert proc.stdout == (
        f"only in {users}: n\n"
        f'only in {other}: "new\\nline"\n'
        f"--- {users} ada\n"
        f"+++ {other} ada\n"
        "@@ -2,6 +2,6 @@\n"
        '   "born": 1815,\n'
        '   "langs": [\n'
        '     "en",\n'
        '-    "fr"\n'
        '+    "de"\n'
        "   ]\n"
        " }\n"
    )
    assert proc.stderr == ""
    stat = sos("diff", "--stat", users, other, expect=1)
    assert stat.stdout == f"1 only in {users}, 1 only in {other}, 1 changed, 3 the same (keys)\n"
    quiet = sos("diff", "-q", users, other, expect=1)
    assert (quiet.stdout, quiet.stderr) == ("", "")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (1, 1.0, False),
        (True, 1, False),
        (0, False, False),
        ({"x": 1, "y": 2}, {"y": 2, "x": 1}, True),
        ("é", "é", True),
        ([1, [2]], [1, [2]], True),
    ],
)
def test_diff_compares_values_as_json(a, b, same, tmp_path: Path, memory: str):
    with sos_api.Dict(tmp_path / "a") as db:
        db["k"] = a
    with sos_api.Dict(memory) as db:
        db["k"] = b
    proc = sos("diff", "--stat", tmp_path / "a", memory, expect=0 if same else 1)
    assert proc.stdout.endswith(f"{0 if same else 1} changed, {1 if same else 0} the same (keys)\n")


def test_diff_of_lists_by_index(todo: Path, memory: str):
    with sos_api.List(memory) as lst:
        lst.extend(["first", "milk", "cake"])
    proc = sos("diff", todo, memory, expect=1)
    assert proc.stdout == (
        f"only in {todo}: 3\n"
        f"only in {todo}: 4\n"
        f"--- {todo} 2\n"
        f"+++ {memory} 2\n"
        "@@ -1 +1 @@\n"
        '-"bread"\n'
        '+"cake"\n'
    )
    assert sos("diff", "--stat", memory, todo, expect=1).stdout == (
        f"0 only in {memory}, 2 only in {todo}, 1 changed, 2 the same (items)\n"
    )


def test_diff_trouble_exits_2(users: Path, todo: Path, tmp_path: Path):
    proc = sos("diff", users, todo, expect=2)
    assert proc.stderr == (
        f"sos diff: {users} is a dict store and {todo} a list store: sos diff compares "
        "two stores of one kind\n"
    )
    proc = sos("diff", users, tmp_path / "nope", expect=2)
    assert proc.stderr == f"sos diff: {tmp_path / 'nope'}: not a sos store (no sos.json)\n"
    damaged = tmp_path / "damaged"
    sos("copy", users, damaged)
    doc = next(p for p in damaged.glob("??/*.json"))
    doc.write_text('{"key": ')
    proc = sos("diff", users, damaged, expect=2)
    assert proc.stderr.startswith("sos diff: ") and str(doc) in proc.stderr
    assert proc.stdout == ""


def test_diff_help_says_its_exit_status_differs():
    text = sos("diff", "--help").stdout
    assert "0 the same, 1 different, 2 trouble" in " ".join(text.split())
    assert "where 1 is an error" in " ".join(text.split())


def test_both_commands_are_listed_with_examples():
    top = sos("--help").stdout
    for name in ("copy", "diff"):
        assert name in top
        proc = sos(name, "--help")
        assert "examples:" in proc.stdout and f"sos {name} " in proc.stdout

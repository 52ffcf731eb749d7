"""The atomic file layer: steps in the right order, no temp file left, ordinary modes."""

from __future__ import annotations

import concurrent.futures
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import recording
from conftest import digest_path, snapshot, temp_files
from recording import Recording

import sos
from sos.storage import atomic as _atomic
from sos.storage.fileops import is_temp_name

pytestmark = pytest.mark.disk  # the durable write itself: on the real disk


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recording:
    rec = Recording()
    monkeypatch.setattr(_atomic, "ops", rec)
    return rec


def test_a_failing_rollback_does_not_hide_the_error_that_caused_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """As atomicwrites did: the write's own error is the one raised, not the
    failed removal of its temp file, on both replace paths."""

    class FailingRollback(Recording):
        def unlink(self, path: str) -> None:
            raise OSError(5, "rollback failed")

    for write in (
        lambda: _atomic.write_file(str(tmp_path / "f"), b"new"),
        lambda: _atomic.replace_file(str(tmp_path / "g"), b"new", None),
    ):
        monkeypatch.setattr(_atomic, "ops", FailingRollback(fail="fsync", nth=1))
        with pytest.raises(OSError, match="injected"):
            write()


def test_a_failed_close_before_a_windows_rename_is_raised_once_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Windows closes the temp file before the rename (replace_file, the List's
    manifest). A failed close frees the descriptor all the same: it must not be
    closed again (its number may be another file's by then), and the close's
    own error is raised, the temp file removed, the old bytes kept."""
    monkeypatch.setattr(_atomic, "_WINDOWS", True)
    rec = Recording(fail="close")
    monkeypatch.setattr(_atomic, "ops", rec)
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="injected") as info:
        _atomic.replace_file(str(target), b"new", None)
    assert info.value.filename == str(target)
    assert rec.count("close") == 1
    assert os.listdir(tmp_path) == ["f"] and target.read_bytes() == b"old"


@pytest.mark.parametrize(
    "write",
    [
        lambda path: _atomic.write_file(path, b"new"),
        lambda path: _atomic.replace_file(path, b"new", None),
        lambda path: _atomic.stage_file(path, b"new"),
    ],
    ids=["write_file", "replace_file", "stage_file"],
)
def test_a_failed_close_after_a_failed_write_does_not_hide_the_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Any
):
    """The write fails (a full disk), then so does the cleanup's close: the
    error raised is the write's, the temp file is gone, the old bytes stay."""
    monkeypatch.setattr(_atomic, "ops", Recording(fail={"write", "close"}, nth=None))
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="injected failure in write"):
        write(str(target))
    assert os.listdir(tmp_path) == ["f"] and target.read_bytes() == b"old"


def test_write_steps_in_order(tmp_path: Path, recorder: Recording):
    target = tmp_path / "f.json"
    _atomic.write_file(str(target), b"new")
    assert recorder.names() == ["open_temp", "write", "fsync", "close", "rename", "fsync_dir"]
    assert recorder.steps[4] == ("rename", str(target))
    assert recorder.steps[5] == ("fsync_dir", str(tmp_path))
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.json"]


def test_a_directory_sync_is_one_step(tmp_path: Path):
    """FileOps.fsync_dir does not go through self.fsync: a subclass counting
    file fsyncs does not count it twice."""
    rec = Recording()
    rec.fsync_dir(str(tmp_path))
    assert rec.steps == [("fsync_dir", str(tmp_path))]


def test_temp_file_has_the_reserved_name_in_the_target_directory(
    tmp_path: Path, recorder: Recording
):
    _atomic.write_file(str(tmp_path / "x"), b"1")
    [temp] = [call[1] for call in recorder.calls if call[0] == "rename"]
    assert os.path.dirname(temp) == str(tmp_path)
    name = os.path.basename(temp)
    assert name.startswith(".sos-tmp-") and is_temp_name(name)
    assert len(name) == len(".sos-tmp-") + 16


@pytest.mark.parametrize(
    ("step", "at"), [("write", 1), ("fsync", 1), ("close", 1), ("rename", 1), ("chmod", 1)]
)
def test_injected_failure_leaves_old_bytes_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, at: int
):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    target.chmod(0o640)  # so that a chmod step happens
    monkeypatch.setattr(_atomic, "ops", Recording(fail=step, nth=at))
    with pytest.raises(OSError, match="injected"):
        _atomic.write_file(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_a_failure_at_each_step_in_turn_leaves_no_temp_file(tmp_path: Path):
    """Step k raises, for every k of a replace: the old bytes until the
    rename, the new ones after it, never a temp file."""
    target = tmp_path / "f"
    target.write_bytes(b"old")
    target.chmod(0o640)  # so that a chmod step happens
    clean = Recording()
    with recording.installed(clean):
        _atomic.write_file(str(target), b"new")
    names = clean.names()
    assert names == ["open_temp", "chmod", "write", "fsync", "close", "rename", "fsync_dir"]
    for k, name in enumerate(names):
        target.write_bytes(b"old")
        with recording.installed(Recording(raise_at=k)), pytest.raises(OSError, match=name):
            _atomic.write_file(str(target), b"new")
        assert target.read_bytes() == (b"new" if k > names.index("rename") else b"old"), name
        assert os.listdir(tmp_path) == ["f"], name


@pytest.mark.parametrize("step", ["fsync", "rename", "open_temp"])
def test_store_write_failure_keeps_old_value_and_leaves_no_temp(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
):
    with sos.Dict(store_path) as db:
        db["k"] = "old"
        before = snapshot(store_path)
        monkeypatch.setattr(_atomic, "ops", Recording(fail=step))
        with pytest.raises(OSError):
            db["k"] = "new"
        # Every such step fails: which of update's writer threads gets to its
        # step first is up to the scheduler.
        monkeypatch.setattr(_atomic, "ops", Recording(fail=step, nth=None))
        with pytest.raises(OSError):
            db.update({"k": "new", "a": 1, "b": 2})
        monkeypatch.undo()
        assert temp_files(store_path) == []
        assert db["k"] == "old"
        after = snapshot(store_path)
        # the failed update left k's file byte for byte as it was, and no temp file
        assert (
            after[os.path.relpath(digest_path(store_path, "k"), store_path)]
            == before[os.path.relpath(digest_path(store_path, "k"), store_path)]
        )


@pytest.mark.parametrize("step", ["fsync", "rename"])
def test_list_write_failure_keeps_old_sequence_and_leaves_no_temp(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
):
    with sos.List(store_path) as lst:
        lst.extend([1, 2, 3])
        for fail_at in (1, 2):  # the item file's step, then the manifest's
            monkeypatch.setattr(_atomic, "ops", Recording(fail=step, nth=fail_at))
            with pytest.raises(OSError):
                lst.append(4)
            monkeypatch.undo()
            assert lst == [1, 2, 3]
            assert temp_files(store_path) == []


def test_remove_files_unlinks_then_syncs_each_directory_once(tmp_path: Path, recorder: Recording):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [str(tmp_path / d / n) for d in "ab" for n in "xyz"]
    for p in paths:
        Path(p).write_bytes(b"")
    removed = _atomic.remove_files([*paths, str(tmp_path / "a" / "missing")])
    assert removed == paths
    assert recorder.names() == ["unlink"] * 7 + ["fsync_dir"] * 2
    assert {arg for name, arg in recorder.steps if name == "fsync_dir"} == {
        str(tmp_path / "a"),
        str(tmp_path / "b"),
    }
    assert os.listdir(tmp_path / "a") == os.listdir(tmp_path / "b") == []


def test_dict_delete_syncs_the_directory(store_path: Path, recorder: Recording):
    with sos.Dict(store_path) as db:
        db["k"] = 1
        recorder.steps.clear()
        del db["k"]
        assert recorder.steps == [
            ("unlink", str(digest_path(store_path, "k"))),
            ("fsync_dir", str(digest_path(store_path, "k").parent)),
        ]


def test_write_files_group_commit(tmp_path: Path, recorder: Recording):
    entries = [(str(tmp_path / f"f{n}"), f"{n}".encode()) for n in range(20)]
    _atomic.write_files(entries)
    names = recorder.names()
    assert names.count("rename") == 20
    assert names.count("fsync") == 20
    assert names.count("fsync_dir") == 1  # one directory, synced once, last
    assert names[-1] == "fsync_dir"
    for path, data in entries:
        assert Path(path).read_bytes() == data
    assert temp_files(tmp_path) == []


class _Pools:
    """Counts the thread pools the group commit makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made = 0
        real = concurrent.futures.ThreadPoolExecutor  # atomic.py imports it when it pools

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.made += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", counted)


@pytest.mark.parametrize("threshold, pools", [(60.0, 0), (0.0, 1)], ids=["quick", "slow"])
def test_group_commit_uses_threads_only_when_a_write_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: float, pools: int
):
    """The first group commit under a directory writes its first file alone
    and timed: the rest go to a pool of threads only when it took long
    enough for fsyncs to be worth issuing together (``quick``: as on tmpfs;
    ``slow``: as on a disk), and later ones there make the same choice
    without timing. Either way every file is written and its directory
    synced once."""
    monkeypatch.setattr(_atomic, "PARALLEL_FROM_SECONDS", threshold)
    monkeypatch.setattr(_atomic, "_pooled", {})
    counter = _Pools(monkeypatch)
    entries = [(str(tmp_path / "d" / f"f{n}"), f"{n}".encode()) for n in range(12)]
    (tmp_path / "d").mkdir()
    _atomic.write_files(entries)
    _atomic.sync_files([p for p, _ in entries])
    assert counter.made == 2 * pools
    # The choice is remembered for the directory: no first file timed alone again.
    monkeypatch.setattr(_atomic, "PARALLEL_FROM_SECONDS", 60.0 - threshold)
    _atomic.write_files(entries)
    assert counter.made == 3 * pools
    for path, data in entries:
        assert Path(path).read_bytes() == data
    assert temp_files(tmp_path) == []


def test_new_fanout_directory_is_made_durable_before_the_file(tmp_path: Path, recorder: Recording):
    store = tmp_path / "s"
    store.mkdir()
    target = store / "ab" / "f.json"
    _atomic.write_file(str(target), b"x")
    names = recorder.names()
    assert names.index("mkdir") < names.index("rename")
    assert ("fsync_dir", str(store)) in recorder.steps
    assert recorder.steps.index(("fsync_dir", str(store))) < names.index("rename")


def test_write_file_does_not_recreate_a_removed_store(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        _atomic.write_file(str(tmp_path / "gone" / "ab" / "f.json"), b"x")
    assert os.listdir(tmp_path) == []


def test_make_dirs_when_another_thread_makes_the_directory_between_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The race a group commit hits: a sibling thread's mkdir lands between
    make_dirs' isdir() and lexists() checks. That is success, not ENOTDIR."""
    target = str(tmp_path / "ab")
    real_isdir = os.path.isdir
    raced = []

    def isdir(path: Any) -> bool:
        result = real_isdir(path)
        if os.fspath(path) == target and not raced:
            raced.append(True)
            os.mkdir(target)  # the other thread wins just now
        return result

    monkeypatch.setattr(_atomic.os.path, "isdir", isdir)
    _atomic.make_dirs(target)
    monkeypatch.undo()
    assert raced and os.path.isdir(target)


def test_make_dirs_refuses_a_file_in_the_way(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        _atomic.make_dirs(str(tmp_path / "f" / "sub"))


def test_group_commit_into_one_new_fanout_directory_many_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Eight threads all find the fan-out directory missing at once."""
    # The pool for every file, even on tmpfs (no first file made alone, which
    # would make the directory before the race).
    monkeypatch.setattr(_atomic, "_pooled", {str(tmp_path / f"s{r}"): True for r in range(15)})
    counter = _Pools(monkeypatch)
    for round_ in range(15):
        store = tmp_path / f"s{round_}"
        store.mkdir()
        entries = [(str(store / "ab" / f"{n}.json"), b"x") for n in range(16)]
        _atomic.write_files(entries)
        assert sorted(os.listdir(store / "ab")) == sorted(f"{n}.json" for n in range(16))
    assert counter.made == 15  # every round in the pool


# -- permissions ----------------------------------------------------------------------

_UMASK_SCRIPT = textwrap.dedent(
    """
    import os, stat, sys
    os.umask(int(sys.argv[2], 8))
    import sos
    root = sys.argv[1]
    db = sos.Dict(os.path.join(root, "d"))
    db["k"] = 1
    db["k"] = 2
    lst = sos.List(os.path.join(root, "l"))
    lst.append(1)
    db.close(); lst.close()
    modes = set()
    for base, dirs, files in os.walk(root):
        for name in files:
            modes.add(("file", oct(stat.S_IMODE(os.stat(os.path.join(base, name)).st_mode))))
        for name in dirs:
            modes.add(("dir", oct(stat.S_IMODE(os.stat(os.path.join(base, name)).st_mode))))
    print(sorted(modes))
    """
)


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"),
    [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)],
)
def test_files_get_0666_minus_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int):
    result = subprocess.run(
        [sys.executable, "-c", _UMASK_SCRIPT, str(tmp_path), oct(umask)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == str(sorted({("file", oct(file_mode)), ("dir", oct(dir_mode))}))


def test_a_replaced_file_keeps_its_mode(store_path: Path):
    with sos.Dict(store_path) as db:
        db["k"] = 1
        path = digest_path(store_path, "k")
        path.chmod(0o600)
        db["k"] = 2
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(0o640)
        db.update({"k": 3})
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert db["k"] == 3


def test_a_replaced_file_keeps_its_mode_when_the_umask_changed_after_import(tmp_path: Path):
    """A daemon sets its umask after importing sos: replacing a 0644 file must
    not turn it into 0600 (nor a new file ignore the new umask)."""
    script = textwrap.dedent(
        """
        import os, stat, sys
        os.umask(0o022)
        import sos
        db = sos.Dict(sys.argv[1])
        db["k"] = 1
        os.umask(0o077)
        db["k"] = 2
        db["new"] = 3
        mode = lambda key: oct(stat.S_IMODE(os.stat(db.path_of(key)).st_mode))
        print(mode("k"), mode("new"))
        db.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["0o644", "0o600"]


def test_a_forked_child_draws_its_own_temp_names():
    """Temp names are a per-process token and a counter (no getrandom per
    write): a forked child must not make its parent's names."""
    from sos.storage import fileops

    parent = fileops.temp_name()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, fileops.temp_name().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    token = len(fileops.TEMP_PREFIX) + 8
    assert len(child) == len(parent) == token + 8
    assert child[:token] != parent[:token]

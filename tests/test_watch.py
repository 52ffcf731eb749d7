"""Watching a store: real processes, editors, git, rsync and repair, on both paths.

Every test runs on the native path (inotify through watchdog) and on the
polling path. A test keeps a model built only from the reported changes and
checks that it ends equal to the store read afresh ("latest state"), and that
each key's values came in the order they were written.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import default_sigint
from conftest import digest_path

import sos
from sos.watch.change import Change
from sos.watch.watcher import Watcher, awatch, watch

pytest.importorskip("watchdog")

POLL = 0.05
QUIET = 0.3  # no change within this long counts as "none"
ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(params=["native", "poll"])
def mode(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"native": True} if request.param == "native" else {"poll": POLL}


def run_python(code: str, *args: str) -> None:
    """Run ``code`` in a fresh interpreter with this worktree's sos."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], check=True, env=env, timeout=30
    )


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env=GIT_ENV, capture_output=True)


class Model:
    """A Dict's state as the reported changes build it, and each key's history."""

    def __init__(self, start: dict[str, Any]) -> None:
        self.state: dict[str, Any] = dict(start)
        self.history: dict[str | None, list[Any]] = {}
        self.changes: list[Change] = []

    def apply(self, change: Change) -> None:
        self.changes.append(change)
        if change.kind == "set":
            self.state[change.key] = change.value
        elif change.kind == "deleted":
            self.state.pop(change.key, None)
        elif change.kind == "error":
            self.state[change.key] = change.error
        else:
            return
        self.history.setdefault(change.key, []).append(
            "<deleted>" if change.deleted else change.value
        )

    def until(self, watcher: Watcher, expected: dict[str, Any], timeout: float = 10) -> None:
        """Apply changes until the model equals ``expected``, then make sure none follow."""
        end = time.monotonic() + timeout
        while self.state != expected:
            left = end - time.monotonic()
            change = watcher.get(max(left, 0))
            if change is None:
                pytest.fail(f"model {self.state!r} never reached {expected!r}")
            self.apply(change)
        extra = watcher.get(QUIET)
        assert extra is None or extra.kind == "resync", f"unexpected change {extra}"


def store_state(path: Path) -> dict[str, Any]:
    with sos.Dict(path, create=False) as fresh:
        return dict(fresh.items())


def assert_in_order(history: list[Any], written: list[Any]) -> None:
    """Reported values are a subsequence of the written ones, ending at the last."""
    it = iter(written)
    assert all(any(value == w for w in it) for value in history), (history, written)
    assert history[-1] == written[-1]


# -- the basics, from another process ---------------------------------------------------


def test_other_process_every_key_in_order(store_path: Path, mode: dict[str, Any]) -> None:
    db = sos.Dict(store_path)
    db["keep"] = 0
    with db, watch(db, **mode) as watcher:
        run_python(
            """
            import sys, sos
            db = sos.Dict(sys.argv[1])
            for n in range(30):
                db[f"k{n % 3}"] = n
            del db["k0"]
            db["keep"] = "last"
            """,
            str(store_path),
        )
        model = Model({"keep": 0})
        model.until(watcher, store_state(store_path))
    assert model.state == {"k1": 28, "k2": 29, "keep": "last"}
    for k in (1, 2):
        assert_in_order(model.history[f"k{k}"], list(range(k, 30, 3)))
    # k0 may have come and gone between two looks: then nothing is reported
    if "k0" in model.history:
        assert_in_order(model.history["k0"], [*range(0, 30, 3), "<deleted>"])
    assert all(c.path and c.path.endswith(".json") for c in model.changes)


def test_list_appends_from_processes(tmp_path: Path, mode: dict[str, Any]) -> None:
    path = tmp_path / "list"
    lst = sos.List(path)
    lst.append("first")
    with lst, watch(lst, **mode) as watcher:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sos,sys\nl=sos.List(sys.argv[1])\nfor i in range(20): l.append(i)",
                    str(path),
                ],
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for _ in range(2)
        ]
        for proc in procs:
            assert proc.wait(30) == 0
        lengths = []
        while (change := watcher.get(QUIET)) is not None:
            assert change.kind == "changed", change
            lengths.append(change.length)
        assert lengths == sorted(lengths) and lengths[-1] == len(lst) == 41
        lst[0] = "edited"
        change = watcher.get(5)
        assert change is not None and (change.length, change.edited) == (41, 1)
        del lst[0]
        change = watcher.get(5)
        assert change is not None and (change.length, change.removed) == (40, 1)
        assert watcher.get(QUIET) is None


# -- editors, git, rsync, repair -----------------------------------------------------------


def test_sed_in_place_is_seen(store_path: Path, mode: dict[str, Any]) -> None:
    db = sos.Dict(store_path)
    db["ada"] = {"born": 1815}
    with db, watch(db, **mode) as watcher:
        subprocess.run(["sed", "-i", "s/1815/1816/", db.path_of("ada")], check=True)
        change = watcher.get(5)
        assert change is not None and change.kind == "set"
        assert (change.key, change.value) == ("ada", {"born": 1816})
        assert watcher.get(QUIET) is None  # sed's own temp file made no event


def test_git_checkout_of_branches(tmp_path: Path, mode: dict[str, Any]) -> None:
    repo = tmp_path / "repo"
    path = repo / "data"
    db = sos.Dict(path)
    db.update({"a": 1, "b": 2, "c": 3})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "main")
    git(repo, "checkout", "-q", "-b", "other")
    with db:
        db["a"] = "other"
        del db["b"]
        db.update({f"new{n}": n for n in range(20)})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "other")
    db = sos.Dict(path)
    with db, watch(db, **mode) as watcher:
        model = Model(store_state(path))
        git(repo, "checkout", "-q", "main")
        model.until(watcher, {"a": 1, "b": 2, "c": 3})
        git(repo, "checkout", "-q", "other")
        model.until(watcher, store_state(path))
        assert len(model.state) == 22
    assert not any(c.kind == "error" for c in model.changes), model.changes


def test_git_checkout_replacing_the_directory(tmp_path: Path, mode: dict[str, Any]) -> None:
    """A branch without the store removes its directory; the watcher follows it back."""
    repo = tmp_path / "repo"
    path = repo / "data"
    (repo).mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("no store here\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "empty")
    git(repo, "checkout", "-q", "-b", "store")
    db = sos.Dict(path)
    db.update({"x": 1, "y": 2})
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "store")
    with db, watch(db, **mode) as watcher:
        model = Model({"x": 1, "y": 2})
        git(repo, "checkout", "-q", "main")  # the directory goes (or keeps only .sos/)
        model.until(watcher, {})
        git(repo, "checkout", "-q", "store")
        model.until(watcher, {"x": 1, "y": 2})
        os.rename(path, tmp_path / "old")  # and a directory moved in from elsewhere
        other = sos.Dict(tmp_path / "new")
        other.update({"z": 26})
        other.close()
        os.rename(tmp_path / "new", path)
        model.until(watcher, {"z": 26})
    assert any(c.kind == "resync" for c in model.changes)


def test_rsync_into_the_store(tmp_path: Path, mode: dict[str, Any]) -> None:
    source = sos.Dict(tmp_path / "source")
    source.update({f"k{n}": {"n": n} for n in range(30)})
    source.close()
    path = tmp_path / "store"
    db = sos.Dict(path)
    db.update({"k1": "old", "gone": True})
    with db, watch(db, **mode) as watcher:
        model = Model(store_state(path))
        subprocess.run(
            ["rsync", "-a", "--delete", "-F", f"{tmp_path / 'source'}/", f"{path}/"], check=True
        )
        model.until(watcher, store_state(path))
    assert len(model.state) == 30 and "gone" not in model.state


def test_check_repair_adopting_a_file(store_path: Path, mode: dict[str, Any]) -> None:
    db = sos.Dict(store_path)
    db["ada"] = 1
    with db, watch(db, **mode) as watcher:
        (store_path / "grace.json").write_text('{"key": "grace", "value": {"born": 1906}}')
        assert watcher.get(QUIET) is None  # a foreign file: nothing yet
        sos.check(store_path, repair=True)
        change = watcher.get(5)
        assert change is not None and (change.key, change.value) == ("grace", {"born": 1906})
        assert watcher.get(QUIET) is None


# -- what is not a change -----------------------------------------------------------------


def test_ignored_files_make_no_events(store_path: Path, mode: dict[str, Any]) -> None:
    db = sos.Dict(store_path)
    db["ada"] = 1
    home = Path(db.path_of("ada")).parent
    with db, watch(db, **mode) as watcher:
        (home / ".sos-tmp-0123456789abcdef").write_text("half")
        (home / f".{Path(db.path_of('ada')).name}.swp").write_text("vim")
        (home / "4913").write_text("")
        (store_path / "lost+found").mkdir()
        (store_path / "lost+found" / Path(db.path_of("x")).name).write_text('{"key": "x"}')
        (store_path / "README.md").write_text("notes")
        (store_path / "zz").mkdir()  # not a fan-out name
        (store_path / "zz" / ("0" * 32 + ".json")).write_text("{}")
        (store_path / ".sos").mkdir(exist_ok=True)
        (store_path / ".sos" / "lease-1").write_text("lease")
        assert watcher.get(QUIET * 2) is None
        db["ada"] = 2  # and the watcher still works
        change = watcher.get(5)
        assert change is not None and change.value == 2
        for leftover in [home / ".sos-tmp-0123456789abcdef"]:
            leftover.unlink()


def test_damaged_file_is_reported_and_watching_goes_on(
    store_path: Path, mode: dict[str, Any]
) -> None:
    db = sos.Dict(store_path)
    db["ada"] = 1
    file = Path(db.path_of("ada"))
    with db, watch(db, **mode) as watcher:
        file.write_text('{"key": "ada", "value": ')  # truncated by hand
        change = watcher.get(5)
        assert change is not None and change.kind == "error"
        assert isinstance(change.error, sos.CorruptError) and change.key == "ada"
        assert str(file) in str(change.error)
        assert watcher.get(QUIET) is None  # reported once
        db["other"] = 5
        change = watcher.get(5)
        assert change is not None and (change.key, change.value) == ("other", 5)
        db["ada"] = "fixed"
        change = watcher.get(5)
        assert change is not None and (change.kind, change.value) == ("set", "fixed")


def test_fifo_in_place_of_a_document_is_one_error(store_path: Path, mode: dict[str, Any]) -> None:
    db = sos.Dict(store_path)
    db["ada"] = 1
    file = Path(db.path_of("ada"))
    with db, watch(db, **mode) as watcher:
        file.unlink()
        os.mkfifo(file)  # reading it must not hang the watcher
        changes = []
        while (change := watcher.get(QUIET * 2)) is not None:
            changes.append(change)
        assert [c.kind for c in changes if c.kind != "deleted"] == ["error"], changes
        file.unlink()
        db["ada"] = 2
        change = watcher.get(5)
        assert change is not None and (change.kind, change.value) == ("set", 2)


def test_transaction_record_holds_changes_back(store_path: Path, mode: dict[str, Any]) -> None:
    """While .sos/txn* exists nothing is reported; then all of it at once."""
    db = sos.Dict(store_path)
    db.update({"alice": 100, "bob": 0})
    record = store_path / ".sos" / "txn-1"
    with db, watch(db, **mode) as watcher:
        record.parent.mkdir(exist_ok=True)
        record.write_text("intent")
        db["alice"] = 90
        time.sleep(0.1)
        db["bob"] = 10
        assert watcher.get(QUIET) is None
        record.unlink()
        model = Model({"alice": 100, "bob": 0})
        model.until(watcher, {"alice": 90, "bob": 10})


def test_real_transactions_are_never_reported_half(store_path: Path, mode: dict[str, Any]) -> None:
    """Another process moves money between two keys in transactions; every
    state the watcher reports (all the changes it has at hand) keeps the sum."""
    if not hasattr(sos.Dict, "transaction"):
        pytest.skip("needs transactions (issue 10)")
    db = sos.Dict(store_path)
    db.update({"alice": 100, "bob": 0})
    with db, watch(db, **mode) as watcher:
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    """
                import random, sys, time, sos
                db = sos.Dict(sys.argv[1])
                for n in range(40):
                    with db.transaction():
                        amount = random.randint(-5, 5)
                        db["alice"] = db["alice"] - amount
                        time.sleep(0.005)  # a reader would see half here
                        db["bob"] = db["bob"] + amount
                """
                ),
                str(store_path),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        model = Model({"alice": 100, "bob": 0})
        rounds = 0
        while writer.poll() is None or rounds == 0:
            change = watcher.get(0.2)
            if change is None:
                continue
            model.apply(change)
            while (more := watcher.get(0)) is not None:  # the rest of the round
                model.apply(more)
            rounds += 1
            assert model.state["alice"] + model.state["bob"] == 100, model.changes[-4:]
        assert writer.wait(30) == 0
        model.until(watcher, store_state(store_path))
    assert rounds > 1


WATCHER = """
import json, sys, sos
from sos.watch.watcher import watch
db = sos.Dict(sys.argv[1])
with watch(db, native=True) as w:
    print("ready", flush=True)
    for change in w:
        print(json.dumps([change.kind, change.key, change.value]), flush=True)
"""


def test_overflow_gives_resync_and_differences(store_path: Path) -> None:
    """A real inotify overflow: the watcher's process is stopped while more
    events than the kernel queues (fs.inotify.max_queued_events) happen."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    db = sos.Dict(store_path)
    db["a"] = 1
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(store_path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        os.kill(proc.pid, signal.SIGSTOP)
        stat = Path(f"/proc/{proc.pid}/stat")
        while stat.read_text().rpartition(")")[2].split()[0] != "T":  # stopped
            time.sleep(0.001)
        junk = store_path / "junk.txt"  # a foreign file: 3 events a round, none a change
        for _ in range(limit):  # three times the queue: past what a last read can take
            junk.touch()
            junk.unlink()
        db["a"] = 2  # its events are lost with the rest
        os.kill(proc.pid, signal.SIGCONT)
        timer = threading.Timer(20, proc.kill)  # a watcher that never reports fails, not hangs
        timer.start()
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        timer.cancel()
        assert lines == ['["resync", null, null]\n', '["set", "a", 2]\n']
    finally:
        proc.kill()
        proc.communicate()
        db.close()


def test_late_events_never_report_half_a_transaction(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine events arrive late: the watcher may have the event
    of a transaction's first file and not yet that of its second, while on
    disk the whole transaction is done and its record gone. Here the event
    thread is held at the second file's event, as the scheduler may hold it."""
    from sos.watch.native import StoreHandler

    db = sos.Dict(store_path)
    db.update({"alice": 100, "bob": 0})
    bob = str(digest_path(store_path, "bob"))
    held, release = threading.Event(), threading.Event()
    dispatch = StoreHandler.dispatch

    def late(self: StoreHandler, event: Any) -> None:
        if bob in (os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", ""))):
            held.set()
            release.wait(10)
        dispatch(self, event)

    monkeypatch.setattr(StoreHandler, "dispatch", late)
    with db, watch(db, native=True) as watcher:
        with db.transaction():
            db["alice"] = 90
            db["bob"] = 10
        assert held.wait(5)
        model = Model({"alice": 100, "bob": 0})
        while (change := watcher.get(QUIET)) is not None:
            model.apply(change)
        assert model.state == {"alice": 100, "bob": 0}, model.changes
        release.set()
        model.until(watcher, {"alice": 90, "bob": 10})


def test_transaction_during_a_round_with_late_events_is_read_again(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole transaction lands between the reads of one round, and its
    events have not arrived (the event thread is held at its record): the
    round read alice before it and bob after it. .sos/txn.done changed during
    the round, so the round is thrown away, not reported."""
    from sos.watch.native import StoreHandler
    from sos.watch.state import State

    db = sos.Dict(store_path)
    db.update({"alice": 100, "bob": 0})
    alice, bob = (str(digest_path(store_path, k)) for k in ("alice", "bob"))
    names = {os.path.relpath(p, store_path): p for p in (alice, bob)}
    record = str(store_path / ".sos" / "txn.json")
    seen_bob, release = threading.Event(), threading.Event()
    dispatch, examine = StoreHandler.dispatch, State._examine_file

    def late(self: StoreHandler, event: Any) -> None:
        paths = (os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "")))
        if record in paths:
            release.wait(10)
        dispatch(self, event)
        if bob in paths:
            seen_bob.set()

    def between(self: State, name: str, *args: Any) -> Any:
        change = examine(self, name, *args)
        if names.get(name) == alice and not release.is_set():
            with db.transaction():  # lands whole between the two reads
                db["alice"] = 90
                db["bob"] = 10
        return change

    monkeypatch.setattr(StoreHandler, "dispatch", late)
    with db, watch(db, native=True) as watcher:
        monkeypatch.setattr(State, "_examine_file", between)
        db["alice"] = 100  # the same bytes: no change, but events naming both
        db["bob"] = 0
        assert seen_bob.wait(5)
        model = Model({"alice": 100, "bob": 0})
        while (change := watcher.get(QUIET)) is not None:
            model.apply(change)
            assert model.state["alice"] + model.state["bob"] == 100, model.changes
        release.set()
        model.until(watcher, {"alice": 90, "bob": 10})


# -- stopping ------------------------------------------------------------------------------


def test_break_and_close_leave_no_thread(store_path: Path, mode: dict[str, Any]) -> None:
    before = threading.active_count()
    db = sos.Dict(store_path)
    with db:
        writer = threading.Timer(0.1, db.__setitem__, ("a", 1))
        writer.start()
        for change in watch(db, **mode):
            assert change.key == "a"
            break
        writer.join()  # the change may come out before the write call returns
        assert threading.active_count() <= before
        watcher = watch(db, **mode)
        closer = threading.Timer(0.1, watcher.close)  # close from another thread
        closer.start()
        assert list(watcher) == []
        closer.join()
        assert threading.active_count() <= before
        watcher.close()  # twice is fine
        with pytest.raises(sos.ClosedError):
            watcher.get(0)


def test_bad_arguments(store_path: Path) -> None:
    db = sos.Dict(store_path)
    with pytest.raises(TypeError, match=r"sos\.Dict or sos\.List"):
        watch({})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        watch(db, poll=0)
    with pytest.raises(ValueError, match="not both"):
        watch(db, poll=1, native=True)
    db.close()
    with pytest.raises(ValueError, match="closed"):
        watch(db)


# -- asyncio and the command -----------------------------------------------------------------


def test_async_watch(store_path: Path, mode: dict[str, Any]) -> None:
    db = sos.Dict(store_path)

    async def main() -> list[Change]:
        seen = []
        async with awatch(db, **mode) as watcher:  # watching from here on
            db["a"] = 1
            async for change in watcher:
                seen.append(change)
                if change.kind == "set":
                    del db["a"]
                if change.deleted:
                    break

        async def keep_writing() -> None:  # until the next watcher has started
            for n in range(100):
                db["b"] = n
                await asyncio.sleep(0.1)

        writer = asyncio.create_task(keep_writing())
        # no async with: leaving the loop and dropping the iterator stops it
        async for change in awatch(db, **mode):
            seen.append(change)
            break
        writer.cancel()
        return seen

    before = threading.active_count()
    with db:
        seen = asyncio.run(main())
    assert threading.active_count() <= before
    assert [(c.kind, c.key) for c in seen] == [("set", "a"), ("deleted", "a"), ("set", "b")]


def test_command_prints_json_lines_until_ctrl_c(store_path: Path) -> None:
    db = sos.Dict(store_path)
    db["a"] = 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from sos.cli.watch import run_watch_command as r; "
            "sys.exit(r(sys.argv[1], None))",
            str(store_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 10
        n = 0
        while not lines and time.monotonic() < deadline:
            n += 1
            db["a"] = n  # until the watcher has started and reports
            time.sleep(0.2)
            if proc.stdout is not None:
                os.set_blocking(proc.stdout.fileno(), False)
                lines += [line for line in proc.stdout.readlines() if line]
        assert lines, "sos watch printed nothing"
        first = json.loads(lines[0])
        assert first["kind"] == "set" and first["key"] == "a"
        assert first["path"] == os.path.relpath(digest_path(store_path, "a"), store_path)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        db.close()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_polling_needs_no_watchdog(store_path: Path) -> None:
    """The polling path imports nothing from watchdog (a fresh interpreter proves it)."""
    run_python(
        """
        import sys, sos
        sys.modules["watchdog"] = None  # any import of it fails
        from sos.watch.watcher import watch
        db = sos.Dict(sys.argv[1])
        w = watch(db)
        assert not w.native
        db["a"] = 1
        change = w.get(5)
        assert change is not None and change.value == 1, change
        w.close()
        """,
        str(store_path),
    )
    shutil.rmtree(store_path)


# -- the storage interface (object storage) -------------------------------------------------


class ListingStorage:
    """Object storage as the watcher sees it: names, bytes and ETags, counted.

    It has ``list_versions`` (a LIST that returns ETags), so a polling pass
    must make no per-document request at all.
    """

    url = "fake://bucket/store"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.calls: dict[str, int] = {}

    def where(self, name: str) -> str:  # messages only: no request
        return f"{self.url}/{name}"

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def put(self, key: str, value: Any) -> None:
        from sos import format as _format

        self.objects[_format.key_relpath(key)] = _format.encode_document(key, value)

    def list(self, directory: str = "") -> list[str]:
        self._count("list")
        head = f"{directory}/" if directory else ""
        return sorted({n[len(head) :].split("/")[0] for n in self.objects if n.startswith(head)})

    def list_versions(self, directory: str, wanted: Any = None) -> dict[str, Any]:
        self._count("list_versions")
        head = f"{directory}/"
        return {
            n[len(head) :]: hash(data)
            for n, data in self.objects.items()
            if n.startswith(head) and "/" not in n[len(head) :]
        }

    def version(self, name: str) -> Any:
        self._count("version")
        data = self.objects.get(name)
        return None if data is None else hash(data)

    def read_versioned(self, name: str) -> tuple[bytes, Any]:
        self._count("read")
        if name not in self.objects:
            raise FileNotFoundError(name)
        return self.objects[name], hash(self.objects[name])

    def is_dir(self, name: str) -> bool:
        return any(n.startswith(f"{name}/") for n in self.objects)


def test_polling_pass_on_object_storage_is_listings_only() -> None:
    from sos import format as _format
    from sos.watch.state import State

    storage = ListingStorage()
    for n in range(50):
        storage.put(f"k{n}", n)
    state = State(storage, "dict")
    _, updates = state.examine(state.changed_names(), 0, final=True)
    state.apply(updates)
    storage.calls.clear()
    assert state.changed_names() == []
    assert set(storage.calls) == {"list", "list_versions"}, storage.calls
    storage.put("k7", "new")
    del storage.objects[_format.key_relpath("k3")]
    names = state.changed_names()
    changes, _ = state.examine(names, 0)
    assert {(c.kind, c.key, c.value) for c in changes} == {
        ("set", "k7", "new"),
        ("deleted", "k3", None),
    }
    assert "version" not in storage.calls

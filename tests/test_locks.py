"""sos.storage.locks.StoreLock: re-entrant, shared or exclusive, per handle.

Each test checks the lock's state (depth, the thread's holder entry) and the
flock itself, probed from another open file description, through nesting,
non-blocking tries, unbalanced releases, forks and threads."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import probe_free

import sos
from sos.errors import Error
from sos.storage.holders import HOLDERS


def mine(lock) -> object:
    return HOLDERS._held.get((lock._identity, threading.get_ident()))


def open_db(tmp_path: Path):
    store = tmp_path / "s"
    db = sos.Dict(store)
    db["k"] = 1
    return store, db, db._storage._lock


Opened = tuple[Path, sos.Dict, Any]


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Opened]:
    """A store, a handle that has written, and that handle's lock; closed after."""
    store, db, lock = open_db(tmp_path)
    yield store, db, lock
    db.close()


# -- 1. re-entrancy ---------------------------------------------------------------------


def test_nested_depths_and_shared_inside_exclusive(opened: Opened):
    store, _, lock = opened
    assert lock.acquire(True)
    assert lock.acquire(False)  # shared inside exclusive
    assert lock.acquire(True)  # exclusive inside exclusive(+shared)
    assert lock._depth == 3 and lock.held and mine(lock) is lock
    for depth in (2, 1):
        lock.release()
        assert lock._depth == depth and lock.held and not probe_free(store)
        assert mine(lock) is lock
    lock.release()
    assert lock._depth == 0 and not lock.held and probe_free(store)
    assert mine(lock) is None and not lock._thread_lock._is_owned()


def test_exclusive_inside_shared_keeps_the_outer_hold(opened: Opened):
    store, _, lock = opened
    assert lock.acquire(False)
    with pytest.raises(Error, match="exclusive lock asked for inside a shared"):
        lock.acquire(True)
    assert lock._depth == 1 and lock.held and mine(lock) is lock
    other = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:  # still shared-held: an exclusive elsewhere is refused, a shared is fine
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)
    lock.release()
    assert not lock._thread_lock._is_owned() and probe_free(store) and mine(lock) is None


def test_release_at_depth_one_after_a_failed_unlock(opened: Opened):
    store, db, lock = opened
    assert lock.acquire(True)
    os.close(lock._fd)  # the unlock will fail (EBADF); the close released the flock
    lock.release()
    assert lock._fd == -1 and lock._depth == 0 and mine(lock) is None
    assert not lock._thread_lock._is_owned() and probe_free(store)
    db["k"] = 2  # reopens
    assert lock.acquire(True) and not probe_free(store)
    lock.release()
    assert probe_free(store)
    assert sos.Dict(store)["k"] == 2


def test_an_unbalanced_release_does_not_disable_the_flock(opened: Opened):
    """A release without an acquire raises; it must leave the lock working."""
    store, db, lock = opened
    with pytest.raises(RuntimeError):
        lock.release()
    assert lock._depth == 0, lock._depth
    with db._storage.lock():
        assert not probe_free(store), "the handle's exclusive lock took no flock"


@contextlib.contextmanager
def held_by_another_thread(db: sos.Dict) -> Iterator[None]:
    """The handle's lock held exclusively by another thread for the block."""
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with db._storage.lock():
            held.set()
            done.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        yield
    finally:
        done.set()
        t.join(10)


def test_an_unbalanced_release_from_another_thread_keeps_the_holders_flock(opened: Opened):
    store, db, lock = opened
    with held_by_another_thread(db):
        with pytest.raises(RuntimeError):
            lock.release()  # not this thread's: must change nothing
        assert not probe_free(store), "another thread's release unlocked the holder's flock"


# -- 2. non-blocking ----------------------------------------------------------------------


def test_non_blocking_with_the_thread_lock_busy(tmp_path: Path):
    store, db, lock = open_db(tmp_path)
    with held_by_another_thread(db):
        assert lock.acquire(True, blocking=False) is False
        assert lock.acquire(False, blocking=False) is False
        assert not lock._thread_lock._is_owned() and mine(lock) is None
        assert lock._depth == 1 and not probe_free(store)  # the holder's, untouched
    assert lock._depth == 0 and probe_free(store)
    db.close()


@pytest.mark.parametrize("exclusive", [True, False])
def test_non_blocking_with_the_flock_busy(tmp_path: Path, exclusive: bool):
    store, db, lock = open_db(tmp_path)
    other = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        assert lock.acquire(exclusive, blocking=False) is False
        assert not lock._thread_lock._is_owned() and mine(lock) is None and lock._depth == 0
        # another thread can take the thread lock at once (it was released)
        got: list[bool] = []
        t = threading.Thread(target=lambda: got.append(lock._thread_lock.acquire(False)))
        t.start()
        t.join(10)
        assert got == [True]
        lock._thread_lock = type(lock._thread_lock)()  # that thread's hold, dropped
        fcntl.flock(other, fcntl.LOCK_UN)
        assert lock.acquire(exclusive, blocking=False) is True
        assert lock._depth == 1 and mine(lock) is lock
        lock.release()
        assert probe_free(store)
    finally:
        os.close(other)
        db.close()


def test_non_blocking_refused_for_a_second_handle_in_this_thread(tmp_path: Path):
    store, db, lock = open_db(tmp_path)
    db2 = sos.Dict(store)
    db2["j"] = 1
    lock2 = db2._storage._lock
    try:
        with db._storage.lock():
            with pytest.raises(Error, match="another handle"):
                lock2.acquire(True, blocking=False)
            assert mine(lock) is lock  # the other handle's entry stays (discard)
            assert not lock2._thread_lock._is_owned() and lock2._depth == 0
            assert not probe_free(store)  # _let_go_untaken unlocked only lock2's description
        assert probe_free(store) and mine(lock) is None
    finally:
        db.close()
        db2.close()


# -- 3. forks -----------------------------------------------------------------------------


def _child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            pass
        os._exit(code)
    return pid


def _wait(pid: int, timeout: float) -> int | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None  # hung


def test_a_forked_childs_release_leaves_the_parents_hold(tmp_path: Path):
    """Forked inside the handle's own transaction: the child leaving the block
    (sys.exit unwinds it: rollback, release) must not unlock the parent's open
    file description, which the parent's transaction still holds."""
    store, db, _ = open_db(tmp_path)
    child = False
    try:
        with db.transaction():
            db["k"] = 5
            pid = os.fork()
            if pid == 0:
                child = True
                raise SystemExit(0)  # the child unwinds the with block: release()
            assert _wait(pid, 10) == 0
            free = probe_free(store)
        assert not free, "the child's release unlocked the parent's flock"
        assert probe_free(store)
        assert sos.Dict(store)["k"] == 5
    except SystemExit:
        if child:
            os._exit(0)
        raise
    finally:
        if child:
            os._exit(1)
        db.close()


def test_a_forked_child_writes_while_a_parent_thread_holds(tmp_path: Path):
    """Another thread of the parent holds the handle's lock at the fork: the
    child (one thread) must still be able to write once the flock is free."""
    store, db, _ = open_db(tmp_path)
    db["k"] = 2  # warm
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with db.transaction():
            held.set()
            done.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10)

    def child() -> None:
        db["c"] = 1
        db.close()

    pid = _child(child)
    time.sleep(0.2)
    done.set()
    t.join(10)
    code = _wait(pid, 5)
    db.close()
    assert code == 0, "the forked child hung (or failed) on the parent thread's thread lock"
    assert sos.Dict(store)["c"] == 1


def test_a_plain_set_in_a_forked_child_leaves_the_parents_hold(tmp_path: Path):
    """The child of a fork made inside the handle's hold sets a key (write_plain
    declines: a fork; the general path re-enters) and exits without leaving the
    block: the parent's flock stays."""
    store, db, _ = open_db(tmp_path)
    db["k"] = 2  # warm: the next set would be write_plain's
    try:
        with db._storage.lock(False):

            def child() -> None:
                db["k"] = 3
                db["j"] = 4

            pid = _child(child)
            assert _wait(pid, 10) == 0
            assert not probe_free(store)
        assert probe_free(store)
        assert sos.Dict(store)["j"] == 4
    finally:
        db.close()


# -- 4. threads -----------------------------------------------------------------------------


def test_two_threads_sets_and_transactions_then_close(tmp_path: Path):
    store = tmp_path / "s"
    db = sos.Dict(store)
    db["n"] = 0
    N = 150
    errors: list[BaseException] = []

    def worker(tag: str) -> None:
        try:
            for i in range(N):
                db[f"{tag}-{i % 5}"] = i
                with db.transaction():
                    db["n"] = db["n"] + 1
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(t,)) for t in "ab"]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
        assert not t.is_alive(), "deadlock"
    assert errors == []
    assert db["n"] == 2 * N
    assert probe_free(store)
    lock = db._storage._lock
    assert lock._depth == 0 and not [k for k in HOLDERS._held if k[0] == lock._identity]
    db.close()
    assert sos.Dict(store)["n"] == 2 * N


def test_close_from_a_third_thread_during_sets_and_transactions(tmp_path: Path):
    store = tmp_path / "s"
    db = sos.Dict(store)
    db["n"] = 0
    fds_before = len(os.listdir("/proc/self/fd"))
    stop = threading.Event()
    counted = [0, 0]
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            while not stop.is_set():
                db[f"w{w}"] = counted[w]
                with db.transaction():
                    db["n"] = db["n"] + 1
                counted[w] += 1
        except Error as exc:
            if "closed" not in str(exc):
                errors.append(exc)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(w,)) for w in (0, 1)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    closer = threading.Thread(target=db.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() deadlocked"
    time.sleep(0.1)
    stop.set()
    for t in ts:
        t.join(30)
        assert not t.is_alive(), "deadlock"
    assert probe_free(store), "a lock left held after close"
    ident = db._storage._lock._identity
    assert not [k for k in HOLDERS._held if k[0] == ident]
    n = sos.Dict(store)["n"]
    assert n >= sum(counted), (n, counted)  # no committed increment lost
    assert errors == [], errors
    print("fds before/after", fds_before, len(os.listdir("/proc/self/fd")), "errors", errors)


# -- 5. close ---------------------------------------------------------------------------


def test_close_while_held_then_the_release_balances_the_hold(opened: Opened):
    """close() inside a hold (a with block that closes its store): the release
    that follows works, and another thread of the handle can take it after."""
    _, _, lock = opened
    lock.acquire()
    lock.close()
    lock.release()
    taken: list[bool] = []

    def take_and_let_go() -> None:
        taken.append(lock.acquire(blocking=False))
        if taken[-1]:
            lock.release()

    thread = threading.Thread(target=take_and_let_go)
    thread.start()
    thread.join(timeout=10)
    assert taken == [True]


def test_an_interrupted_close_keeps_no_closed_descriptor(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
):
    """An interrupt as close()'s os.close returns: the lock must not keep the
    closed number, which the next open may give to another file (its next
    take would then flock that file and exclude nobody)."""
    store, _, lock = opened
    real_close = os.close

    def close_then_interrupt(fd: int) -> None:
        real_close(fd)
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(os, "close", close_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            lock.close()
    reused = os.open(store, os.O_RDONLY)  # likely the number just freed
    try:
        assert lock._fd == -1
        assert lock.acquire(blocking=False) and not probe_free(store)
        lock.release()
    finally:
        os.close(reused)

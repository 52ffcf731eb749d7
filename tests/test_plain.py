"""sos.storage.plain: a plain set's one-frame write behaves as the general path.

Each test warms a handle (two sets) so that its next set is the one-frame
write, then does what the general path has long been tested for.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import types
from pathlib import Path

import pytest
from conftest import probe_free

import sos
from sos import format as _format
from sos.storage import atomic as _atomic
from sos.storage import locks as _locks
from sos.storage import plain as _plain
from sos.storage.holders import HOLDERS
from sos.storage.local import LocalStorage
from sos.storage.registry import register_scheme


def assert_unlocked(store: Path) -> None:
    assert probe_free(store), "an interrupted set left its flock held"


def flock_then_interrupt(fd: int, op: int) -> None:
    """flock, then a KeyboardInterrupt as it returns (a signal's moment)."""
    fcntl.flock(fd, op)
    if op == fcntl.LOCK_SH:
        raise KeyboardInterrupt


def test_the_warm_set_is_the_one_frame_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """What the tests below rely on: a handle that has written (two sets)
    makes its next sets with sos.storage.plain, and a fresh handle of an
    existing store makes its first with the general path."""
    reached: list[str] = []
    real = _atomic.replace

    def replace(p: str, d: bytes, *args: bool) -> None:
        if sys._getframe(1).f_code is _plain.write_plain.__code__:  # called by the one frame
            reached.append(str(p))
        real(p, d, *args)

    monkeypatch.setattr(_atomic, "replace", replace)
    sos.Dict(tmp_path / "s").close()
    with sos.Dict(tmp_path / "s") as db:
        db["k"] = 1
        assert reached == []
        db["k"] = 2
        db["other"] = 3
    assert len(reached) == 2


def test_a_close_by_another_thread_before_the_set_locks_writes_nowhere_else(tmp_path: Path):
    """Another thread closes the handle after write_plain read lock._fd (and the
    At made on it) but before it took the thread lock; the freed number is
    then taken by another directory's descriptor. The set must not lock,
    write, fsync or unlock through that reused number."""
    store, other = tmp_path / "store", tmp_path / "other"
    db = sos.Dict(store)
    db["k"] = 1
    db["k"] = 2  # warm: the next set is write_plain's
    name = _format.key_relpath("k")
    (other / name.split("/")[0]).mkdir(parents=True)
    lock = db._storage._lock
    real, old_fd = lock._thread_lock, lock._fd

    class CloseFirst:  # the thread lock, with another thread's close() just before it
        def acquire(self, *args: object) -> bool:
            lock._thread_lock = real  # one shot
            closer = threading.Thread(target=db.close)
            closer.start()
            closer.join()
            fd = os.open(other, os.O_RDONLY | os.O_DIRECTORY)  # takes the freed number
            if fd != old_fd:
                os.dup2(fd, old_fd)
                os.close(fd)
            return real.acquire(*args)

        def release(self) -> None:
            real.release()

        def _is_owned(self) -> bool:
            return real._is_owned()

    lock._thread_lock = CloseFirst()
    try:
        try:
            db["k"] = 3
            raised = None
        except Exception as exc:  # an error is fine; a write elsewhere is not
            raised = exc
        assert not (other / name).exists(), "the set wrote into another directory"
        if raised is None:  # it said it wrote: the store must hold it
            with sos.Dict(store) as again:
                assert again["k"] == 3
    finally:
        os.close(old_fd)


class Audited(LocalStorage):
    """A storage plugged in with register_scheme, with its own write()."""

    written: list[str] = []

    def __init__(self, url: str) -> None:
        super().__init__(url.partition("://")[2])

    def write(self, name: str, data: bytes) -> None:
        self.written.append(name)
        super().write(name, data)


class Traced(Audited):
    """The same, also wrapping write_plain (a trace, a metric)."""

    def write_plain(self, name: str, data: bytes) -> bool:
        return super().write_plain(name, data)


@pytest.mark.parametrize("cls", [Audited, Traced])
def test_a_local_storage_subclass_with_its_own_write_is_asked(tmp_path: Path, cls: type) -> None:
    """A LocalStorage subclass that overrides write() is asked for every
    write, as probe() already respects an exists() override; also when it
    wraps write_plain (the class whose write_plain is sos.storage.plain's is
    what its methods are compared with, not the subclass itself)."""
    scheme = cls.__name__.lower()
    register_scheme(scheme, cls)
    cls.written = []
    with sos.Dict(f"{scheme}://{tmp_path / 's'}") as db:
        for n in range(3):
            db["a"] = n
    assert cls.written.count(_format.key_relpath("a")) == 3, cls.written


def test_an_interrupt_as_the_flock_returns_leaves_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """KeyboardInterrupt delivered as flock returns: the shared flock must not
    stay held (another process's transaction would wait for it)."""
    db = sos.Dict(tmp_path / "s")
    db["k"] = 1
    db["k"] = 2
    monkeypatch.setattr(_plain, "flock", flock_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        db["k"] = 3
    assert_unlocked(tmp_path / "s")
    db.close()


def test_the_general_paths_lock_is_not_left_held_by_an_interrupt_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The same moment in StoreLock (a handle's first set takes it)."""
    sos.Dict(tmp_path / "s").close()
    fake = types.SimpleNamespace(**{n: getattr(fcntl, n) for n in dir(fcntl) if n.isupper()})
    fake.flock = flock_then_interrupt
    db = sos.Dict(tmp_path / "s")
    monkeypatch.setattr(_locks, "fcntl", fake)
    with pytest.raises(KeyboardInterrupt):
        db["k"] = 1
    monkeypatch.undo()
    assert not db._storage.held()
    assert_unlocked(tmp_path / "s")
    db["k"] = 2  # the handle still works
    assert db["k"] == 2
    db.close()


def test_a_subclass_with_its_own_lock_class_has_its_lock_asked(tmp_path: Path):
    """A subclass that keeps LocalStorage.acquire/release but gives self._lock its
    own StoreLock subclass (acquire is delegated to it): write_plain reads and
    writes the lock's private state and flocks the descriptor itself, never
    calling the lock's acquire."""
    taken: list[bool] = []

    class CountingLock(_locks.StoreLock):
        def acquire(self, exclusive: bool = True, blocking: bool = True) -> bool:
            taken.append(exclusive)
            return super().acquire(exclusive, blocking)

    class OwnLock(LocalStorage):
        def __init__(self, url: str) -> None:
            super().__init__(url.partition("://")[2])
            self._lock = CountingLock(self._root)

    register_scheme("ownlock", OwnLock)
    with sos.Dict(f"ownlock://{tmp_path / 's'}") as db:
        before = len(taken)
        for n in range(3):
            db["a"] = n
        assert len(taken) - before == 3, taken


def test_an_interrupt_after_a_failed_try_never_unlocks_another_threads_hold(tmp_path: Path):
    """acquire(blocking=False) that finds the store locked by another process
    releases the thread lock inside its try; a KeyboardInterrupt delivered as
    that release returns (CPython checks for signals after every call) reaches
    the except path, which then runs _let_go_untaken() *without* the thread lock:
    if another thread of this handle has meanwhile flocked (and not yet counted
    its depth), its flock is unlocked under it; and the thread lock is released
    a second time (RuntimeError instead of the KeyboardInterrupt)."""
    store = tmp_path / "s"
    db = sos.Dict(store)
    db["k"] = 1  # the handle's descriptor is open
    lock = db._storage._lock
    real = lock._thread_lock
    main = threading.current_thread()

    other = os.open(store, os.O_RDONLY | os.O_DIRECTORY)  # "another process" holds it
    fcntl.flock(other, fcntl.LOCK_EX)

    flocked, let_go_done = threading.Event(), threading.Event()
    acquired, probed = threading.Event(), threading.Event()
    worker_result: list[object] = []

    def worker() -> None:
        try:
            lock.acquire(exclusive=True)
            worker_result.append(lock.held)
            acquired.set()
            probed.wait(10)
            lock.release()
        except BaseException as exc:  # pragma: no cover - shown by the assert
            worker_result.append(exc)
            acquired.set()

    real_check = lock._check_identity

    def check_identity() -> None:  # the worker: flocked, depth not yet counted
        flocked.set()
        let_go_done.wait(10)
        real_check()

    lock._check_identity = check_identity  # type: ignore[method-assign]

    class SignalAfterRelease:
        fired = False

        def acquire(self, *args: object) -> bool:
            return real.acquire(*args)

        def release(self) -> None:
            real.release()
            if threading.current_thread() is main and not self.fired:
                self.fired = True
                fcntl.flock(other, fcntl.LOCK_UN)  # the other process is done
                threading.Thread(target=worker, daemon=True).start()
                assert flocked.wait(10)
                raise KeyboardInterrupt  # the signal, as release() returns

        def _is_owned(self) -> bool:
            return real._is_owned()

    lock._thread_lock = SignalAfterRelease()
    try:
        with pytest.raises(BaseException) as info:
            lock.acquire(exclusive=True, blocking=False)
        let_go_done.set()
        assert acquired.wait(10)
        assert worker_result == [True]
        free = probe_free(store)  # while the worker holds the exclusive lock
        probed.set()
        assert not free, "the worker's exclusive flock was released by the other thread"
        assert info.type is KeyboardInterrupt, info.value
    finally:
        probed.set()
        let_go_done.set()
        os.close(other)
        lock._thread_lock = real
        del lock._check_identity
        db.close()


def test_an_interrupt_as_the_bookkeeping_returns_still_unlocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """write_plain's finally does `_depth = 0`, `_held.pop(...)` (a call: CPython
    runs signal handlers as it returns), then the unlock: a KeyboardInterrupt
    delivered there leaves the shared flock held, by nobody (depth 0), until
    this handle's next write or close; another process's transaction waits."""

    class InterruptedPop(dict):  # type: ignore[type-arg]
        fired = False

        def pop(self, *args: object) -> object:
            out = super().pop(*args)
            if not InterruptedPop.fired:
                InterruptedPop.fired = True
                raise KeyboardInterrupt  # the signal, as pop() returns
            return out

    store = tmp_path / "s"
    db = sos.Dict(store)
    db["k"] = 1
    db["k"] = 2  # warm
    monkeypatch.setattr(_plain, "_held", InterruptedPop())
    try:
        with pytest.raises(KeyboardInterrupt):
            db["k"] = 3
        assert InterruptedPop.fired
        assert probe_free(store), "an interrupted set left its shared flock held"
    finally:
        db.close()


def test_the_general_paths_release_is_not_left_held_by_an_interrupt_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The same moment in StoreLock.release: HOLDERS.remove (a call) comes
    before the unlock."""
    real = HOLDERS.remove
    fired: list[bool] = []

    def remove(store: object) -> None:
        real(store)  # type: ignore[arg-type]
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt

    store = tmp_path / "s"
    db = sos.Dict(store)
    try:
        monkeypatch.setattr(HOLDERS, "remove", remove)
        with pytest.raises(KeyboardInterrupt), db._storage.lock():
            pass
        monkeypatch.undo()
        assert fired
        assert probe_free(store), "an interrupted release left the flock held"
    finally:
        db.close()


def test_a_warm_set_keeps_the_documents_mode(tmp_path: Path) -> None:
    """A user's chmod 600 survives the one-frame write, as the general path's."""
    with sos.Dict(tmp_path / "s") as db:
        db["k"] = 1
        db["k"] = 2  # warm
        path = tmp_path / "s" / _format.key_relpath("k")
        path.chmod(0o600)
        db["k"] = 3
        assert path.stat().st_mode & 0o777 == 0o600
        assert db["k"] == 3

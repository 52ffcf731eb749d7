"""sos.storage.plain: a plain set's one-frame write behaves as the general path.

Each test warms a handle (two sets) so that its next set is the one-frame
write, then does what the general path has long been tested for.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import types
from pathlib import Path

import pytest

import sos
from sos import format as _format
from sos.storage import locks as _locks
from sos.storage import plain as _plain
from sos.storage.local import LocalStorage
from sos.storage.registry import register_scheme


def assert_unlocked(store: Path) -> None:
    """Another open file description can take the store's lock exclusively."""
    probe = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            assert exc.errno != errno.EWOULDBLOCK, "an interrupted set left its flock held"
            raise
    finally:
        os.close(probe)


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
    real = _plain._replace
    monkeypatch.setattr(_plain, "_replace", lambda p, d: (reached.append(str(p)), real(p, d)))
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


def test_a_local_storage_subclass_with_its_own_write_is_asked(tmp_path: Path):
    """A LocalStorage subclass (register_scheme) that overrides write() is
    asked for every write, as probe() already respects an exists() override."""
    written: list[str] = []

    class Audited(LocalStorage):
        def __init__(self, url: str) -> None:
            super().__init__(url.partition("://")[2])

        def write(self, name: str, data: bytes) -> None:
            written.append(name)
            super().write(name, data)

    register_scheme("audited", Audited)
    with sos.Dict(f"audited://{tmp_path / 's'}") as db:
        for n in range(3):
            db["a"] = n
    assert written.count(_format.key_relpath("a")) == 3, written


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

"""A plain set's write on the local storage, in one frame (issue "Hot paths at
the floor").

What a plain ``db[k] = v`` does locally is what the general path does (the
store's lock shared, the pending-record check, the durable replace of
:func:`sos.storage.atomic.write_file`, the lock released), with the same
system calls in the same order. Only the layers go: the general path spends
about as long in Python calls between those system calls as a durable replace
on tmpfs takes (docs/architecture.md, "Durable writes"). Every filesystem
step still goes through :data:`sos.storage.atomic.ops`, read at each call,
so the crash-point, power-loss and fault suites stop, record or break this
path as they do the others.

Whatever this path does not handle, it leaves untouched and says so
(``False``): the caller then takes the general path, which handles it (the
first write of a handle or of a forked child, this thread already holding the
lock, a transaction record to finish first, a subclass with its own write,
exists, lock or lock class, Windows). A missing fan-out directory is handed
to :meth:`LocalStorage.write` under the lock already held.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from sos.format.names import TXN_RECORD as RECORD
from sos.storage import atomic as _atomic
from sos.storage import forks
from sos.storage.fileops import At, with_path
from sos.storage.holders import HOLDERS
from sos.storage.locks import StoreLock, drop_descriptor, locking_error

with contextlib.suppress(ImportError):  # Windows: the general path, never this one
    from fcntl import LOCK_SH, LOCK_UN, flock

__all__ = ["write_plain"]

_WINDOWS = os.name == "nt"
_held = HOLDERS._held  # one dict operation per call, as HOLDERS' own methods make
_get_ident = threading.get_ident
# A subclass that makes its own write, exists, lock or write_plain (a storage plugged
# in with register_scheme) is served by the general path, which calls them: class ->
# True where this path may run, decided on first use (a method patched onto the
# class later is not seen: patch before the first write, or patch write_plain too).
_SERVED: dict[type, bool] = {}
_OWN = ("write", "exists", "acquire", "release", "held", "_at", "_checked", "write_plain")


def _served(cls: type) -> bool:
    # LocalStorage: the class whose write_plain is this very function
    base = next((c for c in cls.__mro__ if c.__dict__.get("write_plain") is write_plain), None)
    served = base is not None and all(getattr(cls, n) is getattr(base, n) for n in _OWN)
    _SERVED[cls] = served
    return served


def write_plain(storage: Any, name: str, data: bytes) -> bool:
    """``LocalStorage.write_plain``: replace ``name`` with ``data`` under the
    shared lock, durably; False (nothing done, no lock held) where the general
    path must do it. (``storage`` is a LocalStorage, whose module imports this one.)"""
    if _WINDOWS:  # no flock: sos.storage.windows' lock, by the general path
        return False
    served = _SERVED.get(type(storage))
    if not (served or (served is None and _served(type(storage)))):
        return False
    lock = storage._lock
    if type(lock) is not StoreLock:  # a subclass's own lock: its acquire decides
        return False
    if lock._fd_forks != forks.count:
        return False  # a forked child (its thread lock may be a parent thread's)
    thread_lock = lock._thread_lock
    thread_lock.acquire()
    try:
        if lock._depth:  # held by this thread already: the general path re-enters it
            return False
        # Read under the thread lock, which close() from another thread takes too:
        # the descriptor (and the At made on it) cannot be closed and reused meanwhile.
        fd = lock._fd
        if fd < 0 or fd != storage._ats_fd:
            return False  # not yet written through this descriptor (a first write)
        at = storage._ats.get(name)
        if at is None:
            at = storage._at(name)
            if type(at) is not At or at.up is None:
                return False
        holder = (lock._identity, _get_ident())
        other = _held.get(holder)
        if other is not None and other is not lock:
            HOLDERS.refuse_another(lock._identity, lock, lock._directory)  # raises
        _held[holder] = lock
        lock._depth, lock._exclusive = 1, False
        try:  # the flock inside: an interrupt as it returns still reaches the unlock
            try:
                flock(fd, LOCK_SH)
            except OSError as exc:
                raise locking_error(exc, lock._directory) from exc
            try:  # storage.exists(RECORD)'s first stat, inline
                os.stat(storage._paths.get(RECORD) or storage._prefix + RECORD)
            except FileNotFoundError:
                pass
            except OSError:  # what the general path says of it, or raises
                if storage.exists(RECORD):
                    return False
            else:
                return False  # a crashed transaction's record: the general path finishes it
            try:
                _atomic.replace(at, data)  # at.up is the held directory's At
            except FileNotFoundError:  # its directory is gone: the general path makes it
                storage.write(name, data)
            except OSError as exc:
                raise with_path(exc, at) from None
        finally:
            try:
                try:  # as StoreLock.release: after a commit, never raising
                    flock(fd, LOCK_UN)
                except (OSError, ValueError):
                    drop_descriptor(lock)
            finally:  # after the unlock: an interrupt before it cannot leave it held
                lock._depth = 0
                _held.pop(holder, None)
    finally:
        thread_lock.release()
    return True

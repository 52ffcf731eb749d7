"""The public watchers: a thread-backed iterator and an async one."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from sos.errors import Error
from sos.watch.change import Change
from sos.watch.core import _Core, _kind_of

if TYPE_CHECKING:
    import asyncio
# asyncio itself is imported by the async methods, which only run inside an
# event loop: importing it costs every `sos` command ~25 ms (ssl included).

# -- the public face -------------------------------------------------------------------


class Watcher:
    """Changes to a store, as an iterator; stop it with :meth:`close`.

    Also a context manager. A ``for`` loop over it closes it when the loop
    ends, by ``break`` or by an exception, so no event thread outlives the
    loop. ``get(timeout)`` waits for one change without a loop.
    """

    def __init__(self, store: Any, *, poll: float | None = None, native: bool | None = None):
        _kind_of(store)
        if store.closed:
            raise ValueError(f"watch(): {store!r} is closed")
        self._core = _Core(store, poll, native)
        self._ready: deque[Change] = deque()

    @property
    def native(self) -> bool:
        """True if OS events drive this watcher, False if it polls."""
        return self._core.native

    @property
    def closed(self) -> bool:
        return self._core.closed

    def get(self, timeout: float | None = None) -> Change | None:
        """The next change, waiting up to ``timeout`` seconds (None: forever).

        None if the time ran out; raises :class:`~sos.ClosedError` once closed.
        """
        core = self._core
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._ready:
                return self._ready.popleft()
            if core.closed:
                from sos.errors import ClosedError

                raise ClosedError(f"watcher of {core.path} is closed", core.path)
            self._ready.extend(core.collect())
            if self._ready:
                continue
            now = time.monotonic()
            if end is not None and now >= end:
                return None
            wait = core.deadline() - now
            if end is not None:
                wait = min(wait, end - now)
            if wait > 0:
                core.wake.wait(wait)

    def __next__(self) -> Change:
        try:
            change = self.get()
        except Error:
            if self._core.closed:
                raise StopIteration from None
            raise
        assert change is not None
        return change

    def __iter__(self) -> Iterator[Change]:
        # A generator that closes the watcher when the loop leaves it (break,
        # exception, or the generator being dropped): it holds the watcher,
        # the watcher does not hold it, so dropping the loop frees both.
        try:
            while not self._core.closed:
                yield next(self)
        except StopIteration:
            return
        finally:
            self.close()

    def close(self) -> None:
        """Stop watching; joins the event threads. Safe to call twice, from any thread."""
        self._core.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.closed:
            core.close()

    def __repr__(self) -> str:
        how = "native" if self._core.native else f"poll={self._core.interval}"
        state = " (closed)" if self._core.closed else ""
        return f"<sos watcher of {self._core.path!r} {how}{state}>"


def watch(store: Any, *, poll: float | None = None, native: bool | None = None) -> Watcher:
    """Watch an open :class:`~sos.Dict` or :class:`~sos.List` for changes.

    ``native=None`` (the default) uses OS events when watchdog is installed,
    the store is a local directory and the platform's events scale (inotify,
    FSEvents, Windows); else it polls every :data:`DEFAULT_POLL` seconds, or
    less often on a store so big that a pass would use more than about 5% of
    a core. ``poll=SECONDS`` forces polling at exactly that interval;
    ``native=True`` requires events (an :class:`~sos.Error` if there are
    none). Changes made after this returns are reported; the store's
    contents at the start are not. docs/watch.md has the semantics and costs.
    """
    return Watcher(store, poll=poll, native=native)


class AsyncWatcher:
    """``async for change in awatch(db)``: the same changes, for asyncio.

    The waiting is the event loop's (no thread sits blocked); reading the
    files runs in the loop's default executor, so a big rescan never stalls
    the loop. ``aclose()`` or ``async with`` stops it; so does leaving an
    ``async for`` loop by an exception or ``break`` once the iterator is
    dropped.
    """

    def __init__(self, store: Any, *, poll: float | None = None, native: bool | None = None):
        _kind_of(store)
        if store.closed:
            raise ValueError(f"awatch(): {store!r} is closed")
        self._store = store
        self._options = (poll, native)
        self._core: _Core | None = None
        self._ready: deque[Change] = deque()
        self._event: asyncio.Event | None = None
        self._closed = False

    async def _start(self) -> _Core:
        import asyncio

        if self._core is None:
            loop = asyncio.get_running_loop()
            self._event = event = asyncio.Event()
            poll, native = self._options
            core = await asyncio.to_thread(_Core, self._store, poll, native)
            if self._closed:
                core.close()
            self._core = core

            def waker() -> None:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(event.set)

            core.wakers.append(waker)
        return self._core

    def __aiter__(self) -> AsyncIterator[Change]:
        return self

    async def __anext__(self) -> Change:
        import asyncio

        if self._closed:
            raise StopAsyncIteration
        core = await self._start()
        event = self._event
        assert event is not None
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._closed or core.closed:
                raise StopAsyncIteration
            event.clear()
            self._ready.extend(await asyncio.to_thread(core.collect))
            if self._ready:
                continue
            wait = core.deadline() - time.monotonic()
            if wait > 0 and not event.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), wait)

    async def aclose(self) -> None:
        """Stop watching; joins the event threads (in the executor)."""
        import asyncio

        self._closed = True
        core, self._core = self._core, None
        if core is not None:
            if self._event is not None:
                self._event.set()
            await asyncio.to_thread(core.close)

    async def __aenter__(self) -> AsyncWatcher:
        """Start watching now: changes made after entering are reported."""
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.closed:
            core.close()


def awatch(store: Any, *, poll: float | None = None, native: bool | None = None) -> AsyncWatcher:
    """As :func:`watch`, for ``async for``."""
    return AsyncWatcher(store, poll=poll, native=native)

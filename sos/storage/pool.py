"""A bounded pool of calls in flight, results in the order asked.

Generic (any storage whose calls have latency, and check's per-directory
scan, use it); the pool size of object storage is read here too.

Iterating a store on object storage is one request per document: sent one at
a time, a 10,000-key store costs 10,000 round trips in a row. :func:`ordered`
keeps up to ``workers`` of them in flight and hands results back in the
order of the input, taking the next input only as a result is handed out, so
memory stays flat in the store's size (at most twice ``workers`` results
wait) and a caller that stops early leaves at most ``workers`` requests to
finish.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, TypeVar

from sos.errors import Error

if TYPE_CHECKING:
    import concurrent.futures

__all__ = ["DEFAULT_POOL", "POOL_VARIABLE", "ordered", "pool_size"]

#: Requests a store on object storage keeps in flight when reading or
#: writing many documents, unless ``SOS_S3_POOL`` or the ``pool`` option says.
DEFAULT_POOL = 16
POOL_VARIABLE = "SOS_S3_POOL"
_MAX_POOL = 256

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def pool_size(option: object = None, where: str = "") -> int:
    """The pool size: the ``pool`` option if given, else ``SOS_S3_POOL``,
    else :data:`DEFAULT_POOL`. A bad value is a clear :class:`~sos.Error`."""
    source, value = ("the pool option", option)
    if option is None:
        source, value = (POOL_VARIABLE, os.environ.get(POOL_VARIABLE))
        if value is None or value == "":
            return DEFAULT_POOL
    try:
        size = int(str(value))
    except ValueError:
        size = 0
    if not 1 <= size <= _MAX_POOL:
        raise Error(
            f"{where + ': ' if where else ''}{source} must be a whole number from 1 to "
            f"{_MAX_POOL}, not {str(value)!r:.40}",
            where or None,
        )
    return size


def ordered(
    fn: Callable[[_In], _Out], items: Iterable[_In], workers: int
) -> Generator[_Out, None, None]:
    """``map(fn, items)`` with up to ``workers`` calls running at once,
    results in input order. An exception is raised where its result would
    have been yielded; the calls already started finish first."""
    if workers <= 1:
        yield from map(fn, items)
        return
    import concurrent.futures  # when there is a pool: 8 ms every store would pay

    source = iter(items)
    window: collections.deque[concurrent.futures.Future[_Out]] = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sos-s3") as pool:
        try:
            for item in source:
                window.append(pool.submit(fn, item))
                if len(window) >= 2 * workers:
                    break
            while window:
                result = window.popleft().result()
                for item in source:  # refill one: the window stays bounded
                    window.append(pool.submit(fn, item))
                    break
                yield result
        finally:
            for future in window:
                future.cancel()

"""Reading what can be read from a damaged store."""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

from sos import format as _format
from sos.check.files import _data_names, _open_files
from sos.errors import Error


def iter_readable(
    path: str | os.PathLike[str],
    on_error: Callable[[Error], None],
    store: Any = None,
) -> Iterator[tuple[str | int, Any]]:
    """Every readable ``(key, value)`` of a store (a List: ``(index, value)``),
    going past damaged files: each one is passed to ``on_error`` instead of
    ending the iteration.

    For tools that must salvage what they can (``sos keys`` and ``sos dump``
    during a git conflict); the stores themselves raise at the first damaged
    file, so that no program mistakes a damaged store for a smaller one. A
    Dict's keys come sorted; a List's indexes are those of its manifest (a
    damaged item keeps its index, so the indexes printed are those ``sos get``
    takes). Raises :class:`Error` if ``path`` is not a store. ``store``, an
    open handle of the same store, is read through where it can be (inside
    its ``reading()`` block, say).
    """
    from sos.core.dict import Dict
    from sos.core.kinds import read_kind
    from sos.core.list import List

    # An open handle knows its kind and has refused a non-store already.
    kind = "list" if isinstance(store, List) else "dict" if isinstance(store, Dict) else None
    given = kind is not None
    kind = kind or read_kind(path)
    if kind is None:
        raise Error(f"{os.fspath(path)}: not a sos store (no {_format.METADATA_NAME})", path)
    if kind == "list":
        own = not isinstance(store, List)
        with List(path, create=False) if own else contextlib.nullcontext(store) as lst:
            try:
                length = len(lst)
            except Error as exc:
                on_error(exc)
                return
            for index in range(length):
                try:
                    value = lst[index]
                except IndexError:  # shortened meanwhile
                    return
                except Error as exc:
                    on_error(exc)
                    continue
                yield index, value
        return
    if not given:
        Dict(path, create=False).close()  # the same refusal of a non-store as the stores
    files = _open_files(path)
    try:
        pairs = []
        names = _data_names(files)
        for name, read in zip(names, files.read_ahead(names), strict=True):
            try:
                key, value = _format.decode_document(read(), files.where(name))
                _format.check_document_name(key, files.where(name), posixpath.basename(name))
            except FileNotFoundError:
                continue
            except Error as exc:
                on_error(exc)
                continue
            except OSError as exc:
                on_error(Error(f"{files.where(name)}: {exc.strerror}", files.where(name)))
                continue
            pairs.append((key, value))
    finally:
        files.close()
    yield from sorted(pairs, key=lambda pair: pair[0])

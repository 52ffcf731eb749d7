"""A List's index arithmetic, as ``list`` does it: which index, which error."""

from __future__ import annotations

import operator


def _as_index(index: object) -> int:
    try:
        return operator.index(index)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"list indices must be integers or slices, not {type(index).__name__}"
        ) from None


def _normalize(index: int, length: int, message: str) -> int:
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(message)
    return index

"""PATTERN: the shell-style glob that ``sos keys`` and ``sos dump`` take."""

from __future__ import annotations

import fnmatch

import sos
from sos.cli.framework import Store, UsageError, arg

PATTERN = arg(
    "pattern",
    metavar="PATTERN",
    nargs="?",
    help="only the keys that match this shell-style glob (*, ?, [seq]; case-sensitive); "
    "quote it so the shell leaves it alone",
)


def matches(key: str | int, pattern: str | None) -> bool:
    """Whether a Dict key is selected by PATTERN (``fnmatch``, case-sensitive
    on every system, so a listing does not depend on where it runs)."""
    return pattern is None or fnmatch.fnmatchcase(str(key), pattern)


def check_pattern(db: Store, pattern: str | None) -> None:
    """A List's keys are its indexes, which a glob would select by their
    digits: PATTERN is for a Dict's keys only, and is refused for a List."""
    if pattern is not None and isinstance(db, sos.List):
        raise UsageError(
            f"{db.path} is a list: PATTERN selects a dict's keys; "
            "a list's items are chosen by index (sos get STORE INDEX)"
        )

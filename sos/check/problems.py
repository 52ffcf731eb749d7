"""What a check finds: codes that know whether repair fixes them, and problems."""

from __future__ import annotations

import enum
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sos.errors import Error

# A progress reporter: called with the number of files to read, returns an
# object whose ``update(n)`` is called as they are read (``tqdm(total=n)`` fits).
Progress = Callable[[int], Any]


class Code(str, enum.Enum):
    """What a :class:`Problem` is. A ``str``, so ``problem.code == "temp-file"`` works.

    ``repairable``: ``check(repair=True)`` fixes it; otherwise it needs a
    person (repair never guesses which bytes of a value are right).
    """

    TEMP_FILE = "temp-file", True
    MISPLACED = "misplaced", True
    METADATA = "metadata", True
    ORPHAN_ITEM = "orphan-item", True
    MISSING_ITEM = "missing-item", True
    DUPLICATE_ENTRY = "duplicate-entry", True
    BAD_MANIFEST = "bad-manifest", True
    PENDING_TRANSACTION = "pending-transaction", True
    DIRECTORY_MARKER = "directory-marker", True
    INVALID_JSON = "invalid-json", False
    FOREIGN_FILE = "foreign-file", False
    CONFLICT_MARKERS = "conflict-markers", False
    BAD_SHAPE = "bad-shape", False
    KEY_CONFLICT = "key-conflict", False
    UNMERGED = "unmerged", False
    NOT_A_DIRECTORY = "not-a-directory", False
    SCHEMA = "schema", False

    repairable: bool

    def __new__(cls, value: str, repairable: bool) -> Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.repairable = repairable
        return member

    def __str__(self) -> str:  # the code itself, on every Python (3.11 changed the default)
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @property
    def settles_the_manifest(self) -> bool:
        """Repaired together, by one rewrite of a List's ``order.txt``."""
        return self in _MANIFEST_CODES


_BY_VALUE: dict[str, Code] = {code.value: code for code in Code}


_MANIFEST_CODES = frozenset(
    {Code.ORPHAN_ITEM, Code.MISSING_ITEM, Code.DUPLICATE_ENTRY, Code.BAD_MANIFEST}
)


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`check`.

    ``code`` is a :class:`Code` (a ``str``: ``temp-file``, ``orphan-item``,
    ``invalid-json``, ``foreign-file``, ``conflict-markers``, ``bad-shape``,
    ``misplaced``, ``key-conflict``, ``metadata``, ``missing-item``,
    ``duplicate-entry``, ``bad-manifest``, ``unmerged``, ``not-a-directory``,
    ``directory-marker``, ``pending-transaction``, ``schema``); ``code.repairable``
    says whether repair fixes it. ``action`` is what repair did, or the exact
    command that resolves it.
    """

    code: Code
    path: str
    message: str
    key: str | None = None
    line: int | None = None
    column: int | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        code = _BY_VALUE.get(self.code)
        if code is None:
            raise ValueError(f"{self.code!r} is not a sos.check problem code")
        object.__setattr__(self, "code", code)

    def __str__(self) -> str:
        text = self.message
        if self.action:
            text += f" [{self.action}]"
        return text


class RepairFailed(Error):
    """``check(repair=True)`` could not do every repair it meant to.

    The message names each one not done (with the original finding, which
    says what repair would have done) and what to do next; ``problems`` is
    every finding, with what was done to it.
    """

    problems: list[Problem] = []
    failed: list[Problem] = []

    @classmethod
    def of(cls, root: str, problems: list[Problem], failed: list[Problem]) -> RepairFailed:
        lines = [f"  {p.code}: {p}" for p in failed]
        error = cls(
            f"{root}: repair did not finish: {len(failed)} of {len(problems)} finding(s) "
            "could not be repaired and are still to do:\n" + "\n".join(lines) + "\n"
            f"fix the cause, then run {shlex.join(['sos', 'check', '--repair', root])} again",
            root,
        )
        error.problems = problems
        error.failed = failed
        return error


# -- helpers ----------------------------------------------------------------------------


def _not_done(problem: Problem, exc: BaseException) -> Problem:
    """``problem`` with an action saying its repair failed, what it was, and why."""
    meant = f" ({problem.action})" if problem.action else ""
    return replace(problem, action=f"NOT repaired{meant}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """Why an operation failed, naming the file: an OSError's own text, or a sos.Error's."""
    if isinstance(exc, OSError) and not isinstance(exc, Error) and exc.strerror:
        name = f"{exc.filename}: " if exc.filename else ""
        return f"{name}{exc.strerror}"
    return str(exc)

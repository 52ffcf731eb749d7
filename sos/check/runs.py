"""sos.check.runs"""

from __future__ import annotations

from sos import format as _format
from sos import txn as _txn
from sos.check.files import _STAT_AT_MOST, _Files
from sos.check.problems import Code, Problem
from sos.format.order import (
    Order,
    Run,
    parse_lines,
    split_id,
)


def _missing_runs(order: Order, items: dict[str, str], files: _Files) -> list[Run]:
    """The runs of ``order`` whose item files do not exist. An id not among
    the valid, well placed ``items`` may still have a file (a damaged one: its
    own problem says so, and it is the user's item); only runs of up to
    :data:`_STAT_AT_MOST` ids are looked at file by file."""
    return [
        run
        for part in order.missing(items)
        for run in (
            Order.from_ids(
                i for i in Order([part]) if not files.exists(_format.key_relpath(i))
            ).runs
            if part.size <= _STAT_AT_MOST
            else [part]
        )
    ]


def _conflict_runs(data: bytes) -> tuple[list[Run], list[int]] | None:
    """A conflicted manifest's runs: common, ours, then theirs; and bad line numbers."""
    sides = _format.split_conflict(data)
    if sides is None:
        return None
    runs: list[Run] = []
    bad: list[int] = []
    for side in sides:
        side_runs, side_bad = _parse_runs(side)
        runs += side_runs
        bad += side_bad
    # The common lines appear in both sides; keeping each id's first place
    # drops the second copy. Order: ours (with common), then what theirs adds.
    return runs, bad


def _parse_runs(data: bytes) -> tuple[list[Run], list[int]]:
    """The runs of a manifest, skipping (and returning the numbers of) bad lines."""
    runs: list[Run] = []
    bad: list[int] = []
    for number, _, run in parse_lines(data.decode("ascii", errors="replace")):
        if run is None:
            bad.append(number)
        else:
            runs.append(run)
    return runs, bad


def _pending(files: _Files) -> Problem:
    path = files.where(_txn.RECORD)
    return Problem(
        Code.PENDING_TRANSACTION,
        path,
        f"{path}: a committed transaction is not fully applied (a crash); "
        "the next write or open of the store finishes it",
        action="repair rolls it forward",
    )


def _describe(run: Run) -> str:
    if run.size == 1:
        return f"item {run.prefix}-{run.first}"
    return f"items {run.prefix}-{run.first} to {run.prefix}-{run.last}"


def _is_item_id(key: str) -> bool:
    try:
        split_id(key)
    except ValueError:
        return False
    return True

"""A List's order: runs of consecutive item ids, and the manifest that holds them.

An item id is ``PREFIX-N``: PREFIX is random per writing handle (16 hex
digits, so two machines never collide), N counts up within it. A handle that
appends extends its own run, so appending to a list of any length rewrites
one short line, not one line per item. The manifest is text, one run per line:

    # sos list order: one run of item ids per line
    3f9c0a1b2c3d4e5f 0-99999
    a1b2c3d4e5f60718 7
    3f9c0a1b2c3d4e5f 100000-100002

``A-B`` is inclusive and counts down when A > B (so ``reverse()`` stays
short). Two clones that both append each add their own line at the end, which
git's ``merge=union`` keeps side by side. Pure: no I/O here.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ._errors import CorruptError

__all__ = ["HEADER", "Order", "Run", "decode_runs", "parse_lines", "split_id"]

HEADER = b"# sos list order: one run of item ids per line (PREFIX FIRST-LAST)\n"
_LINE = re.compile(r"([0-9a-z]+) (0|[1-9][0-9]*)(?:-(0|[1-9][0-9]*))?\Z")
_ID = re.compile(r"([0-9a-z]+)-(0|[1-9][0-9]*)\Z")


def split_id(item_id: str) -> tuple[str, int]:
    match = _ID.match(item_id)
    if match is None:
        raise ValueError(f"not an item id: {item_id!r}")
    return match.group(1), int(match.group(2))


class Run(NamedTuple):
    """Ids ``prefix-first`` … ``prefix-last``, one step at a time, inclusive."""

    prefix: str
    first: int
    last: int

    @property
    def size(self) -> int:
        return abs(self.last - self.first) + 1

    @property
    def step(self) -> int:
        return 1 if self.last >= self.first else -1

    def number_at(self, offset: int) -> int:
        return self.first + self.step * offset

    def numbers(self) -> range:
        return range(self.first, self.last + self.step, self.step)

    def sub(self, start: int, stop: int) -> Run:
        """The run of offsets ``start`` … ``stop - 1``."""
        return Run(self.prefix, self.number_at(start), self.number_at(stop - 1))

    def reversed(self) -> Run:
        return Run(self.prefix, self.last, self.first)

    def contains(self, prefix: str, number: int) -> bool:
        low, high = sorted((self.first, self.last))
        return prefix == self.prefix and low <= number <= high

    def encode(self) -> str:
        if self.first == self.last:
            return f"{self.prefix} {self.first}"
        return f"{self.prefix} {self.first}-{self.last}"


def _joined(a: Run, b: Run) -> Run | None:
    """``a`` then ``b`` as one run, if their ids continue one another."""
    if a.prefix != b.prefix:
        return None
    for step in (1, -1):
        fits = (a.size == 1 or a.step == step) and (b.size == 1 or b.step == step)
        if fits and b.first == a.last + step:
            return Run(a.prefix, a.first, b.last)
    return None


class Order:
    """An immutable sequence of item ids, stored as runs."""

    __slots__ = ("_ends", "_lookup", "runs")

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        merged: list[Run] = []
        for run in runs:
            joined = _joined(merged[-1], run) if merged else None
            if joined is None:
                merged.append(run)
            else:
                merged[-1] = joined
        self.runs = merged
        ends = []
        # Per run: "prefix-", its first number, its step and its first index,
        # so that id_at is a bisect and one format (lst[i] is a hot path).
        lookup = []
        total = 0
        for run in merged:
            lookup.append((f"{run.prefix}-", run.first, run.step, total))
            total += run.size
            ends.append(total)
        self._ends = ends
        self._lookup = lookup

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> Order:
        return cls(Run(p, n, n) for p, n in map(split_id, ids))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Order) and self.runs == other.runs

    def id_at(self, index: int) -> str:
        """The id at ``0 <= index < len(self)``."""
        head, first, step, start = self._lookup[bisect.bisect_right(self._ends, index)]
        return f"{head}{first + step * (index - start)}"

    def __iter__(self) -> Iterator[str]:
        for run in self.runs:
            prefix = run.prefix
            for number in run.numbers():
                yield f"{prefix}-{number}"

    def ids(self) -> list[str]:
        return list(self)

    def contains(self, item_id: str) -> bool:
        prefix, number = split_id(item_id)
        return any(run.contains(prefix, number) for run in self.runs)

    def _cut(self, start: int, stop: int) -> list[Run]:
        """The runs covering positions ``start`` … ``stop - 1``."""
        out = []
        r = bisect.bisect_right(self._ends, start)
        while r < len(self.runs) and start < stop:
            run = self.runs[r]
            run_start = self._ends[r] - run.size
            lo = start - run_start
            hi = min(stop, self._ends[r]) - run_start
            out.append(run.sub(lo, hi))
            start = run_start + hi
            r += 1
        return out

    def splice(self, start: int, stop: int, new: Order | Iterable[str]) -> Order:
        """Positions ``start`` … ``stop - 1`` replaced by ``new``; O(runs), not O(items)."""
        new_order = new if isinstance(new, Order) else Order.from_ids(new)
        if start == stop == len(self) and self.runs:
            return Order([*self.runs, *new_order.runs])
        head = self._cut(0, start)
        tail = self._cut(stop, len(self))
        return Order([*head, *new_order.runs, *tail])

    def reversed(self) -> Order:
        return Order(run.reversed() for run in reversed(self.runs))

    def encode(self) -> bytes:
        return HEADER + "".join(run.encode() + "\n" for run in self.runs).encode("ascii")

    @classmethod
    def decode(cls, data: bytes, path: str) -> Order:
        """The order a manifest names, each id counted once (at its first place)."""
        return cls(_first_occurrences(decode_runs(data, path)))


def decode_runs(data: bytes, path: str) -> list[Run]:
    """Every run a manifest names, repeats included; CorruptError on a bad line."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CorruptError(
            f"{path}: the manifest is not ASCII text (byte {exc.start})", path
        ) from None
    runs = []
    for number, line, run in parse_lines(text):
        if run is None:
            hint = (
                " (git conflict markers: run sos check --repair)"
                if line[:7] in ("<<<<<<<", "=======", ">>>>>>>")
                else ""
            )
            raise CorruptError(
                f"{path}: line {number}: expected 'PREFIX FIRST-LAST', found {line[:60]!r}{hint}",
                path,
                number,
                1,
            )
        runs.append(run)
    return runs


def parse_lines(text: str) -> Iterator[tuple[int, str, Run | None]]:
    """(line number, stripped line, its run or None if it is not one) for each
    line of a manifest that is neither blank nor a comment. The one grammar of
    a run line: readers stop at a bad line, ``sos check`` collects them."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            yield number, line, None
            continue
        first = int(match.group(2))
        last = first if match.group(3) is None else int(match.group(3))
        yield number, line, Run(match.group(1), first, last)


def _first_occurrences(runs: list[Run]) -> list[Run]:
    """``runs`` with every id named a second time dropped.

    A union merge of two clones that both extended a shared run keeps both
    versions of the line; the first occurrence is the right place for each id
    (``sos check`` still reports the manifest, ``--repair`` rewrites it).
    Overlaps are found per prefix on intervals, so the common case costs no
    walk over the ids.
    """
    spans: dict[str, list[tuple[int, int]]] = {}
    for run in runs:
        spans.setdefault(run.prefix, []).append(tuple(sorted((run.first, run.last))))
    if not any(_overlapping(intervals) for intervals in spans.values() if len(intervals) > 1):
        return runs
    seen: set[tuple[str, int]] = set()
    kept: list[Run] = []
    for run in runs:
        for number in run.numbers():
            if (run.prefix, number) not in seen:
                seen.add((run.prefix, number))
                kept.append(Run(run.prefix, number, number))
    return kept


def _overlapping(intervals: list[tuple[int, int]]) -> bool:
    intervals.sort()
    return any(b[0] <= a[1] for a, b in itertools.pairwise(intervals))

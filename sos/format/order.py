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

A manifest comes from anywhere (git, rsync, a hostile sender), and 40 bytes
can name 10^12 ids: nothing here expands a run into its ids to answer a
length, an index, a membership, a repeat or a missing item. That is
arithmetic on runs, bounded by the number of runs (and of item files). Only
:meth:`Order.__iter__` and :meth:`Order.ids` walk ids, for callers that
touch every item anyway.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from sos.errors import CorruptError
from sos.format.names import text_of

__all__ = [
    "HEADER",
    "MAX_ITEMS",
    "MAX_NUMBER",
    "Order",
    "Run",
    "decode_runs",
    "guess_order",
    "parse_lines",
    "repeated",
    "split_id",
]

HEADER = b"# sos list order: one run of item ids per line (PREFIX FIRST-LAST)\n"
# An id's NUMBER fits a signed 64-bit integer, so every language can hold it.
MAX_NUMBER = 2**63 - 1
_MAX_DIGITS = len(str(MAX_NUMBER))
# Each item is one file, and no filesystem holds more than 2^32 files (ext4,
# XFS inode numbers in practice): a manifest naming more ids is damaged or
# hostile, whatever it costs to read.
MAX_ITEMS = 2**32
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

    __slots__ = ("_ends", "_intervals", "_lookup", "runs")

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
        # prefix -> (sorted disjoint [lo, hi] starts, their ends), built on first use
        self._intervals: dict[str, tuple[list[int], list[int]]] | None = None

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

    def ids_at(self, indexes: range) -> Iterator[str]:
        """The ids at ``indexes`` (a ``range(len(self))[some_slice]``), one by
        one: a slice costs its own length, not the list's."""
        return map(self.id_at, indexes)

    def contains(self, item_id: str) -> bool:
        """``item_id in self``: a bisect in the prefix's intervals, O(log runs)."""
        try:
            prefix, number = split_id(item_id)
        except ValueError:
            return False
        intervals = self._prefix_intervals().get(prefix)
        if intervals is None:
            return False
        starts, ends = intervals
        i = bisect.bisect_right(starts, number) - 1
        return i >= 0 and number <= ends[i]

    def _prefix_intervals(self) -> dict[str, tuple[list[int], list[int]]]:
        if self._intervals is None:
            spans: dict[str, list[tuple[int, int]]] = {}
            for run in self.runs:
                spans.setdefault(run.prefix, []).append(_span(run))
            self._intervals = {p: _merged(v) for p, v in spans.items()}
        return self._intervals

    def index_of(self, item_id: str) -> int | None:
        """The first index of ``item_id``, or None: O(runs), no id is made."""
        try:
            prefix, number = split_id(item_id)
        except ValueError:
            return None
        start = 0
        for run in self.runs:
            if run.contains(prefix, number):
                return start + abs(number - run.first)
            start += run.size
        return None

    @classmethod
    def unique(cls, runs: Iterable[Run]) -> Order:
        """The order ``runs`` name, each id once, at its first place (as a
        reader sees a manifest): arithmetic, bounded by the runs."""
        return cls(_first_occurrences(list(runs)))

    def without(self, removed: Iterable[Run]) -> Order:
        """This order with the ids of ``removed`` left out (``sos check
        --repair`` dropping missing items): O(runs log runs)."""
        spans: dict[str, list[tuple[int, int]]] = {}
        for run in removed:
            spans.setdefault(run.prefix, []).append(_span(run))
        if not spans:
            return self
        holes = {prefix: _merged(v) for prefix, v in spans.items()}
        kept: list[Run] = []
        for run in self.runs:
            lo, hi = _span(run)
            starts, ends = holes.get(run.prefix, ([], []))
            i = bisect.bisect_left(ends, lo)
            j = bisect.bisect_right(starts, hi)
            cut = [(max(lo, starts[k]), min(hi, ends[k])) for k in range(i, j)]
            kept += _in_direction(run, _gaps(lo, hi, cut))
        return Order(kept)

    def missing(self, present: Iterable[str]) -> list[Run]:
        """The runs of ids this order names that are not in ``present`` (the
        ids whose files exist), in order: O((runs + present) log present)."""
        numbers: dict[str, list[int]] = {}
        for item_id in present:
            try:
                prefix, number = split_id(item_id)
            except ValueError:
                continue
            numbers.setdefault(prefix, []).append(number)
        for values in numbers.values():
            values.sort()
        out: list[Run] = []
        for run in self.runs:
            lo, hi = _span(run)
            have = numbers.get(run.prefix, [])
            inside = have[bisect.bisect_left(have, lo) : bisect.bisect_right(have, hi)]
            gaps = _gaps(lo, hi, [(n, n) for n in inside])
            out += _in_direction(run, gaps)
        return out

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
        order = cls(_first_occurrences(decode_runs(data, path)))
        if len(order) > MAX_ITEMS:
            raise CorruptError(
                f"{path}: names {len(order)} items, more than a filesystem holds files "
                f"(at most {MAX_ITEMS}): the manifest is damaged (sos check --repair)",
                path,
            )
        return order


def decode_runs(data: bytes, path: str) -> list[Run]:
    """Every run a manifest names, repeats included; CorruptError on a bad line.

    The first line must be a comment, the header: every writer writes
    :data:`HEADER`, so a manifest without it (an empty file included) was cut
    short or is not one. (Only the ``#`` is required: hand-made manifests
    with another first comment were always read.)
    """
    text = text_of(data, path, "the manifest", "ascii")
    runs = []
    for number, line, run in parse_lines(text):
        if run is None:
            raise CorruptError(
                f"{path}: line {number}: {_why_not_a_run(line)}",
                path,
                number,
                1,
            )
        runs.append(run)
    if not data.startswith(b"#"):
        found = "is empty" if not data else f"starts with {data[:40]!r}"
        raise CorruptError(
            f"{path}: {found}, not with the header line {HEADER.decode().strip()!r}: "
            "not a whole manifest (sos check --repair rewrites it)",
            path,
            1,
            1,
        )
    return runs


def guess_order(ids: Iterable[str], earliest: Callable[[str, list[int]], float | None]) -> Order:
    """``ids`` in the best order that can be told without a manifest.

    Within one prefix (one writing handle), by number: the order the handle
    made them, which is the list's order for appends. Across prefixes there
    is nothing but time: a prefix comes before another if ``earliest(prefix,
    numbers)``, the earliest modification time of its items, is earlier (a
    prefix whose time is unknown goes last; ties by prefix). ``earliest`` is
    called only when there is more than one prefix. ``sos check --repair``
    and ``sos adopt`` use it; both say the order across prefixes is a guess.
    """
    numbers: dict[str, list[int]] = {}
    for item_id in ids:
        prefix, number = split_id(item_id)
        numbers.setdefault(prefix, []).append(number)
    for values in numbers.values():
        values.sort()
    prefixes = sorted(numbers)
    if len(prefixes) > 1:
        times = {p: earliest(p, numbers[p]) for p in prefixes}
        never = float("inf")
        prefixes.sort(key=lambda p: (never if times[p] is None else times[p], p))
    return Order(Run(p, n, n) for p in prefixes for n in dict.fromkeys(numbers[p]))


def _why_not_a_run(line: str) -> str:
    if line[:7] in ("<<<<<<<", "=======", ">>>>>>>"):
        return f"found {line[:60]!r} (git conflict markers: run sos check --repair)"
    match = _LINE.match(line)
    if match is None:
        return f"expected 'PREFIX FIRST-LAST', found {line[:60]!r}"
    digits = max(len(match.group(2)), len(match.group(3) or ""))
    if (
        digits > _MAX_DIGITS
        or _number(match.group(2)) is None
        or (match.group(3) is not None and _number(match.group(3)) is None)
    ):
        return f"a number with {digits} digits, above {MAX_NUMBER} (2^63 - 1), in {line[:60]!r}"
    return f"a run of more than {MAX_ITEMS} ids, more than a filesystem holds files: {line[:60]!r}"


def _number(digits: str) -> int | None:
    """``digits`` as an id number, or None if it is above MAX_NUMBER; never
    calls int() on more digits than a 64-bit number has."""
    if len(digits) > _MAX_DIGITS:
        return None
    value = int(digits)
    return value if value <= MAX_NUMBER else None


def parse_lines(text: str) -> Iterator[tuple[int, str, Run | None]]:
    """(line number, stripped line, its run or None if it is not one) for each
    line of a manifest that is neither blank nor a comment. The one grammar of
    a run line: readers stop at a bad line, ``sos check`` collects them."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        first = None if match is None else _number(match.group(2))
        last = first if match is None or match.group(3) is None else _number(match.group(3))
        if match is None or first is None or last is None or abs(last - first) >= MAX_ITEMS:
            yield number, line, None  # not a run, or numbers no reader can hold
            continue
        yield number, line, Run(match.group(1), first, last)


def _first_occurrences(runs: list[Run]) -> list[Run]:
    """``runs`` with every id named a second time dropped.

    A union merge of two clones that both extended a shared run keeps both
    versions of the line; the first occurrence is the right place for each id
    (``sos check`` still reports the manifest, ``--repair`` rewrites it).
    Intervals per prefix: the cost is in runs, never in ids.
    """
    return _split_repeats(runs)[0]


def repeated(runs: list[Run]) -> list[Run]:
    """The parts of ``runs`` that name an id already named earlier (for check)."""
    return _split_repeats(runs)[1]


def _split_repeats(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(first occurrences, repeats) of ``runs``, in order, each as runs."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for run in runs:
        spans.setdefault(run.prefix, []).append(_span(run))
    if not any(_overlapping(list(intervals)) for intervals in spans.values() if len(intervals) > 1):
        return runs, []
    covered: dict[str, tuple[list[int], list[int]]] = {}
    kept: list[Run] = []
    again: list[Run] = []
    for run in runs:
        lo, hi = _span(run)
        starts, ends = covered.setdefault(run.prefix, ([], []))
        # The covered intervals that touch [lo, hi]: ends[i] >= lo and starts[i] <= hi.
        i = bisect.bisect_left(ends, lo)
        j = bisect.bisect_right(starts, hi)
        overlaps = [(max(lo, starts[k]), min(hi, ends[k])) for k in range(i, j)]
        gaps = _gaps(lo, hi, overlaps)
        kept += _in_direction(run, gaps)
        again += _in_direction(run, overlaps)
        new_lo = min(lo, starts[i]) if i < j else lo
        new_hi = max(hi, ends[j - 1]) if i < j else hi
        starts[i:j] = [new_lo]
        ends[i:j] = [new_hi]
    return kept, again


def _span(run: Run) -> tuple[int, int]:
    return (run.first, run.last) if run.first <= run.last else (run.last, run.first)


def _merged(intervals: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, disjoint (starts, ends) covering ``intervals``."""
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in sorted(intervals):
        if ends and lo <= ends[-1] + 1:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return starts, ends


def _gaps(lo: int, hi: int, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [lo, hi] not covered by ``pairs`` (sorted, disjoint)."""
    out = []
    at = lo
    for start, end in pairs:
        if start > at:
            out.append((at, start - 1))
        at = max(at, end + 1)
    if at <= hi:
        out.append((at, hi))
    return out


def _in_direction(run: Run, pieces: list[tuple[int, int]]) -> list[Run]:
    """Ascending (lo, hi) pieces of ``run`` as runs in the run's own order."""
    if run.step == 1:
        return [Run(run.prefix, lo, hi) for lo, hi in pieces]
    return [Run(run.prefix, hi, lo) for lo, hi in reversed(pieces)]


def _overlapping(intervals: list[tuple[int, int]]) -> bool:
    intervals.sort()
    return any(b[0] <= a[1] for a, b in itertools.pairwise(intervals))

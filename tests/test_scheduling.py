"""The order tests/conftest.py gives the collection for pytest-xdist's worksteal."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import long_tests_first


@dataclass(frozen=True)
class _Item:
    name: str
    long: bool = False
    module: str = "m"

    @property
    def nodeid(self) -> str:
        return f"{self.module}.py::{self.name}"

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "long" and self.long else None


def _shares(items: list[_Item], workers: int) -> list[list[_Item]]:
    """The contiguous shares worksteal's first schedule sends (xdist/scheduler/worksteal.py)."""
    pending, shares = list(items), []
    for worker in range(workers):
        take = len(pending) // (workers - worker)
        shares.append(pending[:take])
        del pending[:take]
    return shares


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
@pytest.mark.parametrize(
    "total, long_at", [(10, [9]), (37, [0, 5, 30, 31, 36]), (5, [0, 1, 2, 3, 4])]
)
def test_each_share_starts_with_its_long_tests(
    workers: int, total: int, long_at: list[int]
) -> None:
    """One long test per module: they are dealt round the shares."""
    items = [_Item(f"t{i}", i in long_at, f"m{i}") for i in range(total)]
    ordered = long_tests_first(items, workers)  # type: ignore[arg-type]
    assert sorted(ordered, key=lambda i: int(i.name[1:])) == items  # a permutation
    shares = _shares(ordered, workers)  # type: ignore[arg-type]
    long = [i for i in items if i.long]
    dealt = [long[w::workers] for w in range(workers)]
    if all(len(mine) <= len(share) for share, mine in zip(shares, dealt, strict=True)):
        for share, mine in zip(shares, dealt, strict=True):
            at = share.index(mine[0]) if mine else 0
            assert share[at : at + len(mine)] == mine  # together
            assert at <= len(share) // 2  # early: never in the half others steal
    else:  # more long tests than a share holds: all of them come first
        assert all(i.long for i in ordered[: len(long)])
    rest = [i for i in ordered if not i.long]
    assert rest == [i for i in items if not i.long]  # the others keep their order


def test_a_modules_long_tests_stay_in_one_share() -> None:
    """Three modules' long tests (4, 1 and 2 of them) over 2 workers: the
    first module's in one share, the other two in the other's."""
    items = [_Item(f"t{i}", i in (3, 4, 5, 6), "a") for i in range(10)]
    items += [_Item(f"t{i}", i == 12, "b") for i in range(10, 20)]
    items += [_Item(f"t{i}", i in (25, 26), "c") for i in range(20, 30)]
    ordered = long_tests_first(items, 2)  # type: ignore[arg-type]
    one, two = _shares(ordered, 2)  # type: ignore[arg-type]
    assert [i.name for i in one if i.long] == ["t3", "t4", "t5", "t6"]
    assert [i.name for i in two if i.long] == ["t12", "t25", "t26"]
    assert [i.name for i in one[:4]] == ["t3", "t4", "t5", "t6"]  # the first share: at once
    at = [i.long for i in two].index(True)
    assert 0 < at <= len(two) // 2 and [i.long for i in two[at : at + 3]] == [True] * 3


def test_without_long_tests_the_order_is_the_collection() -> None:
    items = [_Item(f"t{i}") for i in range(12)]
    assert long_tests_first(items, 4) == items  # type: ignore[arg-type]

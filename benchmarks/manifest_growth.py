"""What one-shot List writers cost: order.txt lines per append, and what a
100,000-line manifest costs len() and lst[i] against a one-line one.

Run: python benchmarks/manifest_growth.py   (about a minute)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import sos
from sos.format.order import HEADER


def one_shot_lines(root: Path, appends: int) -> int:
    """Lines in order.txt after ``appends`` appends, each by a new handle
    (a new process does the same: `sos append` in a shell loop)."""
    for i in range(appends):
        with sos.List(root) as lst:
            lst.append(i)
    return len((root / "order.txt").read_bytes().splitlines()) - 1  # the header


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best


def main() -> int:
    n = 100_000
    work = Path(tempfile.mkdtemp(prefix="sos-manifest-"))
    try:
        lines = one_shot_lines(work / "oneshot", 1000)
        print(f"1,000 one-shot appends: {lines:,} manifest lines")
        compact = work / "compact"
        with sos.List(compact) as lst, lst.batch():
            lst.extend(range(n))
        prefix = (compact / "order.txt").read_text().splitlines()[1].split()[0]
        # The same items, one run per line: evens then odds (no two adjacent).
        scattered = work / "scattered"
        shutil.copytree(compact, scattered)
        body = "".join(f"{prefix} {i}\n" for i in [*range(0, n, 2), *range(1, n, 2)])
        (scattered / "order.txt").write_bytes(HEADER + body.encode())
        for name, root in [("1 line", compact), (f"{n:,} lines", scattered)]:
            fresh = timed(lambda root=root: len(sos.List(root)), 3)
            with sos.List(root) as lst:
                len(lst)
                warm = timed(lambda lst=lst: lst[n // 2], 2000)
            print(f"{name}: len() on a fresh handle {fresh * 1e6:,.0f} us,", end=" ")
            print(f"warm lst[i] {warm * 1e6:.1f} us")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

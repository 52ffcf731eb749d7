"""A million small keys: do the single-op ratios, open, memory and len hold?

Builds a store of ``--keys`` small values (transactions of 10,000 keys: one
durable record each, so it takes minutes, not hours), then measures against
issue 21's scale targets, printing PASS/MISS beside each:

- get, ``in`` and set: sos's speed over the floor's at N keys and at 10,000
  keys (each measured in alternating blocks, as ``hot_paths.py`` does); the
  per-op cost relative to the floor may grow by at most 1.25x;
- ``open`` of the N-key store: under 10 ms (median of 20, warm);
- resident memory of a fresh process iterating every key: peak RSS
  (``VmHWM``) under 100 MB, the interpreter included;
- ``len`` warm: under 1 s;
- disk used by the N keys on ext4, XFS and btrfs, each on a loop-mounted
  image (needs root, ``losetup`` and the mkfs tools; a filesystem that cannot
  be made is named as skipped, never estimated).

    python benchmarks/million.py                 # 1,000,000 keys: long
    python benchmarks/million.py --keys 100000   # a tenth
    python benchmarks/million.py --markdown benchmarks/results/million.md
Not part of the test suite, which runs it only at ``--keys 2000``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hot_paths  # the alternating-block measure, the floor's durable replace
import peers  # the floor

import sos

SMALL = 10_000  # the reference store size of the scale target
CHUNK = 10_000  # keys per building transaction


def value_of(key: str) -> Any:
    return {"n": int(key[1:]), "tag": "x"}


def key(i: int) -> str:
    return f"k{i}"


def build(root: str, n: int) -> float:
    """A store of ``n`` small keys, in transactions; returns seconds taken."""
    t0 = time.perf_counter()
    with sos.Dict(root) as db:
        for start in range(0, n, CHUNK):
            with db.transaction():
                for i in range(start, min(start + CHUNK, n)):
                    db[key(i)] = value_of(key(i))
    return time.perf_counter() - t0


def op_ratios(root: str, n: int, reads: int, blocks: int, writes: int) -> dict[str, float]:
    """sos speed / floor speed for get, in and set on the store at ``root``."""
    rnd = random.Random(n)
    sample = [key(rnd.randrange(n)) for _ in range(reads * blocks)]
    floor = peers.Floor()
    floor.prepare(root, sorted(set(sample)), value_of)
    db = sos.Dict(root, create=False)
    for k in sample:  # both sides read files the cache holds
        db[k]
        floor.get(root, k)
    chunks = [sample[i * reads : (i + 1) * reads] for i in range(blocks)]
    out = {
        "get": hot_paths.median_ratio(
            lambda i: [db[k] for k in chunks[i]] and None,
            lambda i: [floor.get(root, k) for k in chunks[i]] and None,
            blocks,
        )[0],
        "in": hot_paths.median_ratio(
            lambda i: [k in db for k in chunks[i]] and None,
            lambda i: [floor.contains(root, k) for k in chunks[i]] and None,
            blocks,
        )[0],
    }
    wblocks = [
        sample[i : i + hot_paths.WRITE_BLOCK] for i in range(0, writes, hot_paths.WRITE_BLOCK)
    ]

    def sos_set(i: int) -> None:
        for k in wblocks[i]:
            db[k] = value_of(k)

    def floor_set(i: int) -> None:
        for k in wblocks[i]:
            floor.set(root, k, None)

    out["set"] = hot_paths.median_ratio(sos_set, floor_set, len(wblocks))[0]
    db.close()
    return out


def open_ms(root: str) -> float:
    times = []
    for _ in range(21):
        t0 = time.perf_counter()
        sos.Dict(root, create=False).close()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1000


ITERATE = r"""
import sys, sos
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
base = hwm()
count = sum(1 for _ in sos.Dict(sys.argv[1], create=False))
print(count, base, hwm())
"""


def iteration_rss(root: str) -> tuple[int, int, int]:
    """(keys seen, peak RSS after import, peak RSS after iterating), in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", ITERATE, root], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def len_warm(root: str) -> float:
    with sos.Dict(root, create=False) as db:
        len(db)
        t0 = time.perf_counter()
        len(db)
        return time.perf_counter() - t0


def used_bytes(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


MKFS = {
    # ext4 makes its inodes at mkfs time, one per 16 KiB by default: too few
    # for a million small files on an image of 6 GiB. One per 4 KiB block.
    "ext4": ["mkfs.ext4", "-q", "-F", "-i", "4096"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
}


def disk_use(kind: str, n: int, where: str) -> tuple[int, str] | str:
    """(bytes used by ``n`` keys, how) on a fresh loop-mounted ``kind``
    filesystem, or why it could not be measured."""
    if shutil.which(MKFS[kind][0]) is None:
        return f"{MKFS[kind][0]} not installed"
    base = tempfile.mkdtemp(prefix=f"sos-million-{kind}-", dir=where)
    image, mnt = os.path.join(base, "fs.img"), os.path.join(base, "mnt")
    os.mkdir(mnt)
    mounted = False
    try:
        size = max(1 << 30, n * 6 * 1024)  # sparse: only what is written takes space
        with open(image, "wb") as f:
            f.truncate(size)
        run = subprocess.run([*MKFS[kind], image], capture_output=True, text=True)
        if run.returncode:
            return f"mkfs failed: {run.stderr.strip()[:200]}"
        run = subprocess.run(["mount", "-o", "loop", image, mnt], capture_output=True, text=True)
        if run.returncode:
            return f"mount failed: {run.stderr.strip()[:200]}"
        mounted = True
        os.sync()
        before = used_bytes(mnt)
        try:
            build(os.path.join(mnt, "store"), n)
        except (OSError, sos.Error) as exc:
            return f"building failed: {exc}"
        os.sync()
        how = " ".join(MKFS[kind][3:])
        how = f"statvfs used blocks, {size >> 20} MiB image" + (f", mkfs {how}" if how else "")
        return used_bytes(mnt) - before, how
    finally:
        if mounted:
            subprocess.run(["umount", mnt], check=False)
        shutil.rmtree(base, ignore_errors=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def row_text(row: tuple[str, str, str, bool]) -> str:
    what, measured, goal, ok = row
    return f"| {what} | {measured} | {goal} | {verdict(ok)} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="store size (default 1e6)")
    parser.add_argument("--dir", help="where to build (default: a temp dir on the disk)")
    parser.add_argument(
        "--filesystems",
        default="ext4,xfs,btrfs",
        help="loop-mounted filesystems for disk use (comma-separated; '' for none)",
    )
    parser.add_argument(
        "--markdown", type=Path, help="also write the tables here (for docs/performance.md)"
    )
    args = parser.parse_args(argv)
    n = args.keys
    small = min(SMALL, n)
    where = args.dir or tempfile.gettempdir()
    work = tempfile.mkdtemp(prefix="sos-million-", dir=where)
    rows: list[tuple[str, str, str, bool]] = []  # (what, measured, goal, met)
    notes: list[str] = []

    def add(row: tuple[str, str, str, bool]) -> None:
        rows.append(row)
        print(row_text(row), flush=True)  # a later failure does not lose it

    try:
        big_root, small_root = os.path.join(work, "big"), os.path.join(work, "small")
        print(f"building {n:,} keys in {where}", flush=True)
        seconds = build(big_root, n)
        notes.append(f"built {n:,} keys in {seconds:.0f} s ({n / seconds:,.0f} keys/s)")
        build(small_root, small)
        os.sync()
        quick = n < 50_000
        reads, blocks, writes = (50, 6, 20) if quick else (400, 20, 200)
        print("single operations against the floor", flush=True)
        at_small = op_ratios(small_root, small, reads, blocks, writes)
        at_big = op_ratios(big_root, n, reads, blocks, writes)
        for op in ("get", "in", "set"):
            growth = at_small[op] / at_big[op]  # per-op cost, relative to the floor
            add(
                (
                    f"{op}: per-op cost vs the floor at {n:,} keys / at {small:,} "
                    f"(ratios {at_big[op]:.2f}x and {at_small[op]:.2f}x)",
                    f"{growth:.2f}x",
                    "<= 1.25",
                    growth <= 1.25,
                )
            )
        ms = open_ms(big_root)
        add((f"open of {n:,} keys", f"{ms:.2f} ms", "< 10 ms", ms < 10))
        seen, base, peak = iteration_rss(big_root)
        assert seen == n, (seen, n)
        add(
            (
                f"peak RSS iterating {n:,} keys "
                f"(fresh process; {base / 2**20:.0f} MB after import)",
                f"{peak / 2**20:.1f} MB",
                "< 100 MB",
                peak < 100 * 2**20,
            )
        )
        s = len_warm(big_root)
        add((f"len() of {n:,} keys, warm", f"{s:.3f} s", "< 1 s", s < 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    disk: list[tuple[str, str]] = []
    for kind in [k for k in args.filesystems.split(",") if k]:
        print(f"disk use on {kind}", flush=True)
        got = disk_use(kind, n, where)
        if isinstance(got, str):
            disk.append((kind, f"not measured: {got}"))
        else:
            used, how = got
            disk.append((kind, f"{used / 2**20:,.1f} MiB, {used / n:,.0f} bytes/key ({how})"))
    lines = [
        f"### {n:,} keys (benchmarks/million.py)",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
        + f", Python {sys.version.split()[0]}, "
        + time.strftime("%Y-%m-%d %H:%M UTC; ", time.gmtime())
        + "; ".join(notes)
        + ".",
        "",
        "| target | measured | goal | |",
        "|---|---:|---|---|",
    ]
    lines += [row_text(row) for row in rows]
    if disk:
        lines += ["", "| filesystem | disk used |", "|---|---|"]
        lines += [f"| {kind} | {text} |" for kind, text in disk]
    table = "\n".join(lines) + "\n"
    print()
    print(table, end="")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

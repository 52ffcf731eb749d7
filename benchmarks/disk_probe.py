"""What the disk under a directory charges for the steps a durable write takes.

The batch and durable-set ratios in bench.py depend on the disk more than on
sos. This probe measures the costs behind them, without sos in the way:

* a rename over an existing file that holds data, against a rename to a new
  name and over an empty file (freeing the old file's blocks is not free,
  for example on ext4 mounted with ``discard``);
* durable writes (write + fsync + rename) from 1, 8, 32 and 64 threads: if
  the journal grouped concurrent fsyncs, more threads would write faster.

    python benchmarks/disk_probe.py [DIR]      # DIR defaults to the current one
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

DATA = b"x" * 300


def durable_file(path: str, data: bytes = DATA) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def rename_costs(work: str, n: int) -> dict[str, float]:
    """Microseconds per rename: over a data file, to a new name, over an empty file."""
    out = {}
    for case in ("over a file holding data", "to a new name", "over an empty file"):
        for i in range(n):
            durable_file(f"{work}/t{i}")
            if case == "over a file holding data":
                durable_file(f"{work}/d{i}")
            elif case == "over an empty file":
                durable_file(f"{work}/d{i}", b"")
        start = time.perf_counter()
        for i in range(n):
            os.replace(f"{work}/t{i}", f"{work}/d{i}")
        out[case] = (time.perf_counter() - start) / n * 1e6
        for i in range(n):
            os.unlink(f"{work}/d{i}")
    return out


def threaded_writes(work: str, n: int, threads: int) -> float:
    """Durable writes per second (write + fsync + rename onto a new name)."""

    def one(i: int) -> None:
        durable_file(f"{work}/w{threads}-{i}.tmp")
        os.replace(f"{work}/w{threads}-{i}.tmp", f"{work}/w{threads}-{i}")

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    dir_fd = os.open(work, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default=".", help="where to probe (its disk)")
    parser.add_argument("-n", type=int, default=200, help="operations per measure")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="disk-probe-", dir=args.dir)
    try:
        for case, us in rename_costs(work, args.n).items():
            print(f"rename {case:<26} {us:8.0f} us")
        for threads in (1, 8, 32, 64):
            rate = threaded_writes(work, args.n, threads)
            print(f"durable writes, {threads:>2} threads       {rate:8.0f} /s")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

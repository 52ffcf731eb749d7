"""What the store lock costs parallel writers: an upper bound for lock-free plain sets.

Runs ``shared.WRITER`` (the writer processes of issue 21's 4- and 8-writer
targets) three ways in alternating rounds: the floor, sos as it is, and sos
with the lock's ``acquire`` and ``release`` made no-ops in every writer (no
``flock``, no Python around it; unsafe against a transaction, a measurement
only). The last figure is the most a lock-free design could gain.

    python benchmarks/lock_cost.py                    # tmpfs and /var/tmp, 4 and 8 writers
    python benchmarks/lock_cost.py --where /dev/shm --writers 4 --count 1500
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

import shared

NO_LOCK = shared.WRITER.replace(
    "    import sos\n",
    "    import sos\n"
    "    from sos.storage.local import LocalStorage\n"
    "    LocalStorage.acquire = lambda self, exclusive=True, blocking=True: True\n"
    "    LocalStorage.release = lambda self: None\n",
)
assert NO_LOCK != shared.WRITER, "shared.WRITER no longer imports sos where expected"


def best_rates(where: str, writers: int, count: int, rounds: int) -> dict[str, float]:
    """Keys per second, best of ``rounds``, for the floor, sos and sos without its lock."""
    plain = shared.WRITER
    best = {"floor": 0.0, "sos": 0.0, "sos without the lock": 0.0}
    modes = list(best)
    try:
        for r in range(rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:
                shared.WRITER = NO_LOCK if mode == "sos without the lock" else plain
                root = tempfile.mkdtemp(dir=where)
                try:
                    kind = "floor" if mode == "floor" else "sos"
                    best[mode] = max(best[mode], shared.writers_rate(kind, root, writers, count))
                finally:
                    shutil.rmtree(root, ignore_errors=True)
    finally:
        shared.WRITER = plain
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--where", action="append", help="directories to run in")
    parser.add_argument("--writers", type=int, action="append", help="writer processes")
    parser.add_argument("--count", type=int, help="sets per writer (default 1500 tmpfs, 150 disk)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("| where | writers | sos / floor | sos without the lock / floor | lock-free / sos |")
    print("|---|---:|---:|---:|---:|")
    for where in args.where or ["/dev/shm", "/var/tmp"]:
        count = args.count or (1500 if where.startswith("/dev/shm") else 150)
        for writers in args.writers or [4, 8]:
            best = best_rates(where, writers, count, args.rounds)
            floor, sos, free = best["floor"], best["sos"], best["sos without the lock"]
            print(
                f"| {where} | {writers} x {count} | {sos / floor:.2f}x | {free / floor:.2f}x "
                f"| {free / sos:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

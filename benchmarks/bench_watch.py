"""What watching a store costs: latency, idle CPU, a polling pass.

Run:  python benchmarks/bench_watch.py            (100,000-key store; about a minute)
      python benchmarks/bench_watch.py --quick    (tiny sizes: a smoke test)

Prints a small table:

1. Latency from a commit in another process to its change coming out of
   ``watch()``: median and 99th percentile, for the native path (inotify) and
   for polling. The writer stamps each value with ``time.monotonic_ns()``
   (one clock for every process on Linux) just before the write call and
   notes when the call returned; the rename that commits lies between, so
   both are printed (from the start: includes the write's own fsyncs; from
   the return: the change may even come out first). The machine's load
   average is printed too: on a shared machine the tail is scheduling.
2. The CPU a watcher uses while the 100,000-key store is idle: process CPU
   time (``resource.getrusage``, every thread) over a fixed wall time, native
   and polling at the default interval; and what starting one costs (it
   reads every file once).
3. One polling pass over the 100,000 files: CPU seconds, against the
   floor measured beside it (a listdir of each directory and an os.stat of
   each file, no other work), and the storage calls it makes (on object
   storage each ``list`` is a LIST request and each ``version`` a HEAD,
   unless the storage lists versions with its LIST).

Targets (issue 13): native p99 latency < 50 ms, native idle CPU < 1%.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's sos, not an installed one

import sos  # noqa: E402
from sos import format as _format  # noqa: E402
from sos.storage.registry import open_storage  # noqa: E402
from sos.watch.core import DEFAULT_POLL  # noqa: E402
from sos.watch.state import State  # noqa: E402
from sos.watch.watcher import Watcher, watch  # noqa: E402

WRITER = """
import json, random, sys, time, sos
db = sos.Dict(sys.argv[1])
count = int(sys.argv[2])
returned = []
time.sleep(0.2)
for i in range(count):
    t = time.monotonic_ns()
    db[f"k{i % 10}"] = {"t": t, "i": i}
    returned.append(time.monotonic_ns())
    time.sleep(random.uniform(float(sys.argv[3]), float(sys.argv[4])))
print(json.dumps(returned))
"""


def cpu() -> float:
    """CPU seconds of this process, all threads, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fill(path: Path, count: int) -> None:
    """A Dict of ``count`` keys, its files written directly (no fsync: setup only)."""
    sos.Dict(path).close()
    made: set[str] = set()
    for n in range(count):
        key = f"user{n}"
        rel = _format.key_relpath(key)
        directory = path / rel[:2]
        if rel[:2] not in made:
            directory.mkdir(exist_ok=True)
            made.add(rel[:2])
        (path / rel).write_bytes(_format.encode_document(key, {"n": n, "name": key}))


def stat_every_file(path: Path) -> None:
    """The floor of a polling pass: list each directory, stat each entry, nothing else."""
    for prefix in os.listdir(path):
        directory = os.path.join(path, prefix)
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                os.stat(os.path.join(directory, name))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(path: Path, count: int, **mode: Any) -> dict[str, list[float]]:
    """Milliseconds to each change (in another process): from the write
    call's start (an upper bound: it includes the write's fsyncs) and from
    its return (a lower bound: the change may come out before the writer's
    last fsync returns), and the write call itself."""
    db = sos.Dict(path)
    gap = (0.005, 0.015) if "native" in mode else (0.02, 0.12)
    seen: dict[int, tuple[int, int]] = {}  # i -> (stamp, when its change came)
    with db, watch(db, **mode) as watcher:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(count), *map(str, gap)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
            text=True,
        )
        last = -1
        while last < count - 1:
            change = watcher.get(10)
            if change is None:
                break
            now = time.monotonic_ns()
            if change.kind == "set" and change.value["i"] > last:
                last = change.value["i"]
                seen[last] = (change.value["t"], now)
        out, _ = writer.communicate(timeout=60)
    returned = json.loads(out)
    return {
        "start": [(now - t) / 1e6 for t, now in seen.values()],
        "return": [(now - returned[i]) / 1e6 for i, (_, now) in seen.items()],
        "call": [(returned[i] - t) / 1e6 for i, (t, _) in seen.items()],
    }


def spread(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} / {percentile(values, 0.99):.{digits}f} ms"


def idle_cpu(watcher: Watcher, seconds: float) -> float:
    """Percent of one core the watcher used over ``seconds`` of a quiet store."""
    start_cpu, start = cpu(), time.monotonic()
    change = watcher.get(seconds)
    assert change is None, f"the store was meant to be quiet: {change}"
    return 100 * (cpu() - start_cpu) / (time.monotonic() - start)


class Counting:
    """Wraps a storage to count the calls a polling pass makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if not callable(method) or name == "list_versions":
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)

        return counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, numbers meaningless")
    args = parser.parse_args()
    keys = 2_000 if args.quick else 100_000
    events = 20 if args.quick else 300
    idle = 1.0 if args.quick else 10.0
    poll_interval = 0.1
    root = Path(tempfile.mkdtemp(prefix="sos-bench-watch-"))
    rows: list[tuple[str, str]] = []
    native_idle = float("nan")
    try:
        load_before = os.getloadavg()[0]
        native = latency(root / "native", events, native=True)
        polled = latency(root / "poll", max(events // 5, 10), poll=poll_interval)
        rows += [
            (
                "load average (1 min) / cores",
                f"{load_before:.1f} / {os.cpu_count()} (the tail is the scheduler's)",
            ),
            ("write call in the writer, median / p99", spread(native["call"])),
            (
                "native: write start -> change, median / p99",
                spread(native["start"]) + f" ({len(native['start'])} changes of {events})",
            ),
            ("native: write return -> change, median / p99", spread(native["return"])),
            (
                f"polling every {poll_interval} s: start -> change",
                spread(polled["start"], 1) + f" ({len(polled['start'])} changes)",
            ),
        ]

        big = root / "big"
        fill(big, keys)
        db = sos.Dict(big)
        modes: list[tuple[str, dict[str, Any]]] = [
            ("native", {"native": True}),
            ("polling, default interval", {"native": False}),
            (f"polling every {DEFAULT_POLL} s", {"poll": DEFAULT_POLL}),
        ]
        for label, mode in modes:
            c0, t0 = cpu(), time.monotonic()
            watcher = watch(db, **mode)
            if mode.get("poll") is None:
                rows.append(
                    (
                        f"{label}: start on {keys:,} keys (reads each once)",
                        f"{time.monotonic() - t0:.2f} s wall, {cpu() - c0:.2f} s CPU",
                    )
                )
            with watcher:
                used = idle_cpu(watcher, idle)
                rows.append((f"{label}: idle CPU over {idle:.0f} s", f"{used:.2f} % of a core"))
                if label == "native":
                    native_idle = used
        state = State(open_storage(str(big)), "dict")
        state.files = watcher._core.state.files  # the full snapshot just taken
        passes, floors = [], []
        for _ in range(3):  # interleaved with the floor: the machine is shared
            c0 = cpu()
            changed = state.changed_names()
            passes.append(cpu() - c0)
            assert changed == [], changed[:3]
            c0 = cpu()
            stat_every_file(big)
            floors.append(cpu() - c0)
        counting = Counting(state.storage)
        state.storage = counting
        state.changed_names()
        calls = ", ".join(f"{n} {k}" for k, n in sorted(counting.calls.items()))
        best = min(passes)
        rows += [
            (
                f"one polling pass over {keys:,} files",
                f"{best:.3f} s CPU (best of 3), {best / min(floors):.2f}x the floor"
                f" (listdir + os.stat of each: {min(floors):.3f} s)",
            ),
            ("  its storage calls", calls),
            (
                "  interval for < 1% CPU / < 10% CPU",
                f"{best / 0.01:.0f} s / {best / 0.10:.1f} s",
            ),
        ]
        db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    width = max(len(label) for label, _ in rows)
    print(f"sos watch benchmark ({'quick' if args.quick else 'full'}), {time.strftime('%F %T')}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    if not args.quick:
        p99 = percentile(native["start"], 0.99)
        print(f"  target native p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'}")
        print(f"  target native idle CPU < 1%: {'met' if native_idle < 1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

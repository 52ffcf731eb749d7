"""What watching a store costs: latency, idle CPU, a polling pass.

Run:  python benchmarks/bench_watch.py            (100,000-key store; about a minute)
      python benchmarks/bench_watch.py --quick    (tiny sizes: a smoke test)

Prints a small table:

1. Latency from a commit in another process to its change coming out of
   ``watch()``: median and 99th percentile, for the native path (inotify) and
   for polling. The writer stamps each value with ``time.monotonic_ns()``
   (one clock for every process on Linux) just before the write call, so the
   figure includes the write's own fsyncs, printed beside it.
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
from sos import _format  # noqa: E402
from sos._watch import DEFAULT_POLL, Watcher, _State, watch  # noqa: E402

WRITER = """
import json, random, sys, time, sos
db = sos.Dict(sys.argv[1])
count = int(sys.argv[2])
took = []
time.sleep(0.2)
for i in range(count):
    t = time.monotonic_ns()
    db[f"k{i % 10}"] = {"t": t, "i": i}
    took.append(time.monotonic_ns() - t)
    time.sleep(random.uniform(float(sys.argv[3]), float(sys.argv[4])))
print(json.dumps(took))
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


def latency(path: Path, count: int, **mode: Any) -> tuple[list[float], list[float]]:
    """Milliseconds from each write's start (in another process) to its change."""
    db = sos.Dict(path)
    gap = (0.005, 0.015) if "native" in mode else (0.02, 0.12)
    seen: list[float] = []
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
                seen.append((now - change.value["t"]) / 1e6)
        out, _ = writer.communicate(timeout=60)
    import json

    took = [t / 1e6 for t in json.loads(out)]
    return seen, took


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
        native, native_took = latency(root / "native", events, native=True)
        polled, _ = latency(root / "poll", max(events // 5, 10), poll=poll_interval)
        rows += [
            ("write call in the writer (median)", f"{statistics.median(native_took):.2f} ms"),
            (
                "native: commit -> change, median / p99",
                f"{statistics.median(native):.2f} / {percentile(native, 0.99):.2f} ms"
                f" ({len(native)} changes)",
            ),
            (
                f"polling every {poll_interval} s: median / p99",
                f"{statistics.median(polled):.1f} / {percentile(polled, 0.99):.1f} ms"
                f" ({len(polled)} changes)",
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
        state = _State(sos._watch._open_storage(str(big)), "dict")
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
        p99 = percentile(native, 0.99)
        print(f"  target native p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'}")
        print(f"  target native idle CPU < 1%: {'met' if native_idle < 1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

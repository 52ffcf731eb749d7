"""sos against the raw syscall floor and its peers, measured in the same run.

Run:  python benchmarks/bench.py            (full: N up to 100,000; a few minutes)
      python benchmarks/bench.py --quick    (tiny N: a smoke test, numbers meaningless)
      python benchmarks/bench.py --only-hot --markdown benchmarks/results/hot-paths.md
      (only issue 21's hot-path targets; add --before OLD.md to show OLD's figures beside)

Prints, and writes to ``benchmarks/results/`` (``latest.md``, ``chart.png``):

0. Issue 21's hot-path targets (``hot_paths.py``): get, ``in``, ``lst[i]``,
   set, append, 4 and 8 writers and transactions against their strict floors,
   on tmpfs (``--tmpfs``) and on the disk (``--disk``), and the system calls
   per set and per append under ``strace -f`` (steady state: every fan-out
   directory made and checked, the operations framed); each PASS or MISS.
1. The other speed targets as ratios measured in this run (sos against the
   floor, or against itself at another size), each PASS or MISS.
2. A table of every store on every workload: ops/s, the ratio to the floor,
   and the fsync calls per write counted under ``strace -f`` (sqlite calls
   fsync from C, so wrapping ``os.fsync`` would undercount): a fast store that
   never syncs is shown as such.

Speed is only ever reported as a ratio to something measured in the same run
on the same machine; each figure is the best of a few interleaved rounds,
because the machine is shared. Peers and matplotlib come from the ``bench``
extra (``pip install -e '.[bench]'``); a missing one is skipped, not faked.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hot_paths  # issue 21's targets, per filesystem
import peers  # the adapters live beside this script
import shared  # the shared-store targets: writers, transactions, sos load
import typed  # typed stores against untyped ones

import sos

HERE = Path(__file__).resolve().parent


@dataclass
class Sizes:
    ops: int  # operations per timed run
    small: int  # "1,000 keys"
    big: int  # "100,000 keys"
    tiny: int  # the small store of the open target ("100 keys")
    rounds: int


FULL = Sizes(ops=1000, small=1000, big=100_000, tiny=100, rounds=3)
QUICK = Sizes(ops=20, small=50, big=300, tiny=10, rounds=1)


def value_of(key: str) -> Any:
    n = int(key[1:])
    return {"name": f"user {n}", "n": n, "tags": ["a", "b"], "active": n % 2 == 0}


def keys(count: int, start: int = 0) -> list[str]:
    return [f"k{i}" for i in range(start, start + count)]


def best_rate(fn: Callable[[], int], rounds: int) -> float:
    """Operations per second of ``fn`` (which returns its operation count), best round."""
    best = 0.0
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        count = fn()
        elapsed = time.perf_counter() - start
        best = max(best, count / elapsed if elapsed > 0 else float("inf"))
    return best


def interleaved(fns: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Best rate of each, measured in alternating rounds so load hits all alike."""
    rates = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            rates[name] = max(rates[name], best_rate(fn, 1))
    return rates


# -- the targets ---------------------------------------------------------------


@dataclass
class Target:
    what: str
    ratio: float
    goal: str
    met: bool
    note: str = ""
    unit: str = "x"  # "x": a ratio; "/op": a count per operation

    def measured(self) -> str:
        return f"{self.ratio:.2f}x" if self.unit == "x" else f"{self.ratio:.1f}{self.unit}"


def at_least(what: str, ratio: float, goal: float, note: str = "") -> Target:
    return Target(what, ratio, f">= {goal}", ratio >= goal, note)


def at_most(what: str, ratio: float, goal: float, note: str = "", unit: str = "x") -> Target:
    return Target(what, ratio, f"<= {goal}", ratio <= goal, note, unit)


# -- issue 21: the hot paths at the floor, on tmpfs and on the disk ---------------


def fs_type(path: str) -> str:
    """The filesystem type under ``path`` (the longest mount point that holds it)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best, kind = point, fields[2]
    return kind


def default_disk() -> str:
    """A scratch place on a real disk (not tmpfs): the first that is."""
    for place in (os.environ.get("TMPDIR", ""), "/var/tmp", "/tmp", str(HERE)):
        if place and os.path.isdir(place) and fs_type(place) not in ("tmpfs", "ramfs"):
            return place
    return str(HERE)


def hot_path_targets(label: str, on_disk: bool, r: dict[str, float]) -> list[Target]:
    """Issue 21's ratio targets from one filesystem's measurements."""
    set_goal = 0.9 if on_disk else 0.8  # tmpfs: the floor costs ~20 us, every syscall shows

    def total(op: str) -> str:
        return f"total time {r[op + ' total']:.2f}x"

    return [
        at_least(f"get / floor read [{label}]", r["get"], 0.95, total("get")),
        at_least(f"`in` / floor stat [{label}]", r["in"], 0.95, total("in")),
        at_least(
            f"`lst[i]` / floor stat(manifest) + read(item) [{label}]",
            r["index"],
            0.9,
            total("index"),
        ),
        at_least(f"set / floor durable replace [{label}]", r["set"], set_goal, total("set")),
        at_least(
            f"append / floor durable item + durable manifest [{label}]",
            r["append"],
            0.9,
            total("append"),
        ),
        at_least(f"4 writer processes / the floor's 4 writers [{label}]", r["4 writers"], 0.9),
        at_least(f"8 writer processes / the floor's 8 writers [{label}]", r["8 writers"], 0.85),
        at_least(
            f"transactions of 1,000 new keys, 20 back to back / no-fsync floor [{label}]",
            r["transactions"],
            0.8,
        ),
    ]


def syscall_targets(work: Path, ops: int) -> list[Target]:
    """Syscalls per set and per append (every call between two frames, under strace -f)."""
    per_set = count_framed("sos", "dict", ops, work)
    floor_set = count_framed("floor", "dict", ops, work)
    per_append = count_framed("sos", "list", ops, work)
    if per_set is None or per_append is None:
        return []
    note = "" if floor_set is None else f"the floor: {floor_set:.1f}"
    return [
        at_most("syscalls per set (strace -f)", per_set, 12, note, "/op"),
        at_most("syscalls per append (strace -f)", per_append, 20, "", "/op"),
    ]


def measure_targets(sz: Sizes, work: Path) -> list[Target]:
    small_root, big_root, tiny_root = (str(work / n) for n in ("t_small", "t_big", "t_tiny"))
    sd = peers.SosDict()
    sd.fill(small_root, ((k, value_of(k)) for k in keys(sz.small)))
    sd.fill(big_root, ((k, value_of(k)) for k in keys(sz.big)))
    sd.fill(tiny_root, ((k, value_of(k)) for k in keys(sz.tiny)))
    floor = peers.Floor()
    floor.prepare(small_root, keys(sz.small), value_of)
    out: list[Target] = []

    db = sos.Dict(small_root)
    some = keys(sz.ops)

    # A batch against single sets: short alternating stretches of each.
    single_time = batch_time = 0.0
    chunk = max(sz.ops // 10, 5)
    for _ in range(sz.rounds * 2):
        t0 = time.perf_counter()
        for k in some[:chunk]:
            db[k] = value_of(k)
        t1 = time.perf_counter()
        with db.batch():
            for k in some:
                db[k] = value_of(k)
        t2 = time.perf_counter()
        single_time, batch_time = single_time + t1 - t0, batch_time + t2 - t1
    single_rate = chunk * sz.rounds * 2 / single_time
    batch_rate = len(some) * sz.rounds * 2 / batch_time
    out.append(
        at_least(
            f"batch of {sz.ops} sets / single sets",
            batch_rate / single_rate,
            5,
            f"{batch_rate:,.0f} vs {single_rate:,.0f} sets/s",
        )
    )

    db.close()

    big = sos.Dict(big_root)
    list(big)  # warm: the name -> key memory is filled
    r = interleaved(
        {
            "listing": lambda: floor.iterate(big_root),
            "iter": lambda: sum(1 for _ in big),
            "len": lambda: len(big) and 1,
            "count": lambda: floor.length(big_root) and 1,
        },
        sz.rounds,
    )
    out.append(
        at_least(f"warm iteration of {sz.big:,} keys / bare listing", r["iter"] / r["listing"], 0.5)
    )
    out.append(at_least(f"len() of {sz.big:,} keys / bare listing", r["len"] / r["count"], 0.5))
    big.close()

    def opens(root: str) -> Callable[[], int]:
        def run() -> int:
            for _ in range(50):
                sos.Dict(root, create=False).close()
            return 50

        return run

    r = interleaved({"tiny": opens(tiny_root), "big": opens(big_root)}, sz.rounds)
    out.append(at_most(f"open {sz.big:,} keys / open {sz.tiny} keys", r["tiny"] / r["big"], 1.5))

    ls_small, ls_big = str(work / "l_small"), str(work / "l_big")
    sl = peers.SosList()
    sl.fill(ls_small, ((k, value_of(k)) for k in keys(sz.small)))
    sl.fill(ls_big, ((k, value_of(k)) for k in keys(sz.big)))
    small_list, big_list = sos.List(ls_small), sos.List(ls_big)
    appends = max(sz.ops // 5, 5)

    def appender(lst: sos.List) -> Callable[[], int]:
        def run() -> int:
            for i in range(appends):
                lst.append(value_of(f"k{i}"))
            return appends

        return run

    r = interleaved({"small": appender(small_list), "big": appender(big_list)}, sz.rounds)
    out.append(
        at_most(
            f"append cost at {sz.big:,} items / at {sz.small:,}",
            r["small"] / r["big"],
            1.5,
        )
    )
    for h in (small_list, big_list):
        h.close()
    out += typed.targets(work / "typed", sz.ops, sz.rounds, at_least)
    out += typed.check_targets(work / "typed", sz.big, sz.rounds, at_least)
    return out


# -- the peers -------------------------------------------------------------------

DICT_LOADS = ["insert", "overwrite", "get", "in", "len", "iteration", "delete", "open", "batch"]
LIST_LOADS = ["append", "index", "insert middle", "pop"]


def dict_workloads(a: peers.Adapter, sz: Sizes, work: Path, floor_root: str) -> dict[str, float]:
    """ops/s of ``a`` on each dict workload (iteration in keys/s)."""
    n = sz.small
    rnd = random.Random(1)
    path = str(work / f"p_{a.name}")
    if isinstance(a, peers.Floor):
        # The floor works on a sos store's files: paths and bytes made beforehand.
        path = floor_root
        sos.Dict(path).close()
        a.prepare(path, keys(n) + keys(n, 10 * n), value_of)
    h = a.open(path)
    res: dict[str, float] = {}
    ks = keys(n)

    def timed(name: str, fn: Callable[[], int], rounds: int = 1) -> None:
        res[name] = best_rate(fn, rounds)

    timed("insert", lambda: [a.set(h, k, value_of(k)) for k in ks] and n)
    timed("overwrite", lambda: [a.set(h, k, value_of(k)) for k in ks] and n, sz.rounds)
    sample = [rnd.choice(ks) for _ in range(n)]
    timed("get", lambda: [a.get(h, k) for k in sample] and n, sz.rounds)
    timed("in", lambda: sum(1 for k in sample if a.contains(h, k)), sz.rounds)
    timed("len", lambda: [a.length(h) for _ in range(10)] and 10, sz.rounds)
    a.iterate(h)
    timed("iteration", lambda: a.iterate(h), sz.rounds)
    batch = keys(n, 10 * n)
    timed("batch", lambda: a.batch_set(h, ((k, value_of(k)) for k in batch)) or n)
    a.close(h)

    def opens() -> int:
        for _ in range(20):
            a.close(a.open(path))
        return 20

    timed("open", opens, sz.rounds)
    h = a.open(path)
    timed("delete", lambda: [a.delete(h, k) for k in ks] and n)
    a.close(h)
    return res


def list_workloads(a: peers.Adapter, sz: Sizes, work: Path) -> dict[str, float]:
    n = sz.small
    path = str(work / f"pl_{a.name}")
    a.fill(path, ((k, value_of(k)) for k in keys(n)))
    h = a.open(path)
    rnd = random.Random(2)
    res: dict[str, float] = {}
    m = max(n // 5, 5)
    res["append"] = best_rate(lambda: [a.append(h, value_of(f"k{i}")) for i in range(m)] and m, 1)
    idx = [rnd.randrange(n) for _ in range(n)]
    res["index"] = best_rate(lambda: [a.index(h, i) for i in idx] and n, sz.rounds)
    with contextlib.suppress(NotImplementedError):  # diskcache.Deque has no insert
        res["insert middle"] = best_rate(
            lambda: [a.insert(h, n // 2, value_of("k1")) for _ in range(m)] and m, 1
        )
    res["pop"] = best_rate(lambda: [a.pop(h) for _ in range(m)] and m, 1)
    a.close(h)
    return res


# -- fsync counting ---------------------------------------------------------------


def count_fsyncs(adapter: str, kind: str, load: str, ops: int, work: Path) -> float | None:
    """fsync + fdatasync calls per operation, counted by strace -f; None without strace."""
    return count_syscalls(adapter, kind, load, ops, work, "trace=fsync,fdatasync,msync")


def count_syscalls(
    adapter: str, kind: str, load: str, ops: int, work: Path, trace: str | None = None
) -> float | None:
    """System calls (those ``trace`` selects, or all) per operation, counted by
    strace -f -c in a child doing the same setup then 0 or ``ops`` operations:
    the difference over ``ops`` is what one operation costs, start-up excluded.
    None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    counts = []
    for k in (0, ops):
        summary = work / f"strace-{adapter}-{load}-{k}-{trace is None}.txt"
        cmd = [strace, "-f", "-c", "-o", str(summary)]
        cmd += ["-e", trace] if trace else []
        cmd += [sys.executable, __file__, "--probe", adapter, kind, load, str(k), str(work)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        text = summary.read_text()
        rows = re.findall(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s.*?(\w+)$", text, re.M)
        counts.append(sum(int(calls) for calls, name in rows if name != "total"))
    return (counts[1] - counts[0]) / ops


def count_framed(adapter: str, kind: str, ops: int, work: Path) -> float | None:
    """Every system call of ``ops`` sets (``kind`` "dict") or appends ("list")
    after the probe's setup, per operation: the probe frames them with
    ``getppid()`` (a call no store makes) and every line of ``strace -f``'s
    log between the frames counts, whatever it is. Unlike the difference of
    two ``strace -c`` totals, a setup that differs from run to run (a thread
    pool used or not, the random ids of a List's items) cannot leak into
    the figure. None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    log = work / f"strace-framed-{adapter}-{kind}.txt"
    load = "set" if kind == "dict" else "append"
    cmd = [strace, "-f", "-qq", "-o", str(log), sys.executable, __file__]
    cmd += ["--probe", adapter, kind, load, f"framed:{ops}", str(work)]
    if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
        return None
    frames = frame_positions(log.read_text())
    if len(frames) != 2:
        return None
    return (frames[1] - frames[0] - 1) / ops


def frame_positions(strace_log: str) -> list[int]:
    """Where each ``getppid()`` falls in a ``strace -f -qq`` log, counted in
    system calls from its start (tests/test_syscall_budget.py counts the same way)."""
    frames: list[int] = []
    calls = 0
    for line in strace_log.splitlines():
        parts = line.split(None, 1)
        if len(parts) < 2 or parts[1].startswith(("---", "+++", "<...")):
            continue  # signals, exits, the second half of an interrupted call
        if parts[1].startswith("getppid("):
            frames.append(calls)
        calls += 1
    return frames


PROBE_SETUP = 100


def probe(adapter: str, kind: str, load: str, ops: int, work: str, framed: bool = False) -> None:
    """Run ``ops`` operations of one workload, for strace to count (setup included
    in both the 0-op and the k-op run, so it cancels out; or, ``framed``,
    the operations between two ``getppid()`` calls)."""
    pool = peers.DICTS if kind == "dict" else peers.LISTS
    a = next(x for x in pool if x.name == adapter)
    path = tempfile.mkdtemp(dir=work)
    root = os.path.join(path, "s")
    if isinstance(a, peers.Floor):
        sos.Dict(root).close()
        a.prepare(root, keys(PROBE_SETUP), value_of)
    h = a.open(root)
    # Setup, the same in the 0-op run: every key exists, fan-out directories too,
    # so what is counted is an overwrite (or an append to a non-empty list).
    if kind == "list":
        for i in range(PROBE_SETUP):
            a.append(h, value_of(f"k{i}"))
        if framed and isinstance(h, sos.List):
            every_fanout_directory(h)
        frame(framed)
        for i in range(ops):
            a.append(h, value_of(f"k{i}"))
        frame(framed)
    else:
        # Framed, twice for sos: a fan-out directory the handle made is
        # checked (one lstat) on its next use, as in a long-lived handle.
        for _ in range(2 if framed and isinstance(h, sos.Dict) else 1):
            for k in keys(PROBE_SETUP):
                a.set(h, k, value_of(k))
        if load == "batch":
            if ops:
                a.batch_set(h, ((k, value_of(k)) for k in keys(ops)))
        else:
            values = [(k, value_of(k)) for k in keys(ops)]
            frame(framed)
            for k, v in values:
                a.set(h, k, v)
            frame(framed)
    a.close(h)


def frame(framed: bool) -> None:
    """A system call no store makes, to frame the counted operations."""
    if framed:
        os.getppid()


def every_fanout_directory(lst: sos.List[Any]) -> None:
    """Make the List's 256 fan-out directories and check each once, as a
    long-lived List's handle has (tests/test_syscall_budget.py warms up the
    same way): an append counted here is a steady-state append, not one
    that makes and syncs a new directory (3-4 more calls, once per directory
    in a List's life; ~55 of 100 appends to a 100-item List do it)."""
    # 3,000 random ids leave one of the 256 directories empty in ~0.2% of runs.
    # Only for the framed count: the difference of two runs' totals (the fsync
    # count) would take in how many directories each run's random ids made.
    for _ in range(3):
        lst.extend(value_of(f"k{i}") for i in range(1000))
    for _ in lst:  # read: each directory checked once by this handle
        pass


# -- output ----------------------------------------------------------------------


def verdict(t: Target) -> str:
    return "PASS" if t.met else "MISS"


def render_hot(
    targets: list[Target], places: list[str], before: dict[str, str] | None = None
) -> str:
    """Issue 21's targets as a table; with ``before`` (target -> measured, from
    an earlier --markdown file) a column shows the earlier figure beside it."""
    lines = [
        "### Hot paths at the floor (issue 21): ratios measured in one interleaved run",
        "",
        "Measured on " + "; ".join(places) + ". "
        f"Machine: {os.cpu_count()} CPUs, load average {load_average()}, "
        f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]
    if before is not None:
        lines += ["| target | before | now | goal | |", "|---|---:|---:|---|---|"]
    else:
        lines += ["| target | measured | goal | |", "|---|---:|---|---|"]
    for t in targets:
        note = f" ({t.note})" if t.note else ""
        was = "" if before is None else f" {before.get(t.what, 'n/a')} |"
        lines.append(f"| {t.what}{note} |{was} {t.measured()} | {t.goal} | {verdict(t)} |")
    return "\n".join(lines) + "\n"


def read_before(path: Path) -> dict[str, str]:
    """target -> its "now" figure in an earlier --markdown file."""
    out = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[-1] in ("PASS", "MISS"):
            what = re.sub(r" \((the floor|total time)[^)]*\)$", "", cells[0])
            out[what] = cells[-3]
    return out


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"


def render(
    sz: Sizes,
    targets: list[Target],
    dicts: dict[str, dict[str, float]],
    lists: dict[str, dict[str, float]],
    fsyncs: dict[tuple[str, str], float | None],
) -> str:
    lines = [
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "### Targets (ratios measured in this run)",
        "",
        "| target | measured | goal | |",
        "|---|---:|---|---|",
    ]
    for t in targets:
        note = f" ({t.note})" if t.note else ""
        lines.append(f"| {t.what}{note} | {t.measured()} | {t.goal} | {verdict(t)} |")
    floor = dicts.get("floor", {})
    lines += [
        "",
        f"### Dict workloads, {sz.small:,} keys: ops/s (ratio to the floor)",
        "",
        "| store | fsync/set | fsync/batched set | " + " | ".join(DICT_LOADS) + " |",
        "|---|---:|---:|" + "---:|" * len(DICT_LOADS),
    ]
    for name, res in dicts.items():
        cells = []
        for load in DICT_LOADS:
            rate = res.get(load)
            ratio = f" ({rate / floor[load]:.2f})" if rate and floor.get(load) else ""
            cells.append(fmt_rate(rate) + ratio)
        f1, f2 = fsyncs.get((name, "set")), fsyncs.get((name, "batch"))
        lines.append(
            f"| {name} | {'n/a' if f1 is None else f'{f1:.2f}'} | "
            f"{'n/a' if f2 is None else f'{f2:.2f}'} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        f"### List workloads, {sz.small:,} items: ops/s (ratio to the floor's durable write/read)",
        "",
        "| store | fsync/append | " + " | ".join(LIST_LOADS) + " |",
        "|---|---:|" + "---:|" * len(LIST_LOADS),
    ]
    list_floor = {
        "append": floor.get("insert"),
        "index": floor.get("get"),
        "insert middle": floor.get("insert"),
        "pop": floor.get("delete"),
    }
    for name, res in lists.items():
        cells = []
        for load in LIST_LOADS:
            rate = res.get(load)
            ratio = f" ({rate / list_floor[load]:.2f})" if rate and list_floor.get(load) else ""
            cells.append(fmt_rate(rate) + ratio)
        f1 = fsyncs.get((name, "append"))
        lines.append(
            f"| {name} | {'n/a' if f1 is None else f'{f1:.2f}'} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Floor: temp write + fsync + rename + directory fsync per write; open + read + JSON",
        "parse per read; a bare `stat` for `in`; bare `listdir` of the fan-out directories for",
        "len and iteration; read of the metadata file for open. It works on sos's own files,",
        "with hashing and encoding done beforehand. fsync counts: `strace -f -c`, per operation.",
        "For lists the floor is one durable file write (append, insert) or unlink (pop).",
        "These tables measure one store after another on a shared machine and disk, so",
        "their ratios move a lot between runs (reads too); the targets above interleave",
        "sos with what it is compared to, and are the figures to trust.",
    ]
    return "\n".join(lines) + "\n"


# One colour per store in both panels.
COLORS = {
    "floor": "#7f7f7f",
    "sos": "#d62728",
    "pysos": "#1f77b4",
    "shelve": "#2ca02c",
    "sqlitedict": "#9467bd",
    "diskcache.Index": "#ff7f0e",
    "diskcache.Deque": "#ff7f0e",
}


def chart(
    dicts: dict[str, dict[str, float]],
    lists: dict[str, dict[str, float]],
    fsyncs: dict[tuple[str, str], float | None],
    path: Path,
) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart (pip install -e '.[bench]')")
        return False
    fig, axes = plt.subplots(
        1, 2, figsize=(14, 6.5), gridspec_kw={"width_ratios": [len(DICT_LOADS), len(LIST_LOADS)]}
    )
    for ax, data, loads, unit, title in (
        (axes[0], dicts, DICT_LOADS, "set", "Dict workloads"),
        (axes[1], lists, LIST_LOADS, "append", "List workloads"),
    ):
        names = list(data)
        width = 0.8 / max(len(names), 1)
        for j, name in enumerate(names):
            f = fsyncs.get((name, unit))
            label = f"{name} ({'?' if f is None else f'{f:.1f}'} fsync/{unit})"
            xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(loads))]
            ys = [data[name].get(load, 0) or 0 for load in loads]
            ax.bar(xs, ys, width, label=label, color=COLORS.get(name))
        ax.set_yscale("log")
        ax.set_xticks(range(len(loads)))
        ax.set_xticklabels(loads, rotation=30, ha="right")
        ax.set_ylabel("operations per second (log scale; higher is better)")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(axis="y", which="major", alpha=0.3)
    fig.suptitle("sos vs the syscall floor and its peers (same run, same machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def hot_run(args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    """Issue 21's targets on tmpfs and on the disk, and the syscall counts."""
    targets: list[Target] = []
    places = []
    for place, on_disk in ((args.tmpfs, False), (args.disk or default_disk(), True)):
        if not os.path.isdir(place):
            print(f"no {place}: its hot-path run is skipped", flush=True)
            continue
        work = Path(tempfile.mkdtemp(prefix="sos-hot-", dir=place))
        try:
            kind = fs_type(str(work))
            if on_disk == (kind in ("tmpfs", "ramfs")):
                print(f"warning: {place} is {kind}, not what its run is named for", flush=True)
            label = "disk" if on_disk else "tmpfs"
            places.append(f"{label}: {kind} ({place})")
            print(f"hot paths on {kind} ({place})", flush=True)
            targets += hot_path_targets(
                label, on_disk, hot_paths.measure(work, args.quick, on_disk)
            )
            if on_disk and not args.no_strace:
                print("counting syscalls per set and append under strace", flush=True)
                targets += syscall_targets(work, 20 if args.quick else PROBE_SETUP)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return targets, places


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny N: a smoke test")
    parser.add_argument("--out", type=Path, help="where latest.md and chart.png go")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--no-strace", action="store_true", help="skip fsync and syscall counting")
    parser.add_argument(
        "--tmpfs", default="/dev/shm", help="where the tmpfs hot-path run works (default /dev/shm)"
    )
    parser.add_argument(
        "--disk", help="where the on-disk hot-path run works (default: a temp dir on a real disk)"
    )
    parser.add_argument(
        "--only-hot", action="store_true", help="only the hot-path targets (issue 21), no peers"
    )
    parser.add_argument(
        "--markdown", type=Path, help="also write the tables here (for docs/performance.md)"
    )
    parser.add_argument(
        "--before", type=Path, help="an earlier --markdown file: its figures shown beside these"
    )
    parser.add_argument("--probe", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        name, kind, load, ops, work = args.probe
        framed = ops.startswith("framed:")
        probe(name, kind, load, int(ops.removeprefix("framed:")), work, framed)
        return 0
    sz = QUICK if args.quick else FULL
    out = args.out or (None if args.quick else HERE / "results")
    before = read_before(args.before) if args.before else None
    hot, places = hot_run(args)
    hot_table = render_hot(hot, places, before)
    if args.only_hot:
        print()
        print(hot_table)
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(hot_table)
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="sos-bench-", dir=args.work))
    try:
        print(f"sizes: {sz}", flush=True)
        targets = measure_targets(sz, scratch)
        dicts: dict[str, dict[str, float]] = {}
        for a in peers.DICTS:
            if peers.available(a):
                print(f"dict workloads: {a.name}", flush=True)
                dicts[a.name] = dict_workloads(a, sz, scratch, str(scratch / "floor"))
        lists: dict[str, dict[str, float]] = {}
        for a in peers.LISTS:
            if peers.available(a):
                print(f"list workloads: {a.name}", flush=True)
                lists[a.name] = list_workloads(a, sz, scratch)
        fsyncs: dict[tuple[str, str], float | None] = {}
        if not args.no_strace:
            print("counting fsyncs under strace", flush=True)
            probe_ops = 20 if args.quick else PROBE_SETUP
            for a in peers.DICTS:
                if peers.available(a):
                    for load in ("set", "batch"):
                        fsyncs[(a.name, load)] = count_fsyncs(
                            a.name, "dict", load, probe_ops, scratch
                        )
            for a in peers.LISTS:
                if peers.available(a):
                    fsyncs[(a.name, "append")] = count_fsyncs(
                        a.name, "list", "append", probe_ops, scratch
                    )
        print("shared stores: writers, transactions, sos load", flush=True)
        shared_table = shared.render(*shared.measure(scratch, args.quick))
        table = hot_table + "\n" + render(sz, targets, dicts, lists, fsyncs) + "\n" + shared_table
        print()
        print(table)
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(table)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "latest.md").write_text(table)
            if chart(dicts, lists, fsyncs, out / "chart.png"):
                print(f"wrote {out / 'latest.md'} and {out / 'chart.png'}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark runs end to end (``--quick``, tiny N) and prints every row.

Speed is never asserted here: only that each target, store and workload is
measured and reported, and that the durability column counts real fsyncs.
Each run of the benchmark takes tens of seconds even with tiny N (the hot
paths are measured on tmpfs and on the disk), so these checks of the
instrument run in the slow suite (``-m slow``, which ``.ci/run`` runs), and
``SOS_LONG=1`` runs everything as the soak does (with strace, on the disk).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import scratch_dir

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
LONG = os.environ.get("SOS_LONG") == "1"

MILLION = ROOT / "benchmarks" / "million.py"
# issue 21's hot paths (benchmarks/hot_paths.py), on tmpfs and then on the disk
HOT = [
    "get / floor read",
    "`in` / floor stat",
    "`lst[i]` / floor stat(manifest) + read(item)",
    "set / floor durable replace",
    "append / floor durable item + durable manifest",
    "4 writer processes / the floor's 4 writers",
    "8 writer processes / the floor's 8 writers",
    "transactions of 1,000 new keys, 20 back to back / no-fsync floor",
]
HOT_TARGETS = [f"{what} [{where}]" for where in ("tmpfs", "disk") for what in HOT]
SYSCALL_TARGETS = ["syscalls per set (strace -f)", "syscalls per append (strace -f)"]
TARGETS = [
    *HOT_TARGETS,
    "sets / ",  # the batch target
    "warm iteration of",
    "len() of",
    "open ",
    "append cost at",
    "typed get / untyped get",  # benchmarks/typed.py
    "typed set / untyped set",
    "sos check with schema.json, ",
    # benchmarks/shared.py
    "1 writer / the floor's 1 writer",
    "transactions of 1,000 overwrites / the no-fsync floor",
    "sos load of 20,000 keys / update()",
]
VERDICT = r"\| (\d+\.\d\dx|\d+\.\d/op) \| [<>]= [\d.]+ \| (PASS|MISS) \|$"
DICT_LOADS = ["insert", "overwrite", "get", "in", "len", "iteration", "delete", "open", "batch"]
PEERS = {  # store -> the module it needs (None: the standard library)
    "pysos": "pysos",
    "shelve": None,
    "sqlitedict": "sqlitedict",
    "diskcache.Index": "diskcache",
}


def run_bench(base: Path, *, strace: bool) -> tuple[str, Path]:
    """``bench.py --quick`` with its output and scratch under ``base``."""
    out, work = base / "bench-out", base / "bench-work"
    out.mkdir()
    work.mkdir()
    flags = [] if strace else ["--no-strace"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", *flags, "--out", str(out), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(work.iterdir()) == [], "the benchmark left scratch files behind"
    return proc.stdout, out


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if LONG:  # as the soak: with strace, on the disk
        yield run_bench(tmp_path_factory.mktemp("bench"), strace=True)
        return
    base = scratch_dir("sos-bench-")
    try:
        yield run_bench(base, strace=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def strace_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    if LONG:
        return request.getfixturevalue("quick_run")
    return run_bench(tmp_path_factory.mktemp("bench"), strace=True)


def table_row(text: str, name: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name!r}")


@pytest.mark.slow  # a minute of benchmark runs: CI's slow suite
def test_every_target_is_reported_with_a_ratio_and_a_verdict(quick_run: tuple[str, Path]) -> None:
    text, _ = quick_run
    rows = [line for line in text.splitlines() if re.search(r"\| (PASS|MISS) \|$", line)]
    expected = TARGETS if not LONG else HOT_TARGETS + SYSCALL_TARGETS + TARGETS[len(HOT_TARGETS) :]
    assert len(rows) == len(expected), rows
    for what, row in zip(expected, rows, strict=True):
        assert what in row
        assert re.search(VERDICT, row), row


@pytest.mark.slow  # a minute of benchmark runs: CI's slow suite
def test_every_store_and_workload_has_a_figure(quick_run: tuple[str, Path]) -> None:
    text, _ = quick_run
    header = table_row(text, "store")
    assert header[3:] == DICT_LOADS
    stores = ["floor", "sos"] + [
        name for name, module in PEERS.items() if module is None or importlib.util.find_spec(module)
    ]
    for store in stores:
        cells = table_row(text, store)
        assert len(cells) == 3 + len(DICT_LOADS)
        for cell in cells[3:]:
            assert re.fullmatch(r"[\d,.]+ \(\d+\.\d\d\)", cell), (store, cell)
    assert table_row(text, "floor")[3:].count("n/a") == 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="fsyncs are counted with strace")
def test_fsync_column_counts_real_fsyncs(strace_run: tuple[str, Path]) -> None:
    """A durable overwrite is exactly two fsyncs (file, directory), for the floor and sos."""
    text, _ = strace_run
    assert table_row(text, "floor")[1] == "2.00"
    assert table_row(text, "sos")[1] == "2.00"
    batched = float(table_row(text, "sos")[2])
    assert 1.0 <= batched <= 2.0  # every file fsynced; a directory once per batch


@pytest.mark.slow  # a minute of benchmark runs: CI's slow suite
def test_results_are_written(quick_run: tuple[str, Path]) -> None:
    text, out = quick_run
    table = (out / "latest.md").read_text()
    assert "### Targets" in table and table.strip() in text
    if importlib.util.find_spec("matplotlib"):
        assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_disk_probe_prints_each_cost_and_cleans_up(tmp_path: Path):
    """The probe behind the batch miss's explanation runs and leaves nothing."""
    probe = ROOT / "benchmarks" / "disk_probe.py"
    out = subprocess.run(
        [sys.executable, str(probe), str(tmp_path), "-n", "5"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for case in ("over a file holding data", "to a new name", "over an empty file"):
        assert re.search(rf"^rename {case} +\d+ us$", out, re.M), out
    for threads in (1, 8, 32, 64):
        assert re.search(rf"^durable writes, +{threads} threads +\d+ /s$", out, re.M), out
    assert list(tmp_path.iterdir()) == []


def target_name(row: str) -> str:
    """A target row's name, without the note some rows add (the floor's
    figure, the ratio of total times)."""
    return re.sub(r" \((the floor: [\d.]+|total time [\d.]+x)\)$", "", row.split(" | ")[0][2:])


@pytest.mark.slow  # a minute of benchmark runs: CI's slow suite
def test_markdown_holds_each_hot_path_target_with_its_verdict(tmp_path: Path) -> None:
    """--markdown writes the issue-21 table (tmpfs and disk, syscalls under
    strace) that docs/performance.md includes; --before puts an earlier run's
    figures beside the new ones."""
    first, second = tmp_path / "first.md", tmp_path / "second.md"
    tmpfs, disk = scratch_dir("sos-bench-md-"), tmp_path / "disk"
    disk.mkdir()
    try:
        for md, extra in ((first, []), (second, ["--before", str(first)])):
            subprocess.run(
                [
                    *(sys.executable, str(BENCH), "--quick", "--only-hot", "--markdown", str(md)),
                    *("--tmpfs", str(tmpfs), "--disk", str(disk), *extra),
                ],
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
                cwd=ROOT,
            )
    finally:
        left = list(tmpfs.iterdir())
        shutil.rmtree(tmpfs, ignore_errors=True)
    assert left == [] and list(disk.iterdir()) == [], "the benchmark left scratch files behind"
    rows = [line for line in first.read_text().splitlines() if re.search(VERDICT, line)]
    names = [target_name(r) for r in rows]
    assert names == HOT_TARGETS + SYSCALL_TARGETS
    # the second run's table has the first's figure in its "before" column
    earlier = {target_name(r): r.split(" | ")[1] for r in rows}
    later = [line for line in second.read_text().splitlines() if re.search(VERDICT, line)]
    assert "| target | before | now | goal | |" in second.read_text()
    assert len(later) == len(rows)
    for row in later:
        assert row.split(" | ")[1] == earlier[target_name(row)], row


@pytest.mark.slow  # a minute of benchmark runs: CI's slow suite
def test_million_runs_small_and_prints_each_scale_target(tmp_path: Path) -> None:
    """benchmarks/million.py at 2,000 keys: every scale target with a verdict."""
    out = subprocess.run(
        [
            *(sys.executable, str(MILLION), "--keys", "2000", "--dir", str(tmp_path)),
            *("--filesystems=", "--markdown", str(tmp_path.parent / "million.md")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    for what in ("get: per-op cost", "in: per-op cost", "set: per-op cost", "open of 2,000 keys"):
        assert re.search(rf"^\| {re.escape(what)}.* \| (PASS|MISS) \|$", out, re.M), (what, out)
    for what in ("peak RSS iterating 2,000 keys", "len() of 2,000 keys, warm"):
        assert re.search(rf"^\| {re.escape(what)}.* \| (PASS|MISS) \|$", out, re.M), (what, out)
    assert list(tmp_path.iterdir()) == []
    table = (tmp_path.parent / "million.md").read_text()
    assert table.startswith("### 2,000 keys") and table in out

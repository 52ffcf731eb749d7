"""strace fault injection, swept over the syscalls of every mutating operation.

For each operation (library and CLI), a clean traced run counts how often it
calls each attacked syscall; then each occurrence N is made to fail
(``strace -e inject=SYSCALL:error=ERRNO:when=N``) on a fresh copy of the
store, and :func:`judge.verdict` judges what the files hold afterwards.

Default run: every occurrence of fsync, rename, unlink, mkdir and flock
(where commit points and cleanups live, and few), and a seeded sample of one
occurrence of the many openat, read, write and getdents64 calls.
``SOS_LONG=1``: every occurrence of everything. ``SOS_FAULT_SEED`` picks
another sample.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from . import tracer
from .figures import LONG, add
from .judge import verdict
from .operations import OPS, Op, make

_PROBLEM = tracer.strace_problem()
pytestmark = [pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or ""), pytest.mark.slow]

SEED = int(os.environ.get("SOS_FAULT_SEED", "14"))
ALWAYS_ALL = {"fsync", "fdatasync", "rename", "renameat", "renameat2", "unlink", "unlinkat"}
ALWAYS_ALL |= {"mkdir", "mkdirat", "flock"}
WORKERS = 2

# The cases that still fail after the core of issue 14 (main at eb0abe3):
# remove each mark when its fix is merged.
# Operations still expected to fail the judge, with the fix each waits for.
KNOWN: dict[str, str] = {}


@pytest.fixture
def workdir() -> Iterator[Path]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="sos-faults-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def occurrences(op: Op, name: str, total: int) -> list[int]:
    if LONG or name in ALWAYS_ALL or total <= 1:
        return list(range(1, total + 1))
    return [random.Random(f"{SEED}:{op.name}:{name}").randint(1, total)]


def sweep(op: Op, workdir: Path) -> tuple[int, list[str]]:
    """(runs, violations) of ``op`` under every planned injection."""
    template = workdir / "template"
    make(op, template / "store", template)
    clean_dir = workdir / "clean"
    shutil.copytree(template, clean_dir)
    clean = tracer.run(op.spec(clean_dir / "store", clean_dir), clean_dir, sorted(tracer.ATTACKED))
    problems = [f"clean run: {p}" for p in verdict(clean_dir / "store", op, clean)]
    if not clean.returned:
        return 1, [*problems, f"clean run raised: {clean.outcome} {clean.stderr[-800:]}"]
    counts = tracer.count(clean.log)
    plan = [
        (name, n) for name, total in sorted(counts.items()) for n in occurrences(op, name, total)
    ]

    def attack(index: int, name: str, n: int) -> list[str]:
        run_dir = workdir / f"run{index}"
        shutil.copytree(template, run_dir)
        try:
            run = tracer.run(
                op.spec(run_dir / "store", run_dir), run_dir, sorted(tracer.ATTACKED), (name, n)
            )
            found = verdict(run_dir / "store", op, run)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        where = f"{op.name}, {name} #{n} -> {tracer.ATTACKED[name][0]}"
        return [f"{where}: {p}" for p in found]

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda job: attack(*job), [(i, *p) for i, p in enumerate(plan)]))
    for name in counts:
        add(f"strace: {tracer.ATTACKED[name][1]} occurrences tried", 0)
    for name, _ in plan:
        add(f"strace: {tracer.ATTACKED[name][1]} occurrences tried")
    add("strace: operations attacked")
    add("strace: runs", len(plan))
    for found in results:
        problems += found
    return len(plan), problems


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(o, marks=pytest.mark.xfail(strict=True, reason=KNOWN[o.name]))
        if o.name in KNOWN
        else o
        for o in OPS
    ],
    ids=[o.name for o in OPS],
)
def test_every_failed_syscall_leaves_old_or_new(op: Op, workdir: Path) -> None:
    runs, problems = sweep(op, workdir)
    add("strace: failures", len(problems))
    assert not problems, f"{len(problems)} of {runs} runs went wrong:\n" + "\n".join(problems[:25])


def _broken(op_name: str, code: str) -> Op:
    return replace(next(o for o in OPS if o.name == op_name), code=code)


def test_the_judge_catches_a_value_lost_after_the_commit(workdir: Path) -> None:
    """A pop that raises once its removal is committed, carrying nothing: red."""
    op = _broken("list-pop-first", 'result = s.pop(0)\nraise OSError(5, "after the commit")')
    make(op, workdir / "store", workdir)
    run = tracer.run(op.spec(workdir / "store", workdir), workdir, [])
    found = verdict(workdir / "store", op, run)
    assert any("neither returned it nor carried it" in f for f in found), found


def test_the_judge_catches_a_swallowed_error(workdir: Path) -> None:
    """A set whose temp file's fsync failed, and that returns anyway: red."""
    op = _broken("dict-set-existing", 'try:\n    s["a"] = 2\nexcept OSError:\n    pass')
    make(op, workdir / "store", workdir)
    run = tracer.run(
        op.spec(workdir / "store", workdir), workdir, sorted(tracer.ATTACKED), ("fsync", 1)
    )
    found = verdict(workdir / "store", op, run)
    assert any("returned normally although this failed" in f for f in found), found
    assert any("returned, but the store holds" in f for f in found), found

"""Faults of issue 14 that are one case each, run in a child with a time limit.

- The same process must never deadlock on itself: a second handle writing
  inside a batch, or sos.check on a damaged store inside a batch, raises a
  clear error at once.
- A store directory replaced under an open handle (rm -rf S && mkdir S): the
  next write notices and raises, leaving no half-store; also when the
  replacement (or a plain removal) lands between the lock and the write,
  where a check of the path cannot see it (issue 19: writes are made
  relative to the directory descriptor the handle holds).
- Every OSError the library raises names the store (strace makes the fsync,
  write, flock or read fail).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import sos

from . import tracer
from .figures import add
from .limits import run_read
from .test_planted import make_store


@pytest.mark.parametrize(
    "code",
    [
        'a = sos.Dict(R); b = sos.Dict(R)\nwith a.batch():\n    a["x"] = 1\n    b["y"] = 2',
        'a = sos.List(R + "l"); b = sos.List(R + "l")\nwith a.batch():\n    b.append(1)',
        'a = sos.Dict(R)\nopen(R + "/.sos-tmp-0000000000000000", "w").close()\n'
        'with a.batch():\n    a["x"] = 1\n    result = sos.check(R)',
    ],
    ids=["second-dict-handle", "second-list-handle", "check-inside-batch"],
)
def test_the_same_process_never_waits_for_itself(code: str, tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_store("dict", root)
    outcome = run_read({"root": str(root), "code": code}, timeout=5.0)
    assert outcome.status is not None, "deadlocked: still waiting after 5 s"
    result = outcome.result or {}
    assert "raised" in result and "sos" in result, outcome
    assert str(root) in result["message"], result


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_a_store_replaced_under_its_handle_is_noticed(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_store(kind, root)
    write = 's["k"] = 1' if kind == "dict" else "s.append(1)"
    code = f"import shutil, os\ns = sos.open(R)\nshutil.rmtree(R); os.mkdir(R)\n{write}"
    outcome = run_read({"root": str(root), "code": code})
    result = outcome.result or {}
    assert "raised" in result, f"the write returned into a directory that is not a store: {result}"
    assert str(root) in result["message"], result
    assert os.listdir(root) == [], "the write left files in the new directory"


# The replacement happens at the last instant before the write's temp file is
# made (when its name is drawn): after the lock is taken and after any
# check of the store's path, as a concurrent `rm -rf S && mkdir S` may.
_IN_WINDOW = """import shutil, os
from sos.storage import fileops
s = sos.open(R)
{before}
drawn = fileops.temp_name
def temp_name():
    fileops.temp_name = drawn
    shutil.rmtree(R)
    {remake}
    return drawn()
fileops.temp_name = temp_name
{write}
"""

_WRITES = {
    "dict-set": ("dict", 's["k"] = 1'),
    "dict-set-existing": ("dict", 's["a"] = 5'),
    "list-append": ("list", "s.append(1)"),
    "dict-transaction": ("dict", 'with s.transaction():\n    s["k"] = 1\n    s["a"] = 5'),
}


@pytest.mark.parametrize("remake", ["replaced", "removed"])
@pytest.mark.parametrize("written_before", [False, True], ids=["first-write", "later-write"])
@pytest.mark.parametrize("case", sorted(_WRITES))
def test_a_store_replaced_during_a_write_is_refused(
    case: str, written_before: bool, remake: str, tmp_path: Path
) -> None:
    """No write lands in a directory that replaced the store while the write
    ran, nor re-creates a removed one: a clear sos.Error naming the store."""
    kind, write = _WRITES[case]
    root = tmp_path / "store"
    make_store(kind, root)
    before = ('s["b"] = 0' if kind == "dict" else "s.append(0)") if written_before else ""
    code = _IN_WINDOW.format(
        before=before, remake="os.mkdir(R)" if remake == "replaced" else "pass", write=write
    )
    outcome = run_read({"root": str(root), "code": code})
    result = outcome.result or {}
    assert "raised" in result, f"the write returned into a directory not the store: {result}"
    assert result["raised"] == "Error", result
    assert str(root) in result["message"] and "removed" in result["message"], result
    if remake == "replaced":
        assert os.listdir(root) == [], "the write left files in the new directory"
    else:
        assert not root.exists(), "the write made the removed store directory again"


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sos-faults-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_PROBLEM = tracer.strace_problem()


@pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")
@pytest.mark.parametrize(
    "code,syscall,n",
    [
        pytest.param('s["a"] = 2', "fsync", 1),
        ('s["a"] = 2', "fsync", 2),
        pytest.param('s["a"] = 2', "write", 1),
        pytest.param('s["a"] = 2', "flock", 1),
        pytest.param('result = s["a"]', "read", 1),
    ],
    ids=["fsync-file", "fsync-dir", "write", "flock", "read"],
)
def test_every_oserror_names_the_store(code: str, syscall: str, n: int, workdir: Path) -> None:
    root = workdir / "store"
    make_store("dict", root)
    run = tracer.run({"root": str(root), "code": code}, workdir, [syscall], (syscall, n))
    add("errors naming the store: runs")
    assert run.injected, "the fault was not reached"
    outcome = run.outcome or {}
    assert "raised" in outcome, outcome
    said = outcome["message"] + " " + " ".join(map(str, outcome.get("carried", [])))
    assert str(root) in said, f"{outcome['raised']} does not name {root}: {said[:300]}"


@pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")
@pytest.mark.parametrize("n", [2, 3, 4])
def test_a_transaction_that_runs_out_of_space_after_its_record_changes_nothing(
    n: int, workdir: Path
) -> None:
    """ENOSPC on the n-th write of a transaction: the record is the 1st, its
    three documents the next. Past the commit point no file may have been
    touched yet (every file is staged before any is renamed), so the record
    is taken back: a plain OSError naming the file (nothing happened), the
    old contents, no record pending, no temporary file left."""
    root = workdir / "store"
    make_store("dict", root)
    before = dict(sos.Dict(root))
    code = 'with s.transaction():\n    s["a"] = 100\n    s["t1"] = 1\n    s["t2"] = 2'
    run = tracer.run({"root": str(root), "code": code}, workdir, ["write"], ("write", n))
    add("transaction out of space: runs")
    assert run.injected, "the fault was not reached"
    outcome = run.outcome or {}
    assert outcome.get("raised") == "OSError", outcome
    assert str(root) in outcome["message"] and "No space" in outcome["message"], outcome
    assert dict(sos.Dict(root)) == before, "a transaction that raised changed the store"
    assert not (root / ".sos" / "txn.json").exists(), "the record was left pending"
    leftovers = list(root.rglob(".sos-tmp-*"))
    assert not leftovers, leftovers

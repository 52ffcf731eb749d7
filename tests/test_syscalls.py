"""The real system calls of a write, seen by strace, not the ``ops`` seam.

The crash-point and power-loss suites record ``sos.storage.atomic.ops``, so a build
broken *below* that seam (an ``os.fsync`` that skips directories, patched
in by a ``sitecustomize.py``) passes them. Here a child process does a set,
a delete, an append and a transaction under ``strace -f -y`` and the log
itself must show, for each:

- every file renamed into place was fsynced (its temp file's descriptor)
  before the rename, and its directory fsynced after the rename and before
  the operation returned; every unlink followed by its directory's fsync;
- a transaction: its record fsynced, renamed and its directory fsynced before
  the first document is touched; every document it applied fsynced (or the
  filesystem ``syncfs``-ed) and its directory fsynced before the record is
  removed.

The same check, run against two broken builds (file fsyncs skipped,
directory fsyncs skipped), must fail: ``test_the_check_fails_on_broken_builds``
(marked ``mutants`` and ``slow``). strace is installed by .ci/faults.sh.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults.tracer import strace_problem  # the one probe of the fault suite

TRACED = "fsync,fdatasync,syncfs,rename,renameat,renameat2,unlink,unlinkat,getppid"

# Each operation is framed by getppid() calls, a syscall sos never makes.
_CHILD = textwrap.dedent(
    """
    import os, sys
    import sos
    d = sos.Dict(sys.argv[1] + "/d")
    lst = sos.List(sys.argv[1] + "/l")
    d["gone"] = 0
    d["old"] = 1
    lst.append("first")
    with d.transaction():  # the first one also raises the metadata's format
        d["warm"] = 0
    print("ready", flush=True)
    sys.stdin.readline()
    os.getppid()
    d["new"] = {"v": 1}
    os.getppid()
    del d["gone"]
    os.getppid()
    lst.append({"v": 2})
    os.getppid()
    with d.transaction():
        d["old"] = 2
        d["t"] = 3
        del d["new"]
    os.getppid()
    d.close()
    lst.close()
    """
)
OPERATIONS = ["set", "delete", "append", "transaction"]

_DOCUMENT = re.compile(r"/[0-9a-f]{2}/[0-9a-f]{32}\.json$")
_LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
_ARG = re.compile(r'(-?\d+)<([^>]*)>|"((?:[^"\\]|\\.)*)"|AT_FDCWD')


@dataclass
class Call:
    name: str  # fsync, rename, unlink, syncfs, mark
    paths: list[str]  # fsync: the descriptor's path; rename: source, target


_UNFINISHED = re.compile(r"^(\d+)\s+(.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. \w+ resumed>(.*)$")


def _joined(log: str) -> list[str]:
    """strace's lines, a call split by another thread's (``<unfinished ...>``
    then ``<... name resumed>``) joined again: a marker split that way would
    otherwise be lost, and the operations run together."""
    pending: dict[str, str] = {}
    lines = []
    for line in log.splitlines():
        if (m := _UNFINISHED.match(line)) is not None:
            pending[m.group(1)] = f"{m.group(1)} {m.group(2)}"
        elif (m := _RESUMED.match(line)) is not None and m.group(1) in pending:
            lines.append(pending.pop(m.group(1)) + m.group(2))
        else:
            lines.append(line)
    return lines


def _parse(log: str) -> list[Call]:
    calls = []
    for line in _joined(log):
        match = _LINE.match(line)
        if match is None or int(match.group(4)) < 0:
            continue  # unfinished/resumed pieces, failed calls
        name, args = match.group(2), match.group(3)
        if name == "getppid":
            calls.append(Call("mark", []))
            continue
        # Arguments in order: N</dir> (a descriptor), "string", or AT_FDCWD.
        parts: list[str | None] = []
        for arg in _ARG.finditer(args):
            if arg.group(2) is not None:
                parts.append(arg.group(2))
            elif arg.group(3) is not None:
                parts.append(arg.group(3))
            else:
                parts.append(None)
        if name in ("fsync", "fdatasync", "syncfs"):
            calls.append(Call("syncfs" if name == "syncfs" else "fsync", [parts[0] or ""]))
        elif name in ("rename", "unlink"):
            calls.append(Call(name, [p or "" for p in parts]))
        elif name in ("renameat", "renameat2"):
            src = os.path.join(parts[0] or "", parts[1] or "")
            dst = os.path.join(parts[2] or "", parts[3] or "")
            calls.append(Call("rename", [src, dst]))
        elif name == "unlinkat":
            calls.append(Call("unlink", [os.path.join(parts[0] or "", parts[1] or "")]))
    return calls


def trace(work: Path, env: dict[str, str] | None = None) -> dict[str, list[Call]]:
    """Run the child under strace; its calls per operation."""
    log_path = work / "strace.log"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(work)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None and child.stdin is not None
    ready = child.stdout.readline()
    if ready != "ready\n":
        child.kill()
        raise AssertionError(f"child did not start: {ready!r} {child.communicate()[1][-2000:]}")
    tracer = subprocess.Popen(
        [
            "strace",
            "-f",
            "-y",
            "-s",
            "4096",
            "-o",
            str(log_path),
            "-e",
            "trace=" + TRACED,
            "-p",
            str(child.pid),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    first = tracer.stderr.readline()
    assert "attached" in first, first
    child.stdin.write("go\n")
    child.stdin.flush()
    _, err = child.communicate(timeout=60)
    tracer.wait(timeout=60)
    assert child.returncode == 0, err[-2000:]
    segments: list[list[Call]] = [[]]
    for call in _parse(log_path.read_text()):
        if call.name == "mark":
            segments.append([])
        else:
            segments[-1].append(call)
    assert len(segments) == len(OPERATIONS) + 2, f"{len(segments)} segments: {segments}"
    return dict(zip(OPERATIONS, segments[1:-1], strict=True))


def _is_dir_sync(call: Call, directory: str) -> bool:
    return call.name == "fsync" and os.path.normpath(call.paths[0]) == os.path.normpath(directory)


def check_write(op: str, calls: list[Call]) -> list[str]:
    """What is missing from one durable write's (or delete's) calls."""
    problems = []
    changes = [(i, c) for i, c in enumerate(calls) if c.name in ("rename", "unlink")]
    if not changes:
        return [f"{op}: no rename or unlink at all"]
    for i, call in changes:
        target = call.paths[-1]
        if call.name == "rename":
            source = call.paths[0]
            if not any(c.name == "fsync" and c.paths[0] == source for c in calls[:i]):
                problems.append(f"{op}: {target} renamed into place without an fsync of its data")
        directory = os.path.dirname(target)
        if not any(_is_dir_sync(c, directory) for c in calls[i + 1 :]):
            problems.append(f"{op}: no fsync of {directory} after the {call.name} of {target}")
    return problems


def check_transaction(calls: list[Call]) -> list[str]:
    problems = []
    record = [
        i
        for i, c in enumerate(calls)
        if c.name == "rename" and c.paths[1].endswith("/.sos/txn.json")
    ]
    if len(record) != 1:
        return [f"transaction: {len(record)} renames of the record, not one"]
    at = record[0]
    rename = calls[at]
    if not any(c.name == "fsync" and c.paths[0] == rename.paths[0] for c in calls[:at]):
        problems.append("transaction: the record renamed without an fsync of its data")
    sos_dir = os.path.dirname(rename.paths[1])
    synced = [i for i in range(at + 1, len(calls)) if _is_dir_sync(calls[i], sos_dir)]
    if not synced:
        return [*problems, "transaction: the record's directory never fsynced"]
    committed = synced[0]
    removed = [
        i
        for i, c in enumerate(calls)
        if c.name == "unlink" and c.paths[0].endswith("/.sos/txn.json")
    ]
    if len(removed) != 1:
        return [*problems, f"transaction: the record unlinked {len(removed)} times"]
    end = removed[0]
    applied = [
        (i, c)
        for i, c in enumerate(calls)
        if c.name in ("rename", "unlink") and _DOCUMENT.search(c.paths[-1])
    ]
    if len(applied) != 3:
        problems.append(f"transaction: {len(applied)} documents changed, not 3")
    for i, call in applied:
        target = call.paths[-1]
        if i < committed:
            problems.append(f"transaction: {target} changed before the record was durable")
        between = calls[i + 1 : end]
        if call.name == "rename" and not any(
            c.name == "syncfs" or (c.name == "fsync" and c.paths[0] == target) for c in between
        ):
            problems.append(f"transaction: {target} applied, never fsynced before the record went")
        directory = os.path.dirname(target)
        if not any(c.name == "syncfs" or _is_dir_sync(c, directory) for c in between):
            problems.append(f"transaction: {directory} not fsynced before the record went")
    return problems


def check(work: Path, env: dict[str, str] | None = None) -> list[str]:
    """Everything the strace log says is missing, over the four operations."""
    ops = trace(work, env)
    problems = []
    for op in ("set", "delete", "append"):
        problems += check_write(op, ops[op])
    problems += check_transaction(ops["transaction"])
    return problems


_PROBLEM = strace_problem()
needs_strace = pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")


@needs_strace
def test_every_write_fsyncs_renames_and_fsyncs_its_directory_in_order(tmp_path: Path) -> None:
    problems = check(tmp_path)
    assert not problems, "\n".join(problems)


# -- the check goes red on builds broken below the seam -------------------------

_SITECUSTOMIZE = {
    "no-dir-fsync": "S_ISDIR",
    "no-file-fsync": "S_ISREG",
}
_PATCH = textwrap.dedent(
    """
    import os, stat
    _fsync = os.fsync
    def fsync(fd):
        if stat.{test}(os.fstat(fd).st_mode):
            return None  # skipped, silently
        return _fsync(fd)
    os.fsync = fsync
    """
)


@needs_strace
@pytest.mark.slow
@pytest.mark.mutants
@pytest.mark.parametrize("mutant", sorted(_SITECUSTOMIZE))
def test_the_check_fails_on_broken_builds(mutant: str, tmp_path: Path) -> None:
    """A ``sitecustomize.py`` on PYTHONPATH replaces ``os.fsync`` (below
    sos's ``ops`` seam) with one that skips directories, or files; the
    strace check of the default suite must then find what is missing."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_PATCH.format(test=_SITECUSTOMIZE[mutant]))
    work = tmp_path / "work"
    work.mkdir()
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    problems = check(work, env)
    print(f"{mutant}: {len(problems)} problems found", *problems, sep="\n  ")
    assert problems, f"the strace check passed a build with {mutant}"
    if mutant == "no-dir-fsync":  # what it must name: the missing directory fsyncs
        assert all("no fsync of" in p or "directory" in p for p in problems), problems
    else:
        assert all("fsync of its data" in p or "never fsynced" in p for p in problems), problems

"""kill -9 at random moments: a writer process (dict sets of a few bytes to
several MB, list appends and inserts) is SIGKILLed again and again; after each
kill everything it reported done must be there, and nothing torn.

12 kills in the default run; the soak (``-m slow``, run by ``.ci/run``) does
100, and 10,000 with ``SOS_LONG=1``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

import sos
from sos.storage import atomic as _atomic

from . import harness
from .mutants import InPlace

LONG = os.environ.get("SOS_LONG") == "1"
KILLS = 10_000 if LONG else 100  # the soak
SHORT_KILLS = 12  # the default run: the same loop, long enough to see a few kills land
KILLS_PER_STORE = 200  # a fresh pair of stores now and then keeps checks O(1)
_DICT_SIZES = [8, 300, 20_000, 400_000, 3_000_000]
_DICT_WEIGHTS = [30, 30, 20, 12, 8]
_LIST_SIZES = [8, 300, 20_000]


def make_value(key: str, seq: int, size: int) -> dict[str, Any]:
    pad = (f"{key}:{seq}:" * (size // 8 + 1))[:size]
    return {"key": key, "seq": seq, "pad": pad, "sum": _sum(key, seq, pad)}


def _sum(key: str, seq: int, pad: str) -> str:
    return hashlib.sha256(f"{key}|{seq}|{pad}".encode()).hexdigest()


def torn(value: Any, key: str) -> bool:
    """True unless ``value`` is a whole value made by make_value for ``key``."""
    try:
        return value["key"] != key or value["sum"] != _sum(key, value["seq"], value["pad"])
    except (TypeError, KeyError):
        return True


def writer(root: Path, report: Path, first_seq: int, seed: int, only_big: bool = False) -> None:
    """Write forever, appending one flushed line to ``report`` per call returned."""
    rng = random.Random(seed)
    db = sos.Dict(root / "dict")
    lst = sos.List(root / "list")
    out = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    seq = first_seq
    while True:
        seq += 1
        dice = rng.random()
        if only_big or dice < 0.5:
            key = f"k{rng.randrange(2 if only_big else 12)}"
            size = 3_000_000 if only_big else rng.choices(_DICT_SIZES, _DICT_WEIGHTS)[0]
            db[key] = make_value(key, seq, size)
            line = f"D {key} {seq}\n"
        elif dice < 0.8:
            lst.append(make_value("L", seq, rng.choice(_LIST_SIZES)))
            line = f"A {seq}\n"
        else:
            lst.insert(rng.randrange(len(lst) + 1), make_value("L", seq, rng.choice(_LIST_SIZES)))
            line = f"I {seq}\n"
        os.write(out, line.encode())  # one write(2): whole lines, or a cut last one


def verify(root: Path, report: Path, kills: int) -> list[str]:
    """What is wrong with the stores, given all the writer reported done."""
    lines = report.read_bytes().decode().split("\n")[:-1]  # drop a cut last line
    last: dict[str, int] = {}
    added: set[int] = set()
    appended: list[int] = []
    for line in lines:
        tag, *rest = line.split()
        if tag == "D":
            last[rest[0]] = max(last.get(rest[0], 0), int(rest[1]))
        else:
            added.add(int(rest[0]))
            if tag == "A":
                appended.append(int(rest[0]))
    out: list[str] = []
    for kind, reported in (("dict", last), ("list", added)):
        if not (root / kind / "sos.json").exists():
            # Killed while creating the store: allowed while nothing was
            # reported; the next writer claims the directory.
            return [f"{kind} store lost after writes were reported"] if reported else []
    try:
        db = sos.Dict(root / "dict", create=False)
        stored = dict(db.items())
        db.close()
        lst = sos.List(root / "list", create=False)
        items = list(lst)
        lst.close()
    except Exception as exc:
        return [f"reading raised {type(exc).__name__}: {exc}"]
    for key, value in stored.items():
        if torn(value, key):
            out.append(f"dict key {key} holds a torn value")
        elif value["seq"] < last.get(key, 0):
            out.append(f"dict key {key}: seq {value['seq']} older than reported {last[key]}")
    out += [f"dict key {k} reported written, missing" for k in last if k not in stored]
    seqs = []
    for value in items:
        if torn(value, "L"):
            out.append("list holds a torn item")
        else:
            seqs.append(value["seq"])
    if len(seqs) != len(set(seqs)):
        out.append("list holds an item twice")
    out += [f"list item {s} reported added, missing" for s in sorted(added - set(seqs))]
    unreported = set(seqs) - added
    if len(unreported) > kills:  # at most the call in flight at each kill
        out.append(f"{len(unreported)} unreported list items after {kills} kills")
    in_order = [s for s in seqs if s in set(appended)]
    if in_order != sorted(in_order):
        out.append("appended items out of order")
    for kind in ("dict", "list"):
        out += harness.leftovers(str(root / kind), kind)[2]
        out += harness.check_problems(str(root / kind), kind)
    return out


def kill_loop(
    base: Path, kills: int, seed: int, only_big: bool = False, stop_at_first: bool = False
) -> tuple[int, list[str]]:
    """(kills done, violations) of ``kills`` SIGKILLed writer runs."""
    rng = random.Random(seed)
    found: list[str] = []
    done = 0
    for n in range(kills):
        root = base / f"round-{n // KILLS_PER_STORE}"
        root.mkdir(exist_ok=True)
        report = root / "report.txt"
        report.touch()  # the writer may be killed before it opens it
        pid = os.fork()
        if pid == 0:  # the writer; dies only by SIGKILL
            try:
                if only_big:
                    _atomic.ops = _InPlaceInPieces()
                writer(root, report, n * 1_000_000, seed + n, only_big)
            except BaseException:  # shown in the test's captured output
                traceback.print_exc()
                sys.stderr.flush()  # os._exit flushes nothing
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.01, 0.15))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            return done, [f"writer exited by itself with {os.WEXITSTATUS(status)}"]
        done += 1
        problems = verify(root, report, n % KILLS_PER_STORE + 1)
        found += [f"after kill {n}: {p}" for p in problems]
        if found and stop_at_first:
            break
    return done, found


class _InPlaceInPieces(InPlace):
    """A broken build: truncate and rewrite the file itself, as dictdatabase
    does, 4 KiB at a time and with no fsync: a wide window to be killed in."""

    def fsync(self, fd: int) -> None:
        pass

    def fsync_dir(self, path: str) -> None:
        pass

    def rename(self, src: str, dst: str) -> None:
        with open(src, "rb") as f:
            data = f.read()
        os.unlink(src)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for i in range(0, len(data), 4096):
                os.write(fd, data[i : i + 4096])
        finally:
            os.close(fd)


@pytest.mark.parametrize(
    "kills",
    [pytest.param(SHORT_KILLS, id="short"), pytest.param(KILLS, marks=pytest.mark.slow, id="soak")],
)
def test_kill9_loop(tmp_path: Path, kills: int):
    done, found = kill_loop(tmp_path, kills, seed=9)
    harness.add_figure("kill -9 kills", done)
    assert found == []
    assert done == kills


def test_kill9_loop_catches_in_place_writes(tmp_path: Path):
    """The same loop against a build that writes files in place goes red."""
    _, found = kill_loop(tmp_path, 60, seed=1, only_big=True, stop_at_first=True)
    assert any("torn" in f or "CorruptError" in f for f in found), found

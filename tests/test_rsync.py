"""Copying a store with the real rsync while another process writes to it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import run, sos

import sos as sos_api

pytestmark = pytest.mark.skipif(shutil.which("rsync") is None, reason="needs the rsync program")

RECOMMENDED = ["rsync", "-aF", "--delay-updates"]

# Rewrites every key (or appends and removes list items) as fast as it can until
# the stop file appears. Each value carries a check of itself, so a torn value
# would show: "blob" is str(n) repeated.
WRITER = textwrap.dedent(
    """
    import os, sys, itertools
    import sos
    kind, path, stop = sys.argv[1:]
    store = sos.Dict(path) if kind == "dict" else sos.List(path)
    for n in itertools.count():
        if os.path.exists(stop):
            break
        value = {"n": n, "blob": str(n) * 400}
        if kind == "dict":
            store[f"k{n % 40}"] = value
        else:
            store.append(value)
            if len(store) > 30:
                del store[n % 7]
        if n == 100:
            print("running", flush=True)
    store.close()
    """
)


def copy(command: list[str], src: Path, dst: Path) -> None:
    """rsync exits 24 when a file vanished between listing and sending: a temp
    file renamed away, or a removed item. Expected while a writer runs."""
    proc = run(*command, f"{src}/", f"{dst}/", expect=None)
    assert proc.returncode in (0, 24), proc.stderr


def complete(value: object) -> bool:
    return isinstance(value, dict) and value["blob"] == str(value["n"]) * 400


class Writer:
    def __init__(self, kind: str, path: Path, tmp: Path) -> None:
        self.stop = tmp / f"stop-{kind}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, kind, str(path), str(self.stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline() == "running\n"

    def finish(self) -> None:
        self.stop.touch()
        assert self.proc.wait(timeout=60) == 0
        self.proc.stdout.close()


def copies_under_a_writer(
    kind: str, src: Path, tmp: Path, copy_to: Callable[[Path], None], pause: float = 0.0
) -> list[Path]:
    """Four copies of ``src`` made by ``copy_to`` while a writer process changes it."""
    writer = Writer(kind, src, tmp)
    try:
        copies = []
        for round_ in range(4):
            dst = tmp / f"copy{round_}"
            copy_to(dst)
            copies.append(dst)
            time.sleep(pause)
    finally:
        writer.finish()
    return copies


def test_the_store_ships_the_rsync_filter(tmp_path: Path):
    with sos_api.Dict(tmp_path / "s") as db:
        db["a"] = 1
    assert (tmp_path / "s" / ".rsync-filter").read_text() == "- .sos-tmp-*\n- .sos/\n"
    (tmp_path / "s" / ".sos-tmp-0000000000000001").write_text("half")
    inner = Path(sos_api.Dict(tmp_path / "s").path_of("a")).parent / ".sos-tmp-0000000000000002"
    inner.write_text("half")
    run(*RECOMMENDED, f"{tmp_path / 's'}/", f"{tmp_path / 'copy'}/")
    copied = sorted(p.name for p in (tmp_path / "copy").rglob("*"))
    assert not [n for n in copied if n.startswith(".sos-tmp-")], copied
    assert ".rsync-filter" in copied and ".gitignore" in copied  # -F, not -FF
    # Without -F the temp files come along, and repair removes only them.
    run("rsync", "-a", f"{tmp_path / 's'}/", f"{tmp_path / 'plain'}/")
    fixed = sos("check", "--repair", tmp_path / "plain").stdout.splitlines()
    assert len(fixed) == 2 and all(line.startswith("temp-file:") for line in fixed)


@pytest.mark.parametrize("command", [["rsync", "-a"], RECOMMENDED], ids=["plain", "recommended"])
def test_rsync_of_a_dict_being_written(tmp_path: Path, command: list[str]):
    src = tmp_path / "src"
    with sos_api.Dict(src) as db:
        db.update({f"k{i}": {"n": -1, "blob": "-1" * 400} for i in range(40)})
    copies = copies_under_a_writer("dict", src, tmp_path, lambda dst: copy(command, src, dst))
    for dst in copies:
        problems = sos_api.check(dst, repair=True)
        assert {p.code for p in problems} <= {"temp-file"}, problems
        if command == RECOMMENDED:
            assert problems == []
        assert sos_api.check(dst) == []
        with sos_api.Dict(dst) as db:
            values = dict(db.items())
        assert sorted(values) == sorted(f"k{i}" for i in range(40))
        assert all(complete(v) for v in values.values())


def test_rsync_of_a_list_under_the_store_lock(tmp_path: Path):
    """flock(1) on the store directory holds writers off: the copy is one state of the list."""
    if shutil.which("flock") is None:
        pytest.skip("needs flock(1)")
    src = tmp_path / "src"
    with sos_api.List(src) as lst:
        lst.extend({"n": -i, "blob": str(-i) * 400} for i in range(1, 11))
    copies = copies_under_a_writer(
        "list",
        src,
        tmp_path,
        lambda dst: run("flock", src, *RECOMMENDED, f"{src}/", f"{dst}/"),
        pause=0.05,
    )
    for dst in copies:
        assert sos_api.check(dst) == []
        with sos_api.List(dst) as lst:
            items = list(lst)
        assert items and all(complete(v) for v in items)


def test_rsync_of_a_list_without_the_lock_is_repairable(tmp_path: Path):
    """Without the lock the manifest and the items are copied at different moments:
    the copy still opens, and repair leaves a valid list of complete items."""
    src = tmp_path / "src"
    with sos_api.List(src) as lst:
        lst.extend({"n": -i, "blob": str(-i) * 400} for i in range(1, 11))
    copies = copies_under_a_writer("list", src, tmp_path, lambda dst: copy(RECOMMENDED, src, dst))
    for dst in copies:
        problems = sos_api.check(dst, repair=True)
        assert {p.code for p in problems} <= {"orphan-item", "missing-item"}, problems
        assert sos_api.check(dst) == []
        with sos_api.List(dst) as lst:
            assert all(complete(v) for v in lst)

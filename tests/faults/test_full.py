"""Real full filesystems and resource limits, no injection: the kernel says no.

A tiny tmpfs (``mount -t tmpfs -o size=...,nr_inodes=...``) is filled to
leave k pages, or k inodes, free, and each operation runs against it; then
RLIMIT_FSIZE (EFBIG on a write past the limit) and RLIMIT_NOFILE (EMFILE on
the k-th new descriptor). The judge is :func:`judge.verdict`, run once the
space is given back (check --repair may need some).

Mounting needs root (CAP_SYS_ADMIN); where the mount is refused the tmpfs
cases skip and say so. CI runs .ci/run as root in its container, and
.ci/faults.sh installs what the suite needs.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import tracer
from .figures import LONG, add
from .judge import verdict
from .operations import OPS, Op, make

pytestmark = pytest.mark.slow
LIBRARY = [op for op in OPS if op.cli is None]
ALL_IDS = [op.name for op in OPS]
SEED = int(os.environ.get("SOS_FAULT_SEED", "14"))
SIZE = 256 << 10
INODES = 256
STEPS = 8  # free pages or free inodes: 0 .. STEPS - 1 (a fresh fan-out dir costs one)


def _points(op: Op, what: str) -> list[int]:
    if LONG:
        return list(range(STEPS))
    rng = random.Random(f"{SEED}:{op.name}:{what}")
    return sorted({0, rng.randrange(1, STEPS)})


@contextlib.contextmanager
def _mounted_tmpfs(prefix: str, size: int | str, inodes: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes and ``inodes`` inodes, unmounted afterwards;
    skips (saying why) where mounting is refused."""
    mount_point = Path(tempfile.mkdtemp(prefix=prefix))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes={inodes}", "tmpfs", mount_point],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        mount_point.rmdir()
        pytest.skip(
            "mount -t tmpfs refused (needs root or CAP_SYS_ADMIN; CI runs .ci/run as "
            f"root): {done.stderr.strip()[:200]}"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", mount_point], check=False)
        mount_point.rmdir()


@pytest.fixture(scope="module")
def tiny_fs() -> Iterator[Path]:
    with _mounted_tmpfs("sos-tinyfs-", SIZE, INODES) as mount_point:
        yield mount_point


def _empty(path: Path) -> None:
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _fill_space(fs: Path, pages_free: int) -> None:
    """A filler file leaving ``pages_free`` pages free (give or take tmpfs rounding)."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize - pages_free * st.f_frsize
    with open(fs / "filler", "wb") as f:
        chunk = b"\0" * (1 << 16)
        while free > 0:
            try:
                free -= f.write(chunk[: min(len(chunk), free)])
            except OSError:
                break


def _fill_inodes(fs: Path, inodes_free: int) -> None:
    fill = fs / "inodes"
    fill.mkdir()
    n = 0
    while os.statvfs(fs).f_favail > inodes_free:
        try:
            (fill / str(n)).touch()
        except OSError:
            break
        n += 1


def _run_full(op: Op, fs: Path, fill) -> list[str]:
    _empty(fs)
    workdir = fs / "w"
    make(op, workdir / "store", workdir)
    fill()
    run = tracer.run(op.spec(workdir / "store", workdir), Path(tempfile.gettempdir()), [])
    for name in ("filler", "inodes"):  # room again, for check --repair
        path = fs / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if not run.returned:
        add("tmpfs: runs the kernel refused (raised)")
    return verdict(workdir / "store", op, run)


@pytest.mark.parametrize("op", OPS, ids=ALL_IDS)
def test_full_tmpfs_leaves_old_or_new(op: Op, tiny_fs: Path) -> None:
    problems = []
    for pages in _points(op, "space"):
        found = _run_full(op, tiny_fs, lambda p=pages: _fill_space(tiny_fs, p))
        problems += [f"{pages} pages free: {p}" for p in found]
        add("tmpfs: runs, space")
    for inodes in _points(op, "inodes"):
        found = _run_full(op, tiny_fs, lambda i=inodes: _fill_inodes(tiny_fs, i))
        problems += [f"{inodes} inodes free: {p}" for p in found]
        add("tmpfs: runs, inodes")
    add("tmpfs: failures", len(problems))
    assert not problems, "\n".join(problems[:20])


def _run_limited(op: Op, tmp: Path, prelude: str) -> list[str]:
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    make(op, tmp / "store", tmp)
    run = tracer.run({**op.spec(tmp / "store", tmp), "prelude": prelude}, tmp, [])
    if not run.returned:
        add("rlimit: runs the kernel refused (raised)")
    return verdict(tmp / "store", op, run)


_FSIZE = "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, ({n}, {n}))\n"
_NOFILE = (
    "import os, resource\n"
    "n = len(os.listdir('/proc/self/fd')) + {n}\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))\n"
)


@pytest.mark.parametrize("op", LIBRARY, ids=[op.name for op in LIBRARY])
def test_resource_limits_leave_old_or_new(op: Op, tmp_path: Path) -> None:
    """RLIMIT_FSIZE below a document's size (EFBIG); RLIMIT_NOFILE a few
    descriptors above what is open (EMFILE where a group commit opens many)."""
    problems = []
    fsizes = [0, 60] if not LONG else [0, 20, 40, 60, 80, 100, 150]
    nofiles = [0, 3] if not LONG else list(range(10))
    for n in fsizes:
        found = _run_limited(op, tmp_path / "run", _FSIZE.format(n=n))
        problems += [f"RLIMIT_FSIZE={n}: {p}" for p in found]
        add("rlimit: runs, FSIZE")
    for n in nofiles:
        found = _run_limited(op, tmp_path / "run", _NOFILE.format(n=n))
        problems += [f"RLIMIT_NOFILE=open+{n}: {p}" for p in found]
        add("rlimit: runs, NOFILE")
    add("rlimit: failures", len(problems))
    assert not problems, "\n".join(problems[:20])


# -- a big load or transaction on a disk that fills part-way (issue 19) ----------

_BIG = 1200  # items, each ~100 bytes: one tmpfs page each, so the disk fills mid-way
_BIG_FS = 8 << 20
_BIG_FREE_KB = [0, 200, 1600, 3200, 4400] if not LONG else list(range(0, 6000, 200))
_BIG_WRITE = {
    "cli-load": None,
    "transaction": (
        "import sys, sos\nd = sos.Dict(sys.argv[1])\n"
        "with d.transaction():\n"
        "    d.update({f'k{i}': {'n': i, 'pad': 'x' * 100} for i in range(N)})\n".replace(
            "N", str(_BIG)
        )
    ),
}


@pytest.fixture(scope="module")
def big_fs() -> Iterator[Path]:
    with _mounted_tmpfs("sos-bigfs-", _BIG_FS, 8000) as mount_point:
        yield mount_point


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tracer.REPO)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize("how", sorted(_BIG_WRITE))
def test_a_load_that_runs_out_of_space_leaves_an_openable_store(how: str, big_fs: Path) -> None:
    """``sos load`` of 1,200 items (or one transaction of them) onto a disk that
    fills part-way: the store still opens while the disk is full (no raw
    ENOSPC from open) and reads all old (the load failed) or all new (it
    returned), and once there is room again the next write leaves it all old
    or all new, with nothing torn."""
    source = big_fs.parent / f"sos-big-{os.getpid()}.json"
    source.write_text(
        "{" + ",".join(f'"k{i}": {{"n": {i}, "pad": "{"x" * 100}"}}' for i in range(_BIG)) + "}"
    )
    problems = []
    try:
        for free_kb in _BIG_FREE_KB:
            _empty(big_fs)
            store = big_fs / "S"
            made = _python("-c", f"import sos; sos.Dict({str(store)!r})['old'] = 1")
            assert made.returncode == 0, made.stderr
            st = os.statvfs(big_fs)
            leave = max(0, st.f_bavail * st.f_frsize - free_kb * 1024)
            with open(big_fs / "filler", "wb") as f:
                chunk = b"\0" * (1 << 16)
                while leave > 0:
                    try:
                        leave -= f.write(chunk[: min(len(chunk), leave)])
                    except OSError:
                        break
            if how == "cli-load":
                ran = _python("-m", "sos", "load", str(store), str(source))
            else:
                ran = _python("-c", _BIG_WRITE[how], str(store))
            add("tmpfs: big loads")
            where = f"{free_kb} KiB free ({'ok' if ran.returncode == 0 else 'failed'})"
            opened = _python(
                "-c", f"import sos; s = sos.open({str(store)!r}); print(len(s), s['old'])"
            )
            if opened.returncode != 0 or "Traceback" in opened.stderr:
                problems.append(f"{where}: open on the full disk: {opened.stderr[-400:]}")
            elif int(opened.stdout.split()[0]) != (_BIG + 1 if ran.returncode == 0 else 1):
                problems.append(
                    f"{where}: {opened.stdout.split()[0]} keys read on the full disk: "
                    "a load that failed must leave the old contents, one that returned the new"
                )
            (big_fs / "filler").unlink()
            wrote = _python(
                "-c",
                f"import sos; s = sos.open({str(store)!r}); s['after'] = 2; print(len(s))",
            )
            if wrote.returncode != 0:
                problems.append(f"{where}: the next write with room: {wrote.stderr[-400:]}")
                continue
            size = int(wrote.stdout.split()[0])
            if size not in (2, _BIG + 2):
                problems.append(f"{where}: {size} keys after the next write: neither old nor new")
            if ran.returncode == 0 and size != _BIG + 2:
                problems.append(f"{where}: the load returned but its items are not all there")
            checked = _python("-c", f"import sos; print(len(sos.check({str(store)!r})))")
            if checked.returncode != 0:
                problems.append(f"{where}: sos.check: {checked.stderr[-300:]}")
    finally:
        source.unlink(missing_ok=True)
    add("tmpfs: big-load failures", len(problems))
    assert not problems, "\n".join(problems)

"""Measure flat versus fan-out directory layouts for a sos store.

sos stores each key as one small JSON file named by a hex hash of the key.
This benchmark exists so that the choice between putting all files in one
directory ("flat") and spreading them over 256 subdirectories named by the
first two hex digits ("fanout", as git does for its objects) is made by
measurement, not by folklore. For each layout it times a full listing,
``key in``-style ``os.stat`` lookups, and the real ``git`` program: the first
``git add -A && git commit``, one-key commits (and the bytes each adds to
``.git/objects``), and ``git status`` on a clean tree.

Run:  python benchmarks/fanout.py --keys 100000 [--dir /some/scratch/dir]

Standard library only; needs ``git`` on the PATH. See docs/fanout.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LAYOUTS = ("flat", "fanout")
STAT_SAMPLES = 1000
REPEATS = 5
ONE_KEY_COMMITS = 3


@dataclass
class Result:
    layout: str
    create_s: float = 0.0
    list_cold_ms: float = 0.0
    list_warm_ms: float = 0.0
    stat_us: float = 0.0
    first_commit_s: float = 0.0
    one_key_commit_s: list[float] = field(default_factory=list)
    one_key_bytes: list[int] = field(default_factory=list)
    status_s: float = 0.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def relpath(layout: str, key: str) -> str:
    """The file of ``key`` in ``layout``: same digest and name as sos uses."""
    name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".json"
    return name if layout == "flat" else f"{name[:2]}/{name}"


def document(key: str, n: int) -> bytes:
    """A small sos-like document (about 80 bytes)."""
    doc = {"key": key, "value": {"n": n, "tag": "bench"}}
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def create(root: Path, layout: str, keys: list[str]) -> float:
    start = time.perf_counter()
    root.mkdir()
    if layout == "fanout":
        for i in range(256):
            (root / f"{i:02x}").mkdir()
    for n, key in enumerate(keys):
        with open(root / relpath(layout, key), "wb") as f:
            f.write(document(key, n))
    return time.perf_counter() - start


def list_all(root: Path) -> int:
    """Count every data file, descending one level into directories (skips .git)."""
    count = 0
    with os.scandir(root) as it:
        for entry in it:
            if entry.name == ".git":
                continue
            if entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as sub:
                    count += sum(1 for _ in sub)
            else:
                count += 1
    return count


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    return min(timed(fn) for _ in range(repeats))


def stat_all(paths: list[str]) -> None:
    for p in paths:
        os.stat(p)


def objects_bytes(repo: Path) -> int:
    """Apparent size of everything under .git/objects (all loose: gc.auto=0)."""
    total = 0
    for dirpath, _dirs, files in os.walk(repo / ".git" / "objects"):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def git_env() -> dict[str, str]:
    """An environment where git works on a clean machine and ignores user config."""
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="sos bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="sos bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
    )
    return env


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "gc.auto=0", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env=git_env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def add_commit(repo: Path, message: str) -> float:
    start = time.perf_counter()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return time.perf_counter() - start


def measure(base: Path, layout: str, keys: list[str], rng: random.Random) -> Result:
    res = Result(layout)
    root = base / layout
    log(f"[{layout}] creating {len(keys)} files")
    res.create_s = create(root, layout, keys)

    log(f"[{layout}] listing")
    res.list_cold_ms = timed(lambda: list_all(root)) * 1e3
    assert list_all(root) == len(keys)
    res.list_warm_ms = best_of(lambda: list_all(root)) * 1e3

    log(f"[{layout}] stat")
    sample = rng.sample(keys, min(STAT_SAMPLES, len(keys)))
    paths = [str(root / relpath(layout, k)) for k in sample]
    res.stat_us = best_of(lambda: stat_all(paths)) / len(paths) * 1e6

    log(f"[{layout}] git init, add -A, commit")
    git(root, "init", "-q")
    res.first_commit_s = add_commit(root, "all keys")

    for i in range(ONE_KEY_COMMITS):
        key = rng.choice(keys)
        (root / relpath(layout, key)).write_bytes(document(key, -1 - i))
        before = objects_bytes(root)
        res.one_key_commit_s.append(add_commit(root, f"change one key ({i})"))
        res.one_key_bytes.append(objects_bytes(root) - before)
        log(
            f"[{layout}] one-key commit {i}: {res.one_key_commit_s[-1]:.2f} s, "
            f"{res.one_key_bytes[-1]} bytes"
        )

    log(f"[{layout}] git status")
    git(root, "status")  # refresh the index once, then time the clean case
    res.status_s = best_of(lambda: git(root, "status"), repeats=3)
    return res


def table(results: list[Result]) -> str:
    header = (
        "| layout | list cold ms | list warm ms | stat µs | add+commit s "
        "| one-key commit s | bytes / one-key commit | git status s |"
    )
    rule = "|" + "|".join("---" for _ in range(8)) + "|"
    rows = [header, rule]
    for r in results:
        mean_s = sum(r.one_key_commit_s) / len(r.one_key_commit_s)
        mean_b = sum(r.one_key_bytes) / len(r.one_key_bytes)
        rows.append(
            f"| {r.layout} | {r.list_cold_ms:.0f} | {r.list_warm_ms:.0f} | {r.stat_us:.1f} "
            f"| {r.first_commit_s:.1f} | {mean_s:.2f} | {mean_b:,.0f} | {r.status_s:.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="number of keys (100000)")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch directory")
    parser.add_argument("--seed", type=int, default=1, help="random seed for sampled keys")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        parser.error("git is not on the PATH")

    keys = [f"user:{i:07d}" for i in range(args.keys)]
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="sos-fanout-", dir=args.dir))
    log(f"scratch directory: {base}")
    try:
        results = [measure(base, layout, keys, rng) for layout in LAYOUTS]
    finally:
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    print(
        f"keys={args.keys}  document={len(document(keys[0], 0))} bytes  "
        f"one-key commits averaged over {ONE_KEY_COMMITS}"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

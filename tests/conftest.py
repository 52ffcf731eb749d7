"""Shared fixtures: fresh store paths, and checks that tests leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import pytest


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path below ``directory`` with its bytes (None for directories).

    Compared before and after a refused call to prove the store is byte-identical.
    """
    tree: dict[str, bytes | None] = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            tree[os.path.relpath(os.path.join(root, name), directory)] = None
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                tree[os.path.relpath(path, directory)] = f.read()
    return tree


def temp_files(directory: Path) -> list[str]:
    """Our temporary files left anywhere in a store."""
    return [
        os.path.join(root, name)
        for root, _, files in os.walk(directory)
        for name in files
        if name.startswith(".sos-tmp-")
    ]


def digest_path(store: Path, key: str) -> Path:
    """Where the format says ``key`` lives, computed independently of sos."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return store / digest[:2] / f"{digest}.json"


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A path where a store may be created; checked for temp files afterwards."""
    path = tmp_path / "store"
    yield path
    assert temp_files(path) == [], "a temporary file was left in the store"


@pytest.fixture
def memory_url(request: pytest.FixtureRequest) -> str:
    """A fresh in-memory store location, forgotten afterwards."""
    from sos._memory import forget

    url = f"memory://{request.node.name}-{uuid.uuid4().hex}"
    yield url
    forget(url)


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaks file descriptors or threads."""
    fd_dir = "/proc/self/fd"
    before_fds = len(os.listdir(fd_dir)) if os.path.isdir(fd_dir) else None
    before_threads = threading.active_count()
    yield
    if before_fds is not None:
        import gc

        gc.collect()
        after = len(os.listdir(fd_dir))
        assert after <= before_fds, f"leaked {after - before_fds} file descriptor(s)"
    assert threading.active_count() <= before_threads, "leaked a thread"

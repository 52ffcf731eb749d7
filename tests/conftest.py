"""Shared fixtures: fresh store paths on tmpfs, checks that tests leave
nothing behind, and the soaks left out of the default run."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import forked
import lean
import pytest

TESTS = Path(__file__).resolve().parent
SHM = Path("/dev/shm")
WORKERS_PER_CORE = 2


def _reuse_bytecode() -> None:
    """Let the suite's processes reuse compiled bytecode, kept out of the tree.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (some machines set it to keep
    source trees free of ``__pycache__``), each pytest worker re-compiles and
    re-rewrites every test module, and every Python process a test starts
    re-compiles sos: some 25 CPU-seconds of a default run on 2 cores. A
    ``PYTHONPYCACHEPREFIX`` outside the tree keeps the tree as clean. Set here,
    at import in the controller, so the workers and every subprocess inherit
    it; an explicit prefix is kept.
    """
    if not os.environ.pop("PYTHONDONTWRITEBYTECODE", None) and not sys.dont_write_bytecode:
        return
    prefix = os.environ.setdefault(
        "PYTHONPYCACHEPREFIX", str(TESTS.parent / ".pytest_cache" / "pycache")
    )
    sys.dont_write_bytecode = False
    sys.pycache_prefix = prefix


_reuse_bytecode()


def tmpfs_available() -> bool:
    """Whether scratch directories may go on tmpfs (``SOS_TEST_DISK=1``: never)."""
    if os.environ.get("SOS_TEST_DISK") == "1":
        return False
    return SHM.is_dir() and os.access(SHM, os.W_OK)


def scratch_dir(prefix: str = "sos-test-") -> Path:
    """A new directory on tmpfs where there is one, else in the temp directory.
    The caller removes it (``shutil.rmtree``)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=SHM if tmpfs_available() else None))


def on_disk(item: pytest.Item) -> bool:
    """Tests that keep the real disk: the reliability suites (kill -9, bad
    input, concurrency; crash points and power loss choose ``fast_dir``
    themselves) and those marked ``disk``."""
    return item.get_closest_marker("disk") is not None or TESTS / "reliability" in (
        Path(str(item.path)).parents
    )


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """pytest's ``tmp_path``, moved to tmpfs (``/dev/shm``) for functional tests.

    They test what a call does, not what survives a power cut, yet on a disk
    each write pays two fsyncs: on tmpfs an fsync costs nothing. Process death
    keeps everything the kernel has on either. ``SOS_TEST_DISK=1`` keeps every
    test on the disk.
    """
    if on_disk(request.node) or not tmpfs_available():
        yield tmp_path
        return
    path = scratch_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _tempfile_on_tmpfs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """The same for ``tempfile.mkdtemp()`` and friends, which the model tests
    use for a directory per example."""
    if on_disk(request.node) or not tmpfs_available():
        yield
        return
    tmp_path_factory.getbasetemp()  # pytest's own base stays where it is
    path = scratch_dir()
    saved, tempfile.tempdir = tempfile.tempdir, str(path)
    try:
        yield
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pyproject's addopts): WORKERS_PER_CORE workers per core.

    Most of the suite waits rather than computes (Wine, the S3 server, kill -9
    and crash-point children, git), so more workers than cores finish sooner.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(2, WORKERS_PER_CORE * cores)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the soaks (marked ``slow``) out of the default run, and put the
    tests marked ``long`` where they cost the least wall time.

    ``.ci/run`` runs the soaks with ``-m slow``; any ``-m`` or ``SOS_LONG=1``
    (the long forms) selects them as usual.
    """
    if not (config.option.markexpr or os.environ.get("SOS_LONG") == "1"):
        soaks = [item for item in items if item.get_closest_marker("slow") is not None]
        if soaks:
            config.hook.pytest_deselected(items=soaks)
            items[:] = [item for item in items if item.get_closest_marker("slow") is None]
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    items[:] = long_tests_first(items, workers)


def long_tests_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The tests marked ``long`` early in the workers' first shares.

    pytest-xdist's worksteal gives each of ``workers`` a contiguous share of
    the collection (``len(rest) // workers_left``, in order) and lets an idle
    worker steal the back half of the longest queue, so a test that takes
    seconds, collected late, is what the run ends waiting for while the other
    workers sit idle (9 s of a 129 s run, measured). Early in the shares, the
    long tests (mostly sleeping, or waiting on their child processes) run
    while every worker still has work, each worker's a little later than the
    one before: all at the start, they left a core idle for ~10 s. A module's
    long tests stay together, in one share (a module fixture, such as the
    Wine tests' boot of Windows Python, is set up once); modules go to the
    share with the fewest long tests so far.
    The order is a function of the collection and the worker count alone:
    every worker computes the same.
    """
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("long") is not None:
            modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    if not modules:
        return items
    fronts: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for group in modules.values():
        min(fronts, key=len).extend(group)
    rest = [item for item in items if item.get_closest_marker("long") is None]
    ordered: list[pytest.Item] = []
    left = len(items)
    for worker in range(workers):
        share = left // (workers - worker)
        left -= share
        take = max(0, share - len(fronts[worker]))
        # Staggered, each in the first half of its share (the back half is
        # what idle workers steal).
        at = take * worker // (2 * workers)
        ordered += rest[:at] + fronts[worker] + rest[at:take]
        del rest[:take]
    return ordered + rest


# Under pytest-xdist the suites count in the workers, whose conftests
# (tests/faults, tests/reliability) hand their figures over at the end; the
# controller, which loads only this conftest, adds them up and prints them.
WORKER_FIGURES: dict[str, dict[str, int]] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    controller = not hasattr(session.config, "workerinput") and bool(
        getattr(session.config.option, "numprocesses", None)
    )
    if hasattr(os, "fork") and not controller:  # where tests fork children
        warm_for_forks()


def warm_for_forks() -> None:
    """Import now what sos imports on first use, in this process (each
    pytest-xdist worker): the storages its registry names, every command
    with its parser, the thread pool of a group commit.

    A child forked from a worker that has not yet used them (a crash point,
    a kill -9 writer, a verifying reader: ~1,800 a run) imports them again
    and builds its parser: a child running ``sos load`` took 15 ms of CPU
    from a cold process and 3.7 ms from a warm one. S3's modules are not
    loaded here: only the S3 tests' workers need boto3."""
    import concurrent.futures  # noqa: F401 - sos imports it when a group commit is pooled

    import sos.storage.local  # the registry imports storages by name
    import sos.storage.memory  # noqa: F401
    from sos.cli import run

    run.load_commands()
    for name in (None, *run.COMMAND_MODULES):
        run._parser(name)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """A pytest-xdist worker finished: add its figures to the run's."""
    sections = getattr(node, "workeroutput", {}).get("sos_figures", {})
    for section, figures in sections.items():
        total = WORKER_FIGURES.setdefault(section, {})
        for name, count in figures.items():
            total[name] = total.get(name, 0) + count


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the workers counted, as one process prints its own."""
    mutant = os.environ.get("SOS_MUTANT")
    if mutant and WORKER_FIGURES:  # as tests/reliability/conftest.py
        terminalreporter.section(f"sos: this run used the broken build {mutant!r}")
    for section, figures in WORKER_FIGURES.items():
        if not figures:
            continue
        terminalreporter.section(section)
        for name, count in figures.items():
            terminalreporter.write_line(f"{name}: {count}")
    reliability = WORKER_FIGURES.get("sos reliability figures")
    target = os.environ.get("SOS_FIGURES")
    if reliability and target:  # for docs/reliability.md, as tests/reliability/conftest.py
        with open(target, "w", encoding="utf-8") as f:
            json.dump(reliability, f, indent=2)


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


def plant_crash_leftovers(store: Path) -> tuple[Path, Path]:
    """What crashed transactions leave in ``store``'s ``.sos/``: the temp file
    of a record being written, and a part no record names (its transaction
    died before the commit point)."""
    reserved = store / ".sos"
    reserved.mkdir(exist_ok=True)
    temp = reserved / ".sos-tmp-00000000000000aa"
    part = reserved / "txn-0123abcd-0.part"
    temp.write_bytes(b"half a record")
    part.write_bytes(b"entries of a transaction never committed")
    return temp, part


def crash_after_commit_point(store: Path, changes: dict[str, object]) -> None:
    """A transaction of ``changes`` in its own handle, killed after its
    commit point and before applying anything (``Journal.apply`` raises
    ``KeyboardInterrupt``): its record is left pending in ``store``."""
    import sos
    from sos import txn as _txn

    def killed(self: object) -> None:
        raise KeyboardInterrupt

    saved = _txn.Journal.apply
    _txn.Journal.apply = killed  # type: ignore[method-assign]
    try:
        db = sos.Dict(store)
        with pytest.raises(KeyboardInterrupt), db.transaction():
            for key, value in changes.items():
                db[key] = value
        db.close()
    finally:
        _txn.Journal.apply = saved  # type: ignore[method-assign]
    assert (store / ".sos" / "txn.json").exists()


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
    from sos.storage.memory import forget

    url = f"memory://{request.node.name}-{uuid.uuid4().hex}"
    yield url
    forget(url)


@pytest.fixture(scope="session")
def lean_helper() -> Iterator[None]:
    """The helper that runs this worker's fork-heavy tests (tests/lean.py),
    started before a test's leak check counts descriptors, stopped at the end."""
    lean.helper()
    yield
    lean.stop()


@pytest.fixture(scope="session")
def fork_server() -> None:
    """tests/forked.py's fork server, started before a test's leak check
    counts its file descriptors (it keeps a few open for the session)."""
    forked.context()


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaks file descriptors or threads."""
    fd_dir = "/proc/self/fd"
    before_fds = len(os.listdir(fd_dir)) if os.path.isdir(fd_dir) else None
    before_threads = threading.active_count()
    yield
    if before_fds is not None:
        after = len(os.listdir(fd_dir))
        s3_clients = sys.modules.get("sos.storage.s3.client")
        if after > before_fds and s3_clients is not None:
            # maybe the connections of S3 clients kept idle for the next store
            # (a process's stores share them, sos/storage/s3/client.py): not a
            # leak once closed, and much cheaper to rule out than garbage
            s3_clients.close_idle_clients()
            after = len(os.listdir(fd_dir))
        if after > before_fds:  # maybe only garbage not yet collected: a full
            gc.collect()  # collection per test would cost seconds per run
            if s3_clients is not None:  # a collected store gives its client back
                s3_clients.close_idle_clients()
            after = len(os.listdir(fd_dir))
        assert after <= before_fds, f"leaked {after - before_fds} file descriptor(s)"
    assert threading.active_count() <= before_threads, "leaked a thread"


def probe_free(store: Path) -> bool:
    """True if another open file description can take the store's lock
    exclusively now (nothing holds its flock)."""
    import errno
    import fcntl

    fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno == errno.EWOULDBLOCK:
                return False
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)

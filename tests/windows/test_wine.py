"""sos on Windows: python.org's CPython 3.13 for Windows, run under Wine.

Wine proves the use of the Win32 API (sharing modes, MoveFileExW, LockFileEx,
binary file modes), not NTFS durability. Never skipped: without wine or the
Windows Python every test fails and says to run ``.ci/wine.sh``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import types
from pathlib import Path

import pytest
from wine import PYTHON_EXE, REPO, Wine, finish, finish_all, winpath  # tests/windows/wine.py

import sos

pytestmark = pytest.mark.long  # each test starts Windows processes: seconds, mostly waiting


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Wine:
    try:
        return Wine(tmp_path_factory.mktemp("wine-cwd"))
    except RuntimeError as e:
        pytest.fail(str(e))


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` with its bytes, the reserved ``.sos/`` left out."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".sos" not in p.relative_to(root).parts
    }


def _no_id(document: bytes) -> bytes:
    """A List item's bytes without its random id."""
    return re.sub(rb'"key": "[0-9a-f-]*"', b'"key": ""', document)


def values_file(tmp_path: Path) -> Path:
    (tmp_path / "values.json").write_text(json.dumps(VALUES), encoding="utf-8")
    return tmp_path / "values.json"


def run_here(code: str, *args: str) -> None:
    """Run the code a Windows process runs, in this Linux process."""
    exec(code, {"sys": types.SimpleNamespace(argv=["", *args])})


VALUES = {
    "hello": "persistence!",
    "lines": "one\ntwo\r\nthree\x1a",
    "nested": {"a": [1, 2.5, None, True], "é": "ü"},
    "": 0,
}
WRITE = """
import json, sos
with open(sys.argv[2], encoding="utf-8") as f:
    values = json.load(f)
with sos.Dict(sys.argv[1]) as db:
    for k, v in values.items():
        db[k] = v
    db["gone"] = 1
    del db["gone"]
with sos.List(sys.argv[1] + "-list") as lst:
    lst.extend(values.values())
    lst.insert(1, "inserted")
    del lst[0]
"""
READ = """
import json, sos
with sos.Dict(sys.argv[1]) as db:
    d = dict(db)
with sos.List(sys.argv[1] + "-list") as lst:
    items = list(lst)
print(json.dumps({"dict": d, "list": items, "check": [str(p) for p in sos.check(sys.argv[1])]}))
"""


def test_import_sos_needs_no_posix_module(wine: Wine) -> None:
    out = wine.run(
        "import sos, sos.cli, sos.storage.windows; print(sys.platform, 'fcntl' in sys.modules)"
    ).stdout
    assert out.split() == ["win32", "False"]


def test_store_written_on_windows_is_byte_identical_and_checks_clean_on_linux(
    wine: Wine, tmp_path: Path
) -> None:
    wine.run(WRITE, winpath(tmp_path / "win"), winpath(values_file(tmp_path)))
    # The same calls on Linux: every file must have the same bytes (no CRLF).
    run_here(WRITE, str(tmp_path / "lin"), str(values_file(tmp_path)))
    for suffix in ("", "-list"):
        win, lin = tree(tmp_path / f"win{suffix}"), tree(tmp_path / f"lin{suffix}")
        if suffix == "":
            assert win == lin
        else:  # a List's item names are random: same support files, same item bytes
            assert {n: b for n, b in win.items() if "/" not in n and n != "order.txt"} == {
                n: b for n, b in lin.items() if "/" not in n and n != "order.txt"
            }
            items = sorted(_no_id(b) for n, b in win.items() if "/" in n)
            assert items == sorted(_no_id(b) for n, b in lin.items() if "/" in n)
            assert len(items) == len(VALUES)
        assert sos.check(tmp_path / f"win{suffix}") == []
    with sos.Dict(tmp_path / "win") as db:
        assert dict(db) == VALUES
    with sos.List(tmp_path / "win-list") as lst:
        assert list(lst) == ["inserted", *list(VALUES.values())[1:]]


def test_store_written_on_linux_reads_and_checks_clean_on_windows(
    wine: Wine, tmp_path: Path
) -> None:
    run_here(WRITE, str(tmp_path / "s"), str(values_file(tmp_path)))
    got = json.loads(wine.run(READ, winpath(tmp_path / "s")).stdout)
    assert got == {
        "dict": VALUES,
        "list": ["inserted", *list(VALUES.values())[1:]],
        "check": [],
    }


def test_conformance_helpers_under_windows(wine: Wine, tmp_path: Path) -> None:
    out = wine.run(
        "import conformance, sos\n"
        "conformance.check_mapping(sos.Dict(sys.argv[1] + '/d'))\n"
        "conformance.check_bad_key_types(sos.Dict(sys.argv[1] + '/e'))\n"
        "conformance.check_sequence(sos.List(sys.argv[1] + '/l'))\n"
        "print('conformant')",
        winpath(tmp_path),
        timeout=120,
    ).stdout
    assert out.strip() == "conformant"
    assert sos.check(tmp_path / "d") == [] and sos.check(tmp_path / "l") == []


# pytest itself under Windows. Two shims, for Wine's sake only: platform asks
# WMI for the Windows version, which Wine lacks (its fallback is used); and
# conftest's leak check counts /proc/self/fd, which under Wine lists the Wine
# process's own Unix descriptors (wineserver's socket...), not Python's.
PYTEST = (
    "sys.modules['_wmi'] = None\n"
    "import os.path\n"
    "_isdir = os.path.isdir\n"
    "os.path.isdir = lambda p: not str(p).startswith('/proc') and _isdir(p)\n"
    "import pytest\n"
)


@pytest.mark.slow
def test_hypothesis_models_under_windows(wine: Wine, tmp_path: Path) -> None:
    """tests/test_models.py (Dict and List against plain ones), run by pytest on Windows."""
    out = wine.run(
        PYTEST + "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--rootdir', sys.argv[2],"
        " '-o', 'addopts=', '-k', 'not InMemory', sys.argv[1]]))",
        winpath(REPO / "tests" / "test_models.py"),
        winpath(tmp_path),
        # A guard against a hang, not a speed limit: the soaks share the cores
        # on xdist workers, and this one ran out of 300 s on a busy machine.
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # The local-storage machines only: the in-memory ones run no Windows code.
    assert re.search(r"\b2 passed", out.stdout) and "failed" not in out.stdout, out.stdout


def test_readme_examples_run_under_windows(wine: Wine, tmp_path: Path) -> None:
    """tests/test_readme.py: every README Python block, in order, as one program."""
    out = wine.run(
        PYTEST + "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--rootdir', sys.argv[2],"
        " '-o', 'addopts=', '--basetemp', sys.argv[3], sys.argv[1]]))",
        winpath(REPO / "tests" / "test_readme.py"),
        winpath(tmp_path),
        winpath(tmp_path / "base"),
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"\b2 passed", out.stdout) and "failed" not in out.stdout, out.stdout


# -- a writer and a reader that holds the file open ----------------------------------

READER = """
import json, os, sos.storage.windows as w, time
path, stop = sys.argv[1], sys.argv[2]
open(stop + ".ready", "w").close()
seen = set()
reads = 0
while not os.path.exists(stop):
    doc = json.loads(w.read_file(path))   # torn or missing would raise here
    seen.add(doc["value"])
    reads += 1
print(json.dumps({"reads": reads, "seen": sorted(seen)}))
"""


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, finish(proc)
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


def test_writer_succeeds_while_a_reader_process_reads_the_document(
    wine: Wine, tmp_path: Path
) -> None:
    with sos.Dict(tmp_path / "s") as db:
        db["k"] = 0
        doc = db._document_path("k") if hasattr(db, "_document_path") else None
    path = doc or next(p for p in (tmp_path / "s").rglob("*.json") if p.name != "sos.json")
    stop = tmp_path / "stop"
    reader = wine.start(READER, winpath(path), winpath(stop))
    _wait_for(Path(str(stop) + ".ready"), reader)
    wine.run(
        "import sos\nwith sos.Dict(sys.argv[1]) as db:\n    for i in range(1, 101): db['k'] = i",
        winpath(tmp_path / "s"),
    )
    stop.touch()
    got = json.loads(finish(reader))
    assert got["reads"] > 0
    assert set(got["seen"]) <= set(range(101))
    with sos.Dict(tmp_path / "s") as db:
        assert db["k"] == 100


# The holder opens the file, says so (ready), and from the moment the writer
# says it writes (ready.go) holds it ``seconds`` more: whatever the two
# processes' start-up times, the write meets the open file. A test may let it
# go sooner (ready.stop) once the writer has given up.
HOLD = """
import os, sos.storage.windows as w, time
path, mode, seconds, ready = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

def hold():
    open(ready, "w").close()
    while not os.path.exists(ready + ".go"):  # under Wine each look costs ~1 ms of CPU
        time.sleep(0.01)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not os.path.exists(ready + ".stop"):
        time.sleep(0.05)

if mode == "share-delete":   # sos's own reader, kept open
    h = w._open(path, w._GENERIC_READ, w._OPEN_EXISTING)
    hold()
    w._k32().CloseHandle(h)
else:                         # any other program: Python's open() shares no delete
    with open(path, "rb"):
        hold()
"""
REPLACE = """
import os, sos, time
with sos.Dict(sys.argv[1]) as db:
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    open(sys.argv[2] + ".go", "w").close()
    t = time.monotonic()
    try:
        db["k"] = "new"
        print("ok", round(time.monotonic() - t, 2))
    except sos.Error as e:
        print("error", round(time.monotonic() - t, 2), e)
"""


def _store_with_one_key(root: Path) -> Path:
    with sos.Dict(root) as db:
        db["k"] = "old"
    return next(p for p in root.rglob("*.json") if p.name != "sos.json")


def test_writer_waits_out_a_reader_that_holds_the_file_briefly(wine: Wine, tmp_path: Path) -> None:
    path = _store_with_one_key(tmp_path / "s")
    ready = tmp_path / "ready"
    holder = wine.start(HOLD, winpath(path), "share-delete", "0.5", winpath(ready))
    out = wine.run(REPLACE, winpath(tmp_path / "s"), winpath(ready)).stdout.split()
    finish(holder)
    assert out[0] == "ok", out
    assert float(out[1]) >= 0.2, out  # it met the open file and waited
    with sos.Dict(tmp_path / "s") as db:
        assert db["k"] == "new"


def test_writer_gives_up_with_an_error_naming_the_file(wine: Wine, tmp_path: Path) -> None:
    path = _store_with_one_key(tmp_path / "s")
    ready = tmp_path / "ready"
    holder = wine.start(HOLD, winpath(path), "plain", "4.5", winpath(ready))
    out = wine.run(REPLACE, winpath(tmp_path / "s"), winpath(ready)).stdout
    (tmp_path / "ready.stop").touch()  # the writer gave up (or not): no need to hold on
    finish(holder)
    assert out.startswith("error"), out
    assert path.name in out and "holds it open" in out, out
    seconds = float(out.split()[1])
    assert 2 <= seconds < 4.5, out  # RETRY_SECONDS (2.5), not forever
    with sos.Dict(tmp_path / "s") as db:  # nothing half-changed
        assert db["k"] == "old"
    assert not [p for p in (tmp_path / "s").rglob(".sos-tmp-*")]


# -- locks across processes -----------------------------------------------------------

# Prepended to the code of processes that must overlap: Wine takes 0.5-2 s to
# start one, long enough for a first process to finish before a second begins.
BARRIER = """
import os, time
_barrier = sys.argv.pop()  # a directory: each process marks it, then waits for both
open(os.path.join(_barrier, str(os.getpid())), "w").close()
while len(os.listdir(_barrier)) < 2:  # each look is a round trip to wineserver: not too often
    time.sleep(0.025)
"""


def two(wine: Wine, code: str, args: list[list[str]], barrier: Path) -> None:
    """Run ``code`` in two Windows processes at once; both must succeed."""
    barrier.mkdir()
    finish_all([wine.start(BARRIER + code, *a, winpath(barrier)) for a in args])


COUNT = """
import os, sos.storage.windows as w, sos.storage.atomic as a
lock = w.FileLock(sys.argv[1] + "/.sos/lock")
counter = sys.argv[1] + "/counter"
for _ in range(100):
    lock.acquire(exclusive=True)
    n = int(w.read_file(counter))
    a.write_file(counter, str(n + 1).encode())
    lock.release()
lock.close()
"""


def test_exclusive_file_lock_serialises_two_processes(wine: Wine, tmp_path: Path) -> None:
    (tmp_path / "counter").write_bytes(b"0")
    two(wine, COUNT, [[winpath(tmp_path)]] * 2, tmp_path / "barrier")
    assert (tmp_path / "counter").read_bytes() == b"200"


SHARED = """
import os, time, sos.storage.windows as w
lock_path, ready, stop = sys.argv[1], sys.argv[2], sys.argv[3]
lock = w.FileLock(lock_path)
lock.acquire(exclusive=False)
open(ready, "w").close()
while not os.path.exists(stop):
    time.sleep(0.02)
lock.release(); lock.close()
"""
PROBE = """
import sos.storage.windows as w
a, b = w.FileLock(sys.argv[1]), w.FileLock(sys.argv[1])
out = [a.acquire(exclusive=False, blocking=False), a.acquire(exclusive=False, blocking=False)]
a.release(); a.release()
out.append(b.acquire(exclusive=True, blocking=False))
print(" ".join(map(str, out)))
"""
SAME_PROCESS = """
import sos.storage.windows as w
a, b = w.FileLock(sys.argv[1]), w.FileLock(sys.argv[1])
out = [a.acquire(exclusive=True), b.acquire(exclusive=False, blocking=False)]
a.release()
out.append(b.acquire(exclusive=False, blocking=False))
try:
    b.acquire(exclusive=True)
except Exception as e:
    out.append(type(e).__name__)
print(" ".join(map(str, out)))
"""


def test_shared_lock_admits_readers_and_keeps_writers_out(wine: Wine, tmp_path: Path) -> None:
    lock = tmp_path / ".sos" / "lock"
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    holder = wine.start(SHARED, winpath(lock), winpath(ready), winpath(stop))
    try:
        _wait_for(ready, holder)
        # Another process: shared twice (re-entrant) while held shared; exclusive refused.
        assert wine.run(PROBE, winpath(lock)).stdout.split() == ["True", "True", "False"]
    finally:
        stop.touch()
        finish(holder)
    assert wine.run(PROBE, winpath(lock)).stdout.split() == ["True", "True", "True"]
    # Two handles in one process exclude each other; no upgrade while shared.
    assert wine.run(SAME_PROCESS, winpath(lock)).stdout.split() == [
        "True",
        "False",
        "True",
        "Error",
    ]


LOCK_FAILURES = """
import threading, sos.storage.windows as w
path = sys.argv[1]
out = []
a, probe = w.FileLock(path), w.FileLock(path)

def free():
    got = probe.acquire(blocking=False)
    if got:
        probe.release()
    return got

# An interrupt as LockFileEx returns: the take is undone, not left held by nobody.
real = a._lock
def lock_then_interrupt(exclusive, blocking):
    real(exclusive, blocking)
    raise KeyboardInterrupt
a._lock = lock_then_interrupt
try:
    a.acquire()
except KeyboardInterrupt:
    out.append("interrupted")
del a._lock
out += [free(), a.acquire(blocking=False)]
# A release from another thread changes nothing: the holder still holds it.
def foreign():
    try:
        a.release()
    except RuntimeError:
        out.append("refused")
t = threading.Thread(target=foreign); t.start(); t.join()
out += [free(), a.held]
a.release()
# An unbalanced release changes nothing either: the next take still locks.
try:
    a.release()
except RuntimeError:
    out.append("refused")
a.acquire()
out.append(free())
# Exclusive inside shared is refused, and the refusal leaves the thread lock as it was.
a.release(); a.acquire(exclusive=False)
try:
    a.acquire(exclusive=True)
except Exception as e:
    out.append(type(e).__name__)
a.release()
other = []
t = threading.Thread(target=lambda: other.append(a.acquire(blocking=False)))
t.start(); t.join()
out.append(other[0])
# An interrupt in release() before UnlockFileEx runs: the handle is closed (which
# unlocks), and the thread's record of holding the store ends with the hold.
real_k32, interrupt = w._k32, []
class Kernel32:
    def __getattr__(self, name):
        if name == "UnlockFileEx" and interrupt:
            interrupt.pop()
            raise KeyboardInterrupt
        return getattr(real_k32(), name)
w._k32 = Kernel32
one, two = w.WindowsStoreLock(sys.argv[2]), w.WindowsStoreLock(sys.argv[2])
one.acquire()
interrupt.append(1)
try:
    one.release()
except KeyboardInterrupt:
    out.append("interrupted")
out += [one.held, two.acquire(blocking=False)]  # not refused, not locked by nobody
two.release()
out.append(one.acquire(blocking=False))
one.release()
w._k32 = real_k32

def free_at(lock_path):
    other = w.FileLock(lock_path)
    got = other.acquire(blocking=False)
    if got:
        other.release()
    other.close()
    return got

# kernel32 whose interrupt_at raises KeyboardInterrupt once: when looked up, or
# (after) as the call returns; fail_unlock: every UnlockFileEx fails.
def kernel32(interrupt_at, fail_unlock=False, after=False):
    pending = [1]
    class Kernel32:
        def __getattr__(self, name):
            fn = getattr(real_k32(), name)
            if name == "UnlockFileEx" and fail_unlock:
                return lambda *args: 0
            if name == interrupt_at and pending:
                pending.pop()
                if not after:
                    raise KeyboardInterrupt
                def call_then_interrupt(*args):
                    fn(*args)
                    raise KeyboardInterrupt
                return call_then_interrupt
            return fn
    return Kernel32

# A mistaken release of another handle leaves this thread's record of its hold.
three, four = w.WindowsStoreLock(sys.argv[3]), w.WindowsStoreLock(sys.argv[3])
four.acquire()
try:
    three.release()
except RuntimeError:
    out.append("refused")
try:
    three.acquire(blocking=False)
except Exception as e:
    out.append(type(e).__name__)  # Error: this thread holds the store through four
four.release()
# An interrupt after the take, before the holder record: the take is undone.
real_add = w.HOLDERS.add
def add_then_interrupt(*args):
    w.HOLDERS.add = real_add
    raise KeyboardInterrupt
w.HOLDERS.add = add_then_interrupt
try:
    three.acquire()
except KeyboardInterrupt:
    out.append("interrupted")
out += [three.held, four.acquire(blocking=False)]
four.release()
# close() while this thread holds the lock: its release still balances the hold.
held = w.FileLock(sys.argv[4])
held.acquire(); held.close(); held.release()
other = []
t = threading.Thread(target=lambda: other.append(free_at(sys.argv[4]) and held.acquire(False)))
t.start(); t.join()
out.append(other[0])
# An interrupt as close()'s CloseHandle returns: the closed handle is not kept, so
# the next take opens the file again (a kept value may be another file's by then).
def interrupted(call, fake_k32):
    w._k32 = fake_k32
    try:
        call()
    except KeyboardInterrupt:
        out.append("interrupted")
    finally:
        w._k32 = real_k32

closing = w.FileLock(sys.argv[5])
closing.acquire(); closing.release()
interrupted(closing.close, kernel32("CloseHandle", after=True))
out += [free_at(sys.argv[4] + "-other"), closing.acquire(blocking=False), free_at(sys.argv[5])]
closing.release()
# A failed unlock, then an interrupt before the close: the handle is closed all the same.
failing = w.FileLock(sys.argv[6])
failing.acquire()
interrupted(failing.release, kernel32("CloseHandle", fail_unlock=True))
out += [failing.held, free_at(sys.argv[6])]
print(" ".join(map(str, out)))
"""


def test_lock_failures_leave_the_lock_as_they_found_it(wine: Wine, tmp_path: Path) -> None:
    """What StoreLock does on POSIX (tests/test_locks.py), FileLock does on
    Windows: an interrupted take, a release from another thread, an
    unbalanced release and a refused upgrade each leave the lock as it was,
    and an interrupted release lets go of the lock and of the thread's record
    of holding the store."""
    lock, store, other = tmp_path / ".sos" / "lock", tmp_path / "store", tmp_path / "other"
    store.mkdir()
    (other / ".sos").mkdir(parents=True)
    locks = [winpath(other / ".sos" / name) for name in ("held", "closing", "failing")]
    assert wine.run(LOCK_FAILURES, winpath(lock), winpath(store), winpath(other), *locks)\
        .stdout.split() == [
        "interrupted", "True", "True",  # undone; then taken again at once
        "refused", "False", "True",  # the holder still holds it
        "refused", "False",  # the next take locked
        "Error", "True",  # refused upgrade; another thread takes it after the release
        "interrupted", "False", "True", "True",  # an interrupted release let go of all
        "refused", "Error",  # a mistaken release kept the other handle's record
        "interrupted", "False", "True",  # an interrupted record: the take undone
        "True",  # close() while held, then the release balanced the hold
        "interrupted", "True", "True", "False",  # an interrupted close kept no handle
        "interrupted", "False", "True",  # a failed unlock, interrupted: still closed
    ]  # fmt: skip


APPEND = """
import sos
with sos.List(sys.argv[1]) as lst:
    for i in range(100):
        lst.append([sys.argv[2], i])
"""


def test_two_processes_append_100_items_each_to_one_list(wine: Wine, tmp_path: Path) -> None:
    sos.List(tmp_path / "l").close()
    two(wine, APPEND, [[winpath(tmp_path / "l"), n] for n in "ab"], tmp_path / "barrier")
    with sos.List(tmp_path / "l") as lst:
        items = list(lst)
    assert len(items) == 200
    for name in ("a", "b"):
        assert [i for n, i in items if n == name] == list(range(100))
    assert sos.check(tmp_path / "l") == []


# -- paths and the command line -------------------------------------------------------


def test_long_store_path(wine: Wine, tmp_path: Path) -> None:
    """A store 250 characters deep: its documents' paths pass Windows' old 260 limit."""
    deep = tmp_path
    while len(winpath(deep)) < 250:
        deep = deep / ("d" * 40)
    out = wine.run(
        "import sos\nwith sos.Dict(sys.argv[1]) as db:\n"
        "    db['k'] = 'v'\n    print(len(db._document_path('k')) if hasattr(db, '_document_path')"
        " else 0, db['k'])",
        winpath(deep / "store"),
    ).stdout.split()
    assert out[-1] == "v"
    with sos.Dict(deep / "store") as db:
        assert db["k"] == "v"
    longest = max(len(winpath(p)) for p in (deep / "store").rglob("*.json"))
    assert longest > 260
    assert sos.check(deep / "store") == []


CLI = """
import runpy
sys.argv = ["sos", *sys.argv[1:]]
try:
    runpy.run_module("sos", run_name="__main__")
except SystemExit as e:
    sys.exit(e.code)
"""


CLI_IN_PROCESS = """
import contextlib, io, json
from sos.cli import main
out = {}
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    out[" ".join(argv[:1] + argv[2:])] = [code, buf.getvalue()]
print(json.dumps(out))
"""


def test_cli_round_trip_with_python_m_sos(wine: Wine, tmp_path: Path) -> None:
    store = winpath(tmp_path / "s")
    # The real command three times (python -m sos: runpy, as -m does) ...
    wine.run(CLI, "load", "--kind", "dict", store, "-", stdin='{"ada": 1}')
    wine.run(CLI, "set", store, "bob", "-", stdin='"x\\ny"')
    assert json.loads(wine.run(CLI, "get", store, "ada").stdout) == 1
    # ... and the rest in one process, as the CLI tests do on Linux.
    argvs = [
        ["set", store, "ada", '{"born": 1815}'],
        ["get", store, "ada"],
        ["keys", store],
        ["dump", store],
        ["check", store],
        ["get", store, "nobody"],
    ]
    got = json.loads(wine.run(CLI_IN_PROCESS, json.dumps(argvs)).stdout)
    assert got['set ada {"born": 1815}'][0] == 0
    assert json.loads(got["get ada"][1]) == {"born": 1815}
    assert got["keys"] == [0, "ada\nbob\n"]
    assert json.loads(got["dump"][1]) == {"ada": {"born": 1815}, "bob": "x\ny"}
    assert got["check"][0] == 0
    assert got["get nobody"][0] == 1
    with sos.Dict(tmp_path / "s") as db:
        assert dict(db) == {"ada": {"born": 1815}, "bob": "x\ny"}
    assert sos.check(tmp_path / "s") == []


EDITOR = """
import json, sys
path = sys.argv[-1]
with open(path, encoding="utf-8") as f:
    doc = json.load(f)
doc["value"] = "edited on windows"
with open(path, "w", encoding="utf-8", newline="\\n") as f:
    json.dump(doc, f, indent=2)
"""


def test_sos_edit_with_a_windows_editor_path(wine: Wine, tmp_path: Path) -> None:
    (tmp_path / "editor.py").write_text(EDITOR, encoding="utf-8")
    with sos.Dict(tmp_path / "s") as db:
        db["ada"] = 1
    editor = f"{winpath(PYTHON_EXE)} {winpath(tmp_path / 'editor.py')}"
    env = {"EDITOR": editor, "VISUAL": ""}
    wine.run(CLI, "edit", winpath(tmp_path / "s"), "ada", env=env)
    with sos.Dict(tmp_path / "s") as db:
        assert db["ada"] == "edited on windows"


COUNTER = """
import sos
with sos.Dict(sys.argv[1]) as counter:
    for _ in range(100):
        with counter.transaction():
            counter["n"] = counter.get("n", 0) + 1
    counter.update(a=1, b=2)   # update() is a transaction too
"""


def test_transactions_from_two_processes_count_to_exactly_200(wine: Wine, tmp_path: Path) -> None:
    sos.Dict(tmp_path / "c").close()
    two(wine, COUNTER, [[winpath(tmp_path / "c")]] * 2, tmp_path / "barrier")
    with sos.Dict(tmp_path / "c") as db:
        assert dict(db) == {"n": 200, "a": 1, "b": 2}
    assert sos.check(tmp_path / "c") == []

"""``sos get/set/del --at``: a JSON Pointer inside a key's value, on a local
directory, ``memory://`` and ``s3://`` (the real SeaweedFS of tests/s3).

The race is run with real processes: each change is a compare-and-swap on
the version it read, retried, so concurrent changes to one key all land."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import forked
import pytest
from cli_helpers import sos

from sos.storage.memory import forget
from sos.storage.registry import open_storage

STORAGES = [
    pytest.param("local", id="local"),
    pytest.param("memory", id="memory"),
    pytest.param("s3", id="s3", marks=pytest.mark.s3),
]


def new_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "local":
        return str(tmp_path / f"s-{uuid.uuid4().hex[:6]}")
    if kind == "memory":
        url = f"memory://cli-at-{uuid.uuid4().hex}"
        request.addfinalizer(lambda: forget(url))
        return url
    return f"{request.getfixturevalue('s3_url')}/s-{uuid.uuid4().hex[:6]}"


def files(store: str) -> dict[str, bytes]:
    storage = open_storage(store)
    try:
        return {name: storage.read(name) for name in storage.walk()}
    finally:
        storage.close()


@pytest.fixture(params=STORAGES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    made = new_store(request.param, tmp_path, request)
    sos("set", made, "ada", '{"born": 1815, "langs": ["en"], "a/b": {"~x": 1}}')
    return made


def value(store: str, key: str = "ada") -> object:
    return json.loads(sos("get", store, key).stdout)


def test_get_at_reads_inside_a_value(store: str):
    assert sos("get", store, "ada", "--at", "/born").stdout == "1815\n"
    assert sos("get", store, "ada", "--at", "/langs/0", "-r").stdout == "en\n"
    assert sos("get", store, "ada", "--at", "/a~1b/~0x").stdout == "1\n"  # RFC 6901 escapes
    assert json.loads(sos("get", store, "ada", "--at", "").stdout)["born"] == 1815


def test_set_at_replaces_add_adds_del_at_removes(store: str):
    sos("set", store, "ada", "--at", "/langs/0", '"de"')
    sos("set", store, "ada", "--add", "/langs/-", '"fr"')
    sos("set", store, "ada", "--add", "/langs/0", '"la"')
    sos("set", store, "ada", "--add", "/died", "1852")
    sos("del", store, "ada", "--at", "/a~1b")
    assert value(store) == {"born": 1815, "langs": ["la", "de", "fr"], "died": 1852}
    sos("del", store, "ada", "--at", "/langs/1")
    sos("set", store, "ada", "--at", "/born", "-", input="1816")
    assert value(store) == {"born": 1816, "langs": ["la", "fr"], "died": 1852}


def test_at_on_a_list_item(request: pytest.FixtureRequest, tmp_path: Path):
    made = new_store("local", tmp_path, request)
    sos("append", made, '{"tags": ["a"]}')
    sos("set", made, "0", "--add", "/tags/-", '"b"')
    assert sos("get", made, "-1", "--at", "/tags/1").stdout == '"b"\n'
    sos("del", made, "7", "--at", "/tags", expect=1)


@pytest.fixture(params=STORAGES[:2])
def quick_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``store`` on the storages without a server: the pointer's errors are
    the same code on each, and the S3 runs above show nothing else differs."""
    made = new_store(request.param, tmp_path, request)
    sos("set", made, "ada", '{"born": 1815, "langs": ["en"], "a/b": {"~x": 1}}')
    return made


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["get", "ada", "--at", "born"], 2, "must be empty (the whole value) or start with '/'"),
        (["get", "ada", "--at", "/x~2"], 2, "'~' must be followed by 0"),
        (["get", "ada", "--at", "/nope"], 1, "key 'ada': /nope: no member 'nope'"),
        (["get", "ada", "--at", "/langs/3"], 1, "/langs/3: no index 3 (the array has 1 items)"),
        (["set", "ada", "--at", "/died", "1852"], 1, "/died: no member 'died'; nothing written"),
        (["set", "ada", "--at", "/langs/-", "1"], 1, "'-' only with --add, to append"),
        (["set", "ada", "--at", "/langs/01", "1"], 1, "'01' is not an array index"),
        (["set", "ada", "--add", "/langs/2", "1"], 1, "no index 2 (the array has 1 items)"),
        (["set", "ada", "--at", "/born/x", "1"], 1, "/born is a number, not an object or array"),
        (["set", "ada", "--at", "/born", "nope"], 2, "a string needs JSON quotes"),
        (["set", "ada", "--at", "/x", "--add", "/y", "1"], 2, "not allowed with argument"),
        (["set", "nobody", "--at", "/x", "1"], 1, "create the key first with sos set"),
        (["del", "ada", "--at", ""], 1, "use sos del STORE KEY to remove the key"),
        (["del", "ada", "--at", "/langs/1"], 1, "no index 1"),
    ],
)
def test_bad_pointers_say_why_and_write_nothing(quick_store: str, argv, status, message):
    store = quick_store
    before = files(store)
    proc = sos(argv[0], store, *argv[1:], expect=status)
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 or status == 2, proc.stderr
    assert proc.stdout == ""
    assert files(store) == before, "nothing written"


def test_a_value_too_deep_to_write_is_refused_whole(store: str):
    before = files(store)
    deep = "[" * 600 + "]" * 600
    proc = sos("set", store, "ada", "--at", "/born", deep, expect=1)
    assert "key 'ada'" in proc.stderr and "nested deeper than 500 levels" in proc.stderr
    assert files(store) == before


WORKER = """
import sys, time
from pathlib import Path
from sos.cli import main
store, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.005)
for i in range(count):
    assert main(["set", store, "log", "--add", "/items/-", f'"{tag}-{i}"']) == 0
    assert main(["set", store, "log", "--at", f"/last/{tag}", str(i)]) == 0
"""


@pytest.mark.usefixtures("fork_server")  # the writers: tests/forked.py
@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_concurrent_changes_to_one_key_all_land(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
):
    made = new_store(kind, tmp_path, request)
    writers, count = ("p", "q", "r"), 4 if kind == "s3" else 15
    sos("set", made, "log", json.dumps({"items": [], "last": dict.fromkeys(writers, -1)}))
    go = tmp_path / "go"
    procs = [
        forked.start("-c", WORKER, made, tag, str(count), str(go)) for tag in writers
    ]
    time.sleep(0.3)  # let all three start: the race is the point
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    got = value(made, "log")
    assert isinstance(got, dict)
    assert sorted(got["items"]) == sorted(f"{t}-{i}" for t in writers for i in range(count))
    for tag in writers:  # each writer's own items in its order
        mine = [x for x in got["items"] if x.startswith(f"{tag}-")]
        assert mine == [f"{tag}-{i}" for i in range(count)]
    assert got["last"] == dict.fromkeys(writers, count - 1)

"""Every ``sos`` command on every storage: a local directory, ``memory://``
and ``s3://`` (the real SeaweedFS server of tests/s3), from one module.

Each scenario runs the same command lines on a local store and on the
storage under test, in-process (``sos.cli.main``), and asserts the two
transcripts (exit status, stdout, stderr) are the same once the store's name
is replaced by ``STORE``: a command that works on one storage and not on
another cannot land. Scenarios also assert what the local run must print, so
both cannot be wrong the same way. ``watch`` and the edit races use real
processes, where a second writer is the point.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import SOS, default_sigint, sos

import sos as sos_api
from sos.storage.memory import forget
from sos.storage.registry import open_storage

# The storages compared with a local directory. memory:// lives in this
# process only, so it is left out where another process must see the store.
STORAGES = [
    pytest.param("local", id="local"),
    pytest.param("memory", id="memory"),
    pytest.param("s3", id="s3", marks=pytest.mark.s3),
]


@pytest.fixture(params=STORAGES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Stores:
    """Fresh store locations of one storage kind."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.request = request
        self.memory: list[str] = []

    def new(self, name: str = "store") -> str:
        if self.kind == "local":
            return str(self.tmp_path / f"{name}-{uuid.uuid4().hex[:6]}")
        if self.kind == "memory":
            url = f"memory://cli-{name}-{uuid.uuid4().hex}"
            self.memory.append(url)
            return url
        base: str = self.request.getfixturevalue("s3_url")
        return f"{base}/{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def stores(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stores]:
    made = Stores(kind, tmp_path, request)
    yield made
    for url in made.memory:
        forget(url)


@pytest.fixture
def local(tmp_path: Path, request: pytest.FixtureRequest) -> Stores:
    return Stores("local", tmp_path, request)


COPY = re.compile(r"\S*sos-edit-\S*?\.json")


def transcript(store: str, lines: list[tuple[list[str], str | None]], **kw) -> list[str]:
    """Run each command line (``STORE`` standing for ``store``, with its stdin)
    and describe what it did, the store's name put back to ``STORE``."""
    out = []
    for argv, stdin in lines:
        proc = sos(*[a.replace("STORE", store) for a in argv], input=stdin, expect=None, **kw)
        text = f"$ sos {' '.join(argv)}\n[{proc.returncode}]\n{proc.stdout}--\n{proc.stderr}"
        assert "Traceback" not in text, text
        out.append(COPY.sub("COPY", text.replace(store, "STORE")))
    return out


def same_everywhere(stores: Stores, local: Stores, lines, **kw) -> list[str]:
    """The transcript on the storage under test, asserted equal to a local one."""
    expected = transcript(local.new(), lines, **kw)
    got = transcript(stores.new(), lines, **kw)
    for want, have in zip(expected, got, strict=True):
        assert have == want, f"{stores.kind} differs from local:\n{have}\n---- local:\n{want}"
    return expected


def cmd(*argv: str, stdin: str | None = None) -> tuple[list[str], str | None]:
    return list(argv), stdin


def put_file(store: str, name: str, data: bytes) -> None:
    """A file dropped into a store by another tool (not through sos)."""
    storage = open_storage(store)
    try:
        storage.write(name, data)
    finally:
        storage.close()


def read_file(store: str, name: str) -> bytes | None:
    storage = open_storage(store)
    try:
        return storage.read(name)
    except FileNotFoundError:
        return None
    finally:
        storage.close()


def stored_names(store: str) -> list[str]:
    storage = open_storage(store)
    try:
        return list(storage.walk())
    finally:
        storage.close()


def doc_name(key: str) -> str:
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{digest[:2]}/{digest}.json"


# -- the commands, one scenario each ----------------------------------------------------


def test_dict_commands(stores: Stores, local: Stores):
    t = same_everywhere(
        stores,
        local,
        [
            cmd("set", "STORE", "ada", '{"born": 1815}'),
            cmd("set", "STORE", "alan", "1912"),
            cmd("set", "STORE", "ada", '{"born": 1815, "x": 1}'),
            cmd("get", "STORE", "ada"),
            cmd("get", "-r", "STORE", "alan"),
            cmd("get", "STORE", "nobody"),
            cmd("keys", "STORE"),
            cmd("keys", "--json", "STORE"),
            cmd("dump", "STORE"),
            cmd("dump", "--jsonl", "STORE"),
            cmd("check", "STORE"),
            cmd("del", "STORE", "alan"),
            cmd("del", "STORE", "alan"),
            cmd("append", "STORE", "1"),
            cmd("check", "STORE"),  # after a del: SeaweedFS left a directory marker
        ],
    )
    assert "[0]\n--\nsos: created dict store STORE\n" in t[0]
    assert "created" not in t[1] + t[2], "created is said once, when the store is made"
    assert '"x": 1' in t[3] and "[1]" in t[5] and "no key 'nobody'" in t[5]
    assert t[6].split("--")[0].endswith("ada\nalan\n")
    assert t[10] == "$ sos check STORE\n[0]\nclean: 2 keys, 0 problems\n--\n"
    assert t[11].startswith("$ sos del STORE alan\n[0]") and "[1]" in t[12]
    assert t[14] == "$ sos check STORE\n[0]\nclean: 1 key, 0 problems\n--\n"
    assert "[1]" in t[13] and "is a dict store" in t[13]


def test_patterns_mv_cp_and_the_clean_line(stores: Stores, local: Stores):
    t = same_everywhere(
        stores,
        local,
        [
            cmd("set", "STORE", "ada", '{"born": 1815}'),
            cmd("set", "STORE", "alan", "1912"),
            cmd("set", "STORE", "bob", "1"),
            cmd("keys", "STORE", "a*"),
            cmd("dump", "STORE", "?o?"),
            cmd("mv", "STORE", "ada", "ada-l"),
            cmd("cp", "STORE", "alan", "alan-2"),
            cmd("mv", "STORE", "bob", "alan"),
            cmd("mv", "STORE", "nobody", "x"),
            cmd("mv", "--force", "STORE", "bob", "alan"),
            cmd("keys", "STORE"),
            cmd("check", "STORE"),  # after mv: SeaweedFS left directory markers
        ],
    )
    assert t[3].split("--")[0].endswith("[0]\nada\nalan\n")
    assert '"bob": 1' in t[4] and "ada" not in t[4]
    assert "[1]" in t[7] and "key 'alan' exists; sos mv --force replaces it" in t[7]
    assert "[1]" in t[8] and "no key 'nobody'" in t[8]
    assert t[10].split("--")[0].endswith("[0]\nada-l\nalan\nalan-2\n")
    assert t[11] == "$ sos check STORE\n[0]\nclean: 3 keys, 0 problems\n--\n"


def test_list_commands(stores: Stores, local: Stores):
    t = same_everywhere(
        stores,
        local,
        [
            cmd("append", "STORE", '"milk"'),
            cmd("append", "STORE", '"eggs"'),
            cmd("append", "STORE", "-", stdin='{"done": false}'),
            cmd("get", "STORE", "-1"),
            cmd("get", "STORE", "7"),
            cmd("set", "STORE", "0", '"MILK"'),
            cmd("get", "STORE", "ada"),
            cmd("keys", "STORE"),
            cmd("dump", "STORE"),
            cmd("check", "STORE"),
            cmd("del", "STORE", "1"),
            cmd("dump", "--jsonl", "STORE"),
            cmd("check", "STORE"),  # after a del: SeaweedFS left a directory marker
        ],
    )
    assert "created list store STORE" in t[0] and "created" not in t[1]
    assert '"done": false' in t[3] and "no index 7 (the list has 3 items)" in t[4]
    assert "[2]" in t[6] and "KEY must be an index" in t[6]
    assert '"MILK"' in t[8] and '"eggs"' in t[8]
    assert (
        t[9].endswith("[0]\nclean: 3 items, 0 problems\n--\n")
        and '"eggs"' not in t[11]
        and '"MILK"' in t[11]
    )
    assert t[12] == "$ sos check STORE\n[0]\nclean: 2 items, 0 problems\n--\n"


def test_load_dump_info(stores: Stores, local: Stores, tmp_path: Path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"ada": {"born": 1815}, "alan": {"born": 1912}}))
    more = tmp_path / "more.json"
    more.write_text('{"grace": 1906}')
    t = same_everywhere(
        stores,
        local,
        [
            cmd("load", "STORE", str(users)),
            cmd("load", "STORE", str(more)),
            cmd("dump", "STORE"),
            cmd("load", "--replace", "STORE", str(more)),
            cmd("keys", "STORE"),
            cmd("load", "STORE", "-", stdin='["a list"]'),
        ],
    )
    assert "loaded 2 keys into STORE" in t[0] and "loaded 1 key into STORE" in t[1]
    assert '"grace": 1906' in t[2]
    assert "2 keys removed or replaced" in t[3] and t[4].split("--")[0].endswith("\ngrace\n")
    assert "[1]" in t[5]


def test_info_reports_the_same_fields(stores: Stores, local: Stores, tmp_path: Path):
    infos = {}
    for which, made in (("local", local), ("other", stores)):
        store = made.new()
        sos("set", store, "ada", '{"born": 1815}')
        sos("set", store, "alan", '"turing"')
        infos[which] = json.loads(sos("info", "--json", store).stdout)
        text = sos("info", store).stdout
        assert "kind:             dict\n" in text and "count:            2\n" in text
        infos[which]["store"] = infos[which]["store"].replace(store, "STORE")
    want, got = infos["local"], infos["other"]
    assert set(got) == set(want)
    assert want["kind"] == "dict" and want["count"] == 2 and want["files"] == 2
    assert want["store_format"] == 1 and want["other_files"] == 4  # sos.json and the support files
    assert isinstance(want["disk_bytes"], int) and want["disk_bytes"] > 0
    disk = ("disk_bytes", "disk_per_key", "other_disk_bytes")
    for name in want:
        if name in disk and stores.kind != "local":
            assert got[name] is None, (name, got)  # no blocks to count: said, not guessed
        else:
            assert got[name] == want[name], (name, got, want)


def test_path_prints_where_the_key_lives(stores: Stores, local: Stores):
    t = same_everywhere(
        stores,
        local,
        [
            cmd("set", "STORE", "ada", "1"),
            cmd("path", "STORE", "ada"),
            cmd("path", "STORE", "nobody"),
            cmd("append", "STORE", "1"),
        ],
    )
    assert t[1] == f"$ sos path STORE ada\n[0]\nSTORE/{doc_name('ada')}\n--\n"
    assert f"STORE/{doc_name('nobody')}\n--\n" in t[2] and "[1]" in t[2]
    assert "no key 'nobody' yet" in t[2]
    store = stores.new()
    sos("set", store, "ada", "1")
    path = sos("path", store, "ada").stdout.strip()
    if stores.kind == "s3":
        assert path.startswith("s3://") and path == f"{store}/{doc_name('ada')}"
    elif stores.kind == "local":
        assert json.loads(Path(path).read_text()) == {"key": "ada", "value": 1}


def test_check_finds_a_dropped_file_and_repairs_it(stores: Stores, local: Stores):
    doc = b'{"key": "linus", "value": 1969}'
    lines = [cmd("check", "STORE"), cmd("check", "--repair", "STORE")]
    lines += [cmd("check", "STORE"), cmd("get", "STORE", "linus")]
    outs = []
    for made in (local, stores):
        store = made.new()
        sos("set", store, "ada", "1")
        put_file(store, "dropped.json", doc)
        outs.append(transcript(store, lines))
    assert outs[1] == outs[0]
    t = outs[0]
    assert "[1]" in t[0] and "misplaced:" in t[0] and "STORE/dropped.json" in t[0]
    assert "[0]" in t[1] and "repaired, now clean" in t[1]
    assert t[2] == "$ sos check STORE\n[0]\nclean: 2 keys, 0 problems\n--\n" and "1969" in t[3]


def test_a_damaged_document_is_reported_the_same(stores: Stores, local: Stores):
    outs = []
    for made in (local, stores):
        store = made.new()
        sos("set", store, "ada", "1")
        sos("set", store, "alan", "2")
        put_file(store, doc_name("alan"), b'{"key": "alan", "value": [1,,2]}')
        outs.append(
            transcript(
                store,
                [
                    cmd("get", "STORE", "alan"),
                    cmd("keys", "STORE"),
                    cmd("dump", "STORE"),
                    cmd("check", "STORE"),
                ],
            )
        )
    assert outs[1] == outs[0]
    t = outs[0]
    assert "[1]" in t[0] and f"STORE/{doc_name('alan')}" in t[0]
    assert t[1].startswith("$ sos keys STORE\n[1]\nada\n--\n") and "1 unreadable" in t[1]
    assert '"ada": 1' in t[2] and "[1]" in t[2]
    assert "[1]" in t[3] and "invalid-json:" in t[3]


def test_adopt_from_lost_found(stores: Stores, local: Stores):
    outs = []
    for made in (local, stores):
        store = made.new()
        sos("append", store, '"milk"')
        put_file(store, "lost+found/abc-7.json", b'{"key": "abc-7", "value": "jam"}')
        outs.append(
            transcript(
                store,
                [
                    cmd("adopt", "STORE", "STORE/lost+found/abc-7.json"),
                    cmd("dump", "STORE"),
                    cmd("adopt", "STORE", "STORE/lost+found/abc-7.json"),
                ],
            )
        )
        assert read_file(store, "lost+found/abc-7.json") is None, "moved in, not copied"
    assert outs[1] == outs[0]
    assert "appended as index 1" in outs[0][0] and '"jam"' in outs[0][1]
    assert "[1]" in outs[0][2] and "no such file" in outs[0][2]


def test_resolve_a_file_with_conflict_markers(stores: Stores, local: Stores):
    conflicted = (
        b'{\n  "key": "ada",\n<<<<<<< HEAD\n  "value": "ours"\n=======\n'
        b'  "value": "theirs"\n>>>>>>> other\n}\n'
    )
    outs = []
    for made in (local, stores):
        store = made.new()
        sos("set", store, "ada", "1")
        put_file(store, doc_name("ada"), conflicted)
        outs.append(
            transcript(
                store,
                [
                    cmd("check", "STORE"),
                    cmd("resolve", "STORE", "ada", "--theirs"),
                    cmd("get", "STORE", "ada"),
                ],
            )
        )
    assert outs[1] == outs[0]
    assert "conflict-markers:" in outs[0][0]
    assert "[0]" in outs[0][1] and "kept theirs" in outs[0][1] and '"theirs"' in outs[0][2]


def test_resolve_without_git_says_so(stores: Stores):
    store = stores.new()
    sos("set", store, "ada", "1")
    proc = sos("resolve", store, "ada", "--ours", expect=1)
    assert "has no git conflict markers; nothing to resolve" in proc.stderr
    missing = sos("resolve", store, "nobody", "--ours", expect=1)
    assert "no key 'nobody'" in missing.stderr
    if stores.kind == "local":
        assert "not a local directory" not in proc.stderr + missing.stderr
    else:
        for out in (proc.stderr, missing.stderr):
            assert "is not a local directory, so no git merge state exists" in out, out
            assert len(out.splitlines()) == 1
    assert sos("get", store, "ada").stdout == "1\n", "nothing changed"


# -- edit: the value shown is the real one, and the write is a compare-and-swap --------

# A scripted $EDITOR (sh: it starts in milliseconds): it records what it was
# shown, lets another user change the store if asked (a real process), then
# saves the text in $WRITE.
EDITOR = """\
cp "$1" "$SEEN"
if [ -n "$MEANWHILE" ]; then eval "$MEANWHILE" >/dev/null 2>&1 || exit 3; fi
printf '%s' "$WRITE" > "$1"
"""


def edit(store: str, key: str, tmp_path: Path, text: str, meanwhile=None, **kw):
    script = tmp_path / "editor.sh"
    script.write_text(EDITOR)
    seen = tmp_path / f"seen-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, EDITOR=f"sh {script}", SEEN=str(seen), WRITE=text)
    env.pop("VISUAL", None)
    env.pop("MEANWHILE", None)
    if meanwhile is not None:
        env["MEANWHILE"] = shlex.join(meanwhile)
    proc = sos("edit", store, key, env=env, **kw)
    return proc, seen.read_text() if seen.exists() else None


def test_edit_shows_the_real_value_and_writes_it(stores: Stores, tmp_path: Path):
    """Issue 19: on S3 the editor showed {"key": "ada", "value": null} and saving
    wrote that over the real value."""
    store = stores.new()
    sos("set", store, "ada", '{"born": 1815}')
    proc, seen = edit(store, "ada", tmp_path, '{"key": "ada", "value": {"born": 1816}}')
    assert json.loads(seen) == {"key": "ada", "value": {"born": 1815}}
    assert proc.stderr == f"sos: wrote {store}/{doc_name('ada')}\n"
    assert json.loads(sos("get", store, "ada").stdout) == {"born": 1816}
    # The next edit shows what the last one wrote.
    proc, seen = edit(store, "ada", tmp_path, '{"key": "ada", "value": {"born": 1815}}')
    assert json.loads(seen)["value"] == {"born": 1816}
    # A new key starts from a template; a list item shows the item.
    proc, seen = edit(store, "new", tmp_path, '{"key": "new", "value": [1]}')
    assert json.loads(seen) == {"key": "new", "value": None}
    assert json.loads(sos("get", store, "new").stdout) == [1]
    todo = stores.new("todo")
    sos("append", todo, '"milk"')
    sos("append", todo, '"eggs"')
    item_key = json.loads(read_file(todo, sos("path", todo, "1").stdout.strip()[len(todo) + 1 :]))
    proc, seen = edit(todo, "1", tmp_path, json.dumps({"key": item_key["key"], "value": "EGGS"}))
    assert json.loads(seen)["value"] == "eggs"
    assert json.loads(sos("dump", todo).stdout) == ["milk", "EGGS"]
    copies = Path(tempfile.gettempdir()).glob("sos-edit-*")
    assert not list(copies), "the copy is removed after a good edit"


def test_edit_saved_unchanged_never_overwrites(stores: Stores, tmp_path: Path):
    store = stores.new()
    sos("set", store, "ada", '{"born": 1815}')
    before = read_file(store, doc_name("ada"))
    shown = before.decode()
    proc, seen = edit(store, "ada", tmp_path, shown)
    assert seen == shown and "no changes" in proc.stderr
    assert read_file(store, doc_name("ada")) == before


@pytest.mark.parametrize(
    "kind", [p for p in STORAGES if p.values[0] != "memory"], indirect=True
)  # the other writer is another process: memory:// is not shared with it
def test_edit_refuses_a_change_made_meanwhile(stores: Stores, tmp_path: Path):
    store = stores.new()
    sos("set", store, "ada", '{"born": 1815}')
    other = [SOS, "set", store, "ada", '"changed by bob"']
    proc, seen = edit(
        store, "ada", tmp_path, '{"key": "ada", "value": "mine"}', meanwhile=other, expect=1
    )
    assert json.loads(seen)["value"] == {"born": 1815}
    assert "was changed by someone else while you edited it; nothing written" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sos("get", store, "ada").stdout == '"changed by bob"\n', "never overwritten"
    kept = COPY.search(proc.stderr)
    assert kept is not None and json.loads(Path(kept.group()).read_text())["value"] == "mine"
    # A key created by someone else meanwhile is not overwritten either.
    other = [SOS, "set", store, "eve", "1"]
    proc, _ = edit(store, "eve", tmp_path, '{"key": "eve", "value": 2}', meanwhile=other, expect=1)
    assert "changed by someone else" in proc.stderr
    assert sos("get", store, "eve").stdout == "1\n"
    # A key removed meanwhile stays removed.
    other = [SOS, "del", store, "eve"]
    proc, _ = edit(store, "eve", tmp_path, '{"key": "eve", "value": 3}', meanwhile=other, expect=1)
    assert "was removed by someone else while you edited it; nothing written" in proc.stderr
    sos("get", store, "eve", expect=1)


def test_edit_refuses_a_change_made_meanwhile_by_another_handle(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The same race with the other writer in this process (another handle of
    the store), so memory:// is covered too: the write is a compare-and-swap."""
    store = stores.new()
    sos("set", store, "ada", '{"born": 1815}')
    real_call = subprocess.call

    def editor_then_bob(*args, **kwargs):
        status = real_call(*args, **kwargs)
        with sos_api.open(store) as db:
            db["ada"] = "changed by bob"
        return status

    monkeypatch.setattr("sos.cli.edit.subprocess.call", editor_then_bob)
    proc, seen = edit(store, "ada", tmp_path, '{"key": "ada", "value": "mine"}', expect=1)
    assert json.loads(seen)["value"] == {"born": 1815}
    assert f"sos edit: {store}/{doc_name('ada')} was changed by someone else" in proc.stderr
    assert sos("get", store, "ada").stdout == '"changed by bob"\n'


# -- creation and a failed load ---------------------------------------------------------


def test_created_is_said_only_when_a_store_is_made(stores: Stores):
    store = stores.new()
    assert "created dict store" in sos("set", store, "a", "1").stderr
    for _ in range(2):
        assert sos("set", store, "b", "2").stderr == ""
    lst = stores.new("list")
    assert "created list store" in sos("append", lst, "1").stderr
    assert sos("append", lst, "2").stderr == ""
    assert "created" not in sos("load", lst, "-", input="[3]").stderr


def test_a_failed_load_leaves_nothing_and_says_how_far_it_got(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("sos.cli.transfer._CHUNK", 5)  # the failure comes after group commits
    deep: object = 0
    for _ in range(600):
        deep = [deep]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(n) for n in range(12)] + [json.dumps(deep)]))
    store = stores.new("new")
    proc = sos("load", store, str(bad), expect=1)
    assert f"removed the new store {store}; 10 of 13 entries were written" in proc.stderr
    assert "none kept" in proc.stderr and "entry 13:" in proc.stderr
    assert stored_names(store) == [], "sos.json and the support files are gone too"
    with pytest.raises(sos_api.Error, match="not a sos store"):
        sos_api.open(store)
    # An existing store is unchanged, and says so with the same count.
    sos("append", store, '"before"')
    proc = sos("load", store, str(bad), expect=1)
    assert f"{store} is unchanged; 10 of 13 entries were written" in proc.stderr
    assert json.loads(sos("dump", store).stdout) == ["before"]


def test_a_load_whose_cleanup_fails_says_so(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = stores.new("new")
    storage = open_storage(store)
    storage.close()

    def refuse(self, *, keep_root: bool = False) -> None:
        raise PermissionError(13, "Permission denied", self.url)

    monkeypatch.setattr(type(storage), "remove_all", refuse)
    deep: object = 0
    for _ in range(600):
        deep = [deep]
    proc = sos("load", store, "-", input=f"1\n{json.dumps(deep)}\n", expect=1)
    assert f"could not remove the new store {store} (" in proc.stderr
    assert "remove it by hand" in proc.stderr and "entry 2:" in proc.stderr


# -- watch: a real process, a bounded run -----------------------------------------------


@pytest.mark.parametrize(
    "kind", [p for p in STORAGES if p.values[0] != "memory"], indirect=True
)  # watched from another process
def test_watch_prints_a_change_then_stops_on_ctrl_c(stores: Stores):
    store = stores.new()
    sos("set", store, "ada", "1")
    proc = subprocess.Popen(
        [SOS, "watch", "--poll", "0.1", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        line = ""
        while not line and time.monotonic() < deadline:
            sos("set", store, "ada", str(int(time.monotonic() * 1000)))
            time.sleep(0.3)
            if proc.poll() is not None:
                break
            # one change line is enough; stop the reader with Ctrl-C after it
            os.set_blocking(proc.stdout.fileno(), False)
            line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.poll() is not None else "no change line"
        change = json.loads(line)
        assert change["key"] == "ada", change
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # where is it stuck? faulthandler dumps every thread
            # (seen once, under load: looping in its LISTs; was SIGINT blocked, pending, ignored?)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            masks = [line for line in status.splitlines() if line.startswith(("Sig", "ShdPnd"))]
            proc.send_signal(signal.SIGABRT)
            _, stuck = proc.communicate(timeout=10)
            raise AssertionError(
                f"sos watch ignored Ctrl-C for 30 s: {masks}\n{stuck[-8000:]}"
            ) from None
        assert code == 130
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# -- the rule behind all of this ----------------------------------------------------------


def test_the_cli_reaches_stores_only_through_the_storage():
    """No file-system call on a store path in sos/cli/: what worked only on a
    local directory (os.walk, os.path, shutil) is what broke s3:// commands.
    ``open()`` and ``os.unlink`` remain for the user's own files."""
    import ast

    import sos.cli

    banned = {"walk", "path", "listdir", "lstat", "stat", "scandir", "mkdir", "rmdir", "remove"}
    modules = sorted(Path(sos.cli.__file__).parent.glob("*.py"))
    assert len(modules) > 3, modules
    found = [
        f"{module.name} line {node.lineno}: {ast.unparse(node)}"
        for module in modules
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and (node.value.id == "shutil" or (node.value.id == "os" and node.attr in banned))
    ]
    assert found == []


@pytest.mark.s3
def test_remove_all_takes_directory_markers_too(s3_url: str):
    """A failed load's cleanup on S3 removes every object under the prefix,
    the 0-byte directory markers other tools leave included; usage skips them."""
    from sos.storage.s3.client import new_client

    store = f"{s3_url}/new"
    sos("set", store, "ada", "1")
    bucket, _, prefix = store.removeprefix("s3://").partition("/")
    client = new_client()
    try:
        client.put_object(Bucket=bucket, Key=f"{prefix}/zz/", Body=b"")
        storage = open_storage(store)
        try:
            names = [name for name, _, _ in storage.usage()]
            assert doc_name("ada") in names and "sos.json" in names
            assert not any(name.endswith("/") for name in names)
            storage.remove_all()
        finally:
            storage.close()
        left = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
        assert left.get("KeyCount", 0) == 0, left.get("Contents")
    finally:
        client.close()

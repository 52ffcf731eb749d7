"""The ``sos`` command, driven as a user would.

In-process (``main(argv)``, see ``cli_helpers.sos``) except a handful that
start the real program: the console script, ``python -m sos``, output piped
into ``head`` (a broken pipe), and a terminal for the progress bar."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from cli_helpers import SOS, clean_env, run, sos, sos_exe
from conftest import digest_path

import sos as sos_api

COMMANDS = ["get", "set", "del", "append", "keys", "dump", "load", "info"]
COMMANDS += ["path", "edit", "check", "resolve", "adopt"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home, TMPDIR=str(tmp_path))


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    with sos_api.Dict(path) as db:
        db.update({"ada": {"born": 1815}, "alan": {"born": 1912}})
    return path


@pytest.fixture
def todo(tmp_path: Path) -> Path:
    path = tmp_path / "todo"
    with sos_api.List(path) as lst:
        lst.extend(["milk", "eggs", "bread"])
    return path


def one_line_error(proc: subprocess.CompletedProcess[str], *names: str) -> None:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])


def test_help_lists_examples_for_every_command():
    top = sos("--help")
    for name in COMMANDS:
        assert name in top.stdout
        proc = sos(name, "--help")
        assert "examples:" in proc.stdout and f"sos {name}" in proc.stdout, name


def test_the_console_script_runs(users: Path):
    proc = sos_exe("get", users, "ada")
    assert json.loads(proc.stdout) == {"born": 1815}
    sos_exe("get", users, "nobody", expect=1)
    assert sos_exe("frobnicate", expect=2).stderr.startswith("usage:")


def test_python_dash_m_runs_the_same_command(users: Path):
    proc = run(sys.executable, "-m", "sos", "get", users, "ada")
    assert json.loads(proc.stdout) == {"born": 1815}
    assert run(sys.executable, "-m", "sos", "--version").stdout.strip() == (
        f"sos {sos_api.__version__}"
    )


def test_usage_errors_exit_2(users: Path, todo: Path):
    assert sos(expect=2).stderr.startswith("usage:")
    sos("frobnicate", users, expect=2)
    sos("get", users, expect=2)
    one_line_error(sos("set", users, "k", "{not json", expect=2), "VALUE", "line 1")
    one_line_error(sos("get", todo, "milk", expect=2), str(todo), "index")


def test_get_set_del_on_a_dict(users: Path):
    assert json.loads(sos("get", users, "ada").stdout) == {"born": 1815}
    sos("set", users, "grace", '{"born": 1906, "langs": ["COBOL"]}')
    sos("set", users, "motto", "-", input='"persistence"\n')
    with sos_api.Dict(users) as db:
        assert db["grace"] == {"born": 1906, "langs": ["COBOL"]}
        assert db["motto"] == "persistence"
    assert sos("get", "--raw", users, "motto").stdout == "persistence\n"
    assert sos("get", users, "motto").stdout == '"persistence"\n'
    sos("del", users, "grace")
    missing = sos("get", users, "grace", expect=1)
    assert missing.stdout == ""
    one_line_error(missing, str(users), "'grace'", str(digest_path(users, "grace")))
    one_line_error(sos("del", users, "grace", expect=1), str(users), "'grace'")


def test_errors_name_the_store_and_the_file(users: Path, tmp_path: Path):
    one_line_error(sos("get", tmp_path / "nowhere", "k", expect=1), str(tmp_path / "nowhere"))
    digest_path(users, "ada").write_text('{"key": "ada", "value": [1,}')
    one_line_error(
        sos("get", users, "ada", expect=1), str(digest_path(users, "ada")), "line 1, column 28"
    )


def test_a_list_by_index(todo: Path):
    assert sos("get", todo, "0").stdout == '"milk"\n'
    assert sos("get", todo, "-1").stdout == '"bread"\n'
    sos("append", todo, '{"item": "tea"}')
    sos("append", todo, "-", input="42")
    sos("set", todo, "1", '"butter"')
    sos("del", todo, "0")
    with sos_api.List(todo) as lst:
        assert list(lst) == ["butter", "bread", {"item": "tea"}, 42]
    assert sos("keys", todo).stdout == "0\n1\n2\n3\n"
    one_line_error(sos("get", todo, "10", expect=1), str(todo), "10")
    sos("append", todo.parent / "nolist", "1", expect=1)


def test_keys_one_per_line_and_odd_keys_as_json(tmp_path: Path):
    store = tmp_path / "odd"
    keys = ["plain", "two\nlines", '"quoted"', "tab\there", "émigré", " space "]
    with sos_api.Dict(store) as db:
        db.update({k: 1 for k in keys})
    lines = sos("keys", store).stdout.splitlines()
    assert len(lines) == len(keys)
    decoded = [json.loads(line) if line.startswith('"') else line for line in lines]
    assert decoded == sorted(keys)
    assert json.loads(sos("keys", "--json", store).stdout) == sorted(keys)
    assert sos("keys", "-0", store).stdout.split("\0")[:-1] == sorted(keys)


def test_dump_and_load_round_trip(users: Path, todo: Path, tmp_path: Path):
    whole = json.loads(sos("dump", users).stdout)
    assert whole == {"ada": {"born": 1815}, "alan": {"born": 1912}}
    assert list(whole) == sorted(whole)
    assert json.loads(sos("dump", todo).stdout) == ["milk", "eggs", "bread"]
    lines = sos("dump", "--jsonl", users).stdout.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"key": "ada", "value": {"born": 1815}},
        {"key": "alan", "value": {"born": 1912}},
    ]
    # JSON Lines of a dict back into a new dict store, through stdin.
    copy = tmp_path / "copy"
    sos("load", "--kind", "dict", copy, "-", input="\n".join(lines) + "\n")
    assert json.loads(sos("dump", copy).stdout) == whole
    # A JSON object file makes a dict; a JSON array and JSON Lines make lists.
    (tmp_path / "obj.json").write_text('{"x": 1, "y": [2]}')
    sos("load", tmp_path / "o", tmp_path / "obj.json")
    assert json.loads(sos("dump", tmp_path / "o").stdout) == {"x": 1, "y": [2]}
    sos("load", tmp_path / "a", "-", input='[1, "two", {"3": null}]')
    sos("load", tmp_path / "a", "-", input='4\n"five"\n\n[6]\n')
    assert json.loads(sos("dump", tmp_path / "a").stdout) == [1, "two", {"3": None}, 4, "five", [6]]
    assert sos("info", tmp_path / "a").stdout.count("kind:       list") == 1


def test_load_refuses_bad_input_and_the_wrong_kind(users: Path, todo: Path, tmp_path: Path):
    bad = sos("load", tmp_path / "n", "-", input='{"a": 1,\n "b": }', expect=1)
    one_line_error(bad, "stdin", "line 2")
    assert not (tmp_path / "n").exists()
    one_line_error(sos("load", todo, "-", input='{"a": 1}', expect=1), str(todo), "list")
    one_line_error(sos("load", users, "-", input="[1, 2]", expect=1), "entry 1")
    with sos_api.Dict(users) as db:
        assert sorted(db) == ["ada", "alan"]


def test_info(users: Path):
    info = json.loads(sos("info", "--json", users).stdout)
    assert info["kind"] == "dict" and info["count"] == 2 and info["format"] == 1
    files = [p for p in users.rglob("*") if p.is_file()]
    assert info["files"] == len(files)
    assert info["bytes"] == sum(p.stat().st_size for p in files)
    text = sos("info", users).stdout
    assert "kind:       dict" in text and "count:      2" in text


def test_path_points_editors_and_grep_at_the_file(users: Path, todo: Path):
    path = sos("path", users, "ada").stdout.strip()
    assert path == str(digest_path(users, "ada"))
    found = run("grep", "-l", "1815", "-r", users).stdout.split()
    assert found == [path]
    item = sos("path", todo, "-1").stdout.strip()
    assert json.loads(Path(item).read_text())["value"] == "bread"
    new = sos("path", users, "nobody", expect=1)
    assert new.stdout.strip() == str(digest_path(users, "nobody"))


EDITOR = """\
import json, os, pathlib, sys
copy = pathlib.Path(sys.argv[1])
turn = pathlib.Path(os.environ["TURNS"])
n = len(turn.read_text()) if turn.exists() else 0
turn.write_text("x" * (n + 1))
texts = json.loads(os.environ["WRITE"])
copy.write_text(texts[min(n, len(texts) - 1)])
"""


def edit(store: Path, key: str, env: dict[str, str], tmp_path: Path, *texts: str, **kw):
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    turns = tmp_path / f"turns-{len(list(tmp_path.iterdir()))}"
    env = dict(env, EDITOR=f"{sys.executable} {script}", TURNS=str(turns), WRITE=json.dumps(texts))
    env.pop("VISUAL", None)
    return sos("edit", store, key, env=env, **kw)


def test_edit_writes_a_checked_document(users: Path, env, tmp_path: Path):
    proc = edit(users, "ada", env, tmp_path, '{"key": "ada", "value": {"born": 1815, "x": 1}}')
    assert "wrote" in proc.stderr
    assert digest_path(users, "ada").read_text() == (
        '{\n  "key": "ada",\n  "value": {\n    "born": 1815,\n    "x": 1\n  }\n}\n'
    )
    assert not list(tmp_path.glob("sos-edit-*")), "the copy is removed after a good edit"


def test_edit_bad_json_then_again(users: Path, env, tmp_path: Path):
    bad = '{"key": "ada",\n  "value": [1,,2]}'
    good = '{"key": "ada", "value": 2}'
    proc = edit(users, "ada", env, tmp_path, bad, good, input="y\n")
    assert "sos-edit-" in proc.stderr and ":2:15: invalid JSON" in proc.stderr
    assert "Edit again? [Y/n]" in proc.stderr
    with sos_api.Dict(users) as db:
        assert db["ada"] == 2


def test_edit_without_an_answer_fails_and_writes_nothing(users: Path, env, tmp_path: Path):
    before = digest_path(users, "ada").read_bytes()
    proc = edit(users, "ada", env, tmp_path, '{"key": "ada", "value": }', expect=1)
    assert ":1:25: invalid JSON" in proc.stderr
    assert digest_path(users, "ada").read_bytes() == before
    proc = edit(users, "ada", env, tmp_path, '{"key": "ada", "value": }', input="n\n", expect=1)
    assert digest_path(users, "ada").read_bytes() == before
    proc = edit(users, "ada", env, tmp_path, '{"key": "eve", "value": 1}', expect=1)
    assert "must stay 'ada'" in proc.stderr
    assert digest_path(users, "ada").read_bytes() == before


def test_edit_creates_a_new_key_and_edits_list_items(users: Path, todo: Path, env, tmp_path):
    edit(users, "new", env, tmp_path, '{"key": "new", "value": [1, 2]}')
    with sos_api.Dict(users) as db:
        assert db["new"] == [1, 2]
    item = json.loads(Path(sos("path", todo, "1").stdout.strip()).read_text())["key"]
    edit(todo, "1", env, tmp_path, json.dumps({"key": item, "value": "EGGS"}))
    with sos_api.List(todo) as lst:
        assert list(lst) == ["milk", "EGGS", "bread"]
    proc = edit(users, "alan", env, tmp_path, digest_path(users, "alan").read_text())
    assert "no changes" in proc.stderr


def test_check_and_repair_exit_codes(users: Path, todo: Path):
    assert sos("check", users).stdout == ""
    (users / ".sos-tmp-0000000000000001").write_text("x")
    (users / "dropped.json").write_text('{"key": "linus", "value": 1969}')
    found = sos("check", users, expect=1)
    assert "temp-file:" in found.stdout and "misplaced:" in found.stdout
    assert str(users / "dropped.json") in found.stdout
    as_json = [json.loads(x) for x in sos("check", "--json", users, expect=1).stdout.splitlines()]
    assert sorted(p["code"] for p in as_json) == ["misplaced", "temp-file"]
    fixed = sos("check", "--repair", users)
    assert "moved to" in fixed.stdout and "removed" in fixed.stdout
    assert sos("check", users).stdout == ""
    assert sos("get", users, "linus").stdout == "1969\n"


def test_resolve_a_conflicted_key(users: Path):
    path = digest_path(users, "ada")
    conflicted = (
        '{\n  "key": "ada",\n<<<<<<< HEAD\n  "value": "ours"\n||||||| base\n  "value": 0\n'
        '=======\n  "value": "theirs"\n>>>>>>> other\n}\n'
    )
    path.write_text(conflicted)
    proc = sos("check", users, expect=1)
    assert "conflict-markers:" in proc.stdout and "'ada'" in proc.stdout
    assert f"sos resolve {users} ada --ours" in proc.stdout
    sos("check", "--repair", users, expect=1)
    assert path.read_text() == conflicted, "repair leaves a conflict to the user"
    sos("resolve", users, "ada", expect=2)  # --ours or --theirs is required
    sos("resolve", users, "ada", "--theirs")
    assert sos("get", users, "ada").stdout == '"theirs"\n'
    one_line_error(sos("resolve", users, "ada", "--ours", expect=1), "no git conflict markers")
    assert sos("check", users).stdout == ""


def test_edit_does_not_call_an_untouched_conflict_unchanged(users: Path, env, tmp_path: Path):
    path = digest_path(users, "ada")
    conflicted = (
        '{\n  "key": "ada",\n<<<<<<< HEAD\n  "value": 1\n=======\n  "value": 2\n>>>>>>> b\n}\n'
    )
    path.write_text(conflicted)
    proc = edit(users, "ada", env, tmp_path, conflicted, expect=1)
    assert ":3:1: git conflict markers" in proc.stderr
    assert path.read_text() == conflicted


def test_adopt_brings_back_a_lost_item(todo: Path):
    # An item file that the manifest does not name, at its own hashed name.
    orphan_id = "abc-7"
    stray = digest_path(todo, orphan_id)
    stray.parent.mkdir(exist_ok=True)
    stray.write_text(json.dumps({"key": orphan_id, "value": "jam"}))
    out = sos("check", "--repair", todo).stdout
    assert "orphan-item:" in out and "lost+found" in out
    lost = todo / "lost+found" / stray.name
    assert f"sos adopt {todo} {lost}" in out
    sos("adopt", todo, lost)
    assert json.loads(sos("dump", todo).stdout) == ["milk", "eggs", "bread", "jam"]
    assert sos("check", todo).stdout == ""


def test_quiet_when_piped_into_head(tmp_path: Path):
    store = tmp_path / "big"
    with sos_api.List(store) as lst:
        lst.extend({"n": i, "pad": "x" * 100} for i in range(3000))
    for command in (
        f"'{SOS}' dump --jsonl '{store}' | head -1",
        f"'{SOS}' keys '{store}' | head -1",
    ):
        proc = run("bash", "-c", command)
        assert proc.stderr == "", proc.stderr
        assert proc.stdout.count("\n") == 1


def test_no_progress_bar_when_piped_one_on_a_terminal(tmp_path: Path):
    store = tmp_path / "many"
    with sos_api.List(store) as lst:
        lst.extend(range(1500))
    assert sos("check", store).stderr == ""
    assert sos("dump", store).stderr == ""
    # stderr on a pseudo-terminal: tqdm draws its bar there.
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 columns wide; a real one is not.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        proc = subprocess.Popen(
            [SOS, "check", str(store)],
            stdout=subprocess.DEVNULL,
            stderr=follower,
            stdin=subprocess.DEVNULL,
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(leader)
    assert b"checking" in seen and b"1500" in seen


def test_user_errors_never_show_a_traceback(tmp_path: Path):
    (tmp_path / "file").write_text("not a dir")
    for args in (
        ("get", tmp_path / "file", "k"),
        ("check", tmp_path / "nowhere"),
        ("load", tmp_path / "s", tmp_path / "no-such-input"),
        ("info", tmp_path),
    ):
        proc = sos(*args, expect=1)
        assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_main_can_be_called_in_process(users: Path, capsys: pytest.CaptureFixture[str]):
    from sos.cli import main

    assert main(["get", str(users), "alan"]) == 0
    assert json.loads(capsys.readouterr().out) == {"born": 1912}
    assert main(["get", str(users), "nobody"]) == 1
    assert main(["--nope"]) == 2

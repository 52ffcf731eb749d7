"""The shell conventions of issue 24: globs for keys and dump, a summary
line from a clean check, and keys moved or copied in one transaction.

In-process (``sos.cli.main``, see ``cli_helpers.sos``); the S3 runs of the
same command lines are in tests/s3/test_cli_storages.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_helpers import sos

import sos as sos_api
from sos.storage.memory import forget


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people"
    with sos_api.Dict(path) as db:
        db.update(
            {k: i for i, k in enumerate(["ada", "alan", "bob", "user-01", "user-1", "User-02"])}
        )
    return path


@pytest.fixture
def todo(tmp_path: Path) -> Path:
    path = tmp_path / "todo"
    with sos_api.List(path) as lst:
        lst.extend(["milk", "eggs"])
    return path


# -- keys and dump with a PATTERN ------------------------------------------------------


def test_keys_takes_a_shell_glob(people: Path):
    assert sos("keys", people, "a*").stdout == "ada\nalan\n"
    assert sos("keys", people, "user-??").stdout == "user-01\n"  # case-sensitive: not User-02
    assert sos("keys", people, "[Uu]ser-0?").stdout == "User-02\nuser-01\n"
    assert json.loads(sos("keys", "--json", people, "*b*").stdout) == ["bob"]
    assert sos("keys", people, "nobody*").stdout == ""
    assert sos("keys", people).stdout.count("\n") == 6  # no PATTERN: every key


def test_dump_takes_a_shell_glob(people: Path):
    assert json.loads(sos("dump", people, "a*").stdout) == {"ada": 0, "alan": 1}
    lines = sos("dump", "--jsonl", people, "user-*").stdout.splitlines()
    assert [json.loads(x) for x in lines[1:]] == [
        {"key": "user-01", "value": 3},
        {"key": "user-1", "value": 4},
    ]


def test_a_pattern_on_a_list_is_refused(todo: Path):
    for argv in (["keys", todo, "1*"], ["dump", todo, "1*"]):
        proc = sos(*argv, expect=2)
        assert proc.stdout == ""
        assert "is a list: PATTERN selects a dict's keys" in proc.stderr


# -- check's summary line --------------------------------------------------------------


def test_a_clean_check_says_so_in_one_line(tmp_path: Path):
    url = "memory://cli24-check-summary"
    try:
        entries = tmp_path / "many.json"
        entries.write_text(json.dumps({f"k{i}": i for i in range(1204)}))
        sos("load", url, entries)
        proc = sos("check", url)
        assert proc.stdout == "clean: 1,204 keys, 0 problems\n"
        assert sos("check", "-q", url).stdout == ""
        assert sos("check", "--json", url).stdout == ""  # JSON Lines of problems: none
    finally:
        forget(url)


def test_a_clean_list_counts_items_and_a_damaged_store_no_summary(todo: Path, people: Path):
    assert sos("check", todo).stdout == "clean: 2 items, 0 problems\n"
    (people / "stray.json").write_text('{"key": "x", "value": 1}')
    proc = sos("check", people, expect=1)
    assert "clean" not in proc.stdout and "misplaced" in proc.stdout
    assert "clean" not in sos("check", "-q", people, expect=1).stdout


# -- mv and cp ------------------------------------------------------------------------


def test_mv_renames_a_key_and_cp_copies_it(people: Path):
    sos("mv", people, "ada", "ada-lovelace")
    db = sos_api.Dict(people)
    assert "ada" not in db and db["ada-lovelace"] == 0
    sos("cp", people, "bob", "bob-2")
    assert db["bob"] == db["bob-2"] == 2
    sos("mv", "--force", people, "bob-2", "alan")  # replaces alan
    assert db["alan"] == 2 and "bob-2" not in db
    sos("cp", "-f", people, "user-1", "bob")
    assert db["bob"] == 4 and db["user-1"] == 4
    assert len(db) == 6
    db.close()


@pytest.mark.parametrize("verb", ["mv", "cp"])
def test_mv_and_cp_refuse_and_change_nothing(people: Path, todo: Path, verb: str):
    before = sorted(p.read_bytes() for p in people.rglob("*") if p.is_file())
    cases = [
        ([people, "nobody", "x"], 1, "no key 'nobody'"),
        ([people, "ada", "bob"], 1, f"key 'bob' exists; sos {verb} --force replaces it"),
        ([people, "ada", "ada"], 1, "OLD and NEW are the same key 'ada'"),
        ([people, "ada", "\udcff"], 2, "not UTF-8"),
        ([people, "ada"], 2, "the following arguments are required: NEW"),
        ([todo, "0", "1"], 2, f"is a list: {verb} works on a dict's keys"),
    ]
    for argv, status, message in cases:
        proc = sos(verb, *argv, expect=status)
        assert message in proc.stderr, proc.stderr
        assert proc.stdout == ""
    after = sorted(p.read_bytes() for p in people.rglob("*") if p.is_file())
    assert after == before, "nothing written"
    assert sos_api.List(todo)[:] == ["milk", "eggs"]


def test_mv_is_one_transaction(people: Path, monkeypatch: pytest.MonkeyPatch):
    """A move that fails after NEW is written but before OLD is gone leaves
    neither change: the delete fails here, and the new key is not kept."""
    real = sos_api.Dict.__delitem__

    def failing(self, key):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sos_api.Dict, "__delitem__", failing)
    proc = sos("mv", people, "ada", "ada-2", expect=1)
    assert "No space left on device" in proc.stderr
    monkeypatch.setattr(sos_api.Dict, "__delitem__", real)
    with sos_api.Dict(people) as db:
        assert db["ada"] == 0 and "ada-2" not in db


# -- shell completion ------------------------------------------------------------------

BASH_COMPLETE = """
source <(cat "$1")
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=();
  _shtab_sos sos "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"; printf '%s\\n' "${COMPREPLY[@]}"; }
echo "== commands"; complete_words sos ''
echo "== get options"; complete_words sos get --
echo "== store"; complete_words sos keys "$2/pe"
"""


def test_bash_completes_commands_options_and_stores(tmp_path: Path, people: Path):
    script = tmp_path / "sos.bash"
    proc = sos("--print-completion", "bash")
    script.write_text(proc.stdout)
    out = subprocess.run(
        ["bash", "-c", BASH_COMPLETE, "bash", str(script), str(people.parent)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    commands, options, stores = (part.split() for part in out.split("==")[1:])
    from sos.cli.run import COMMAND_MODULES

    assert set(COMMAND_MODULES) <= set(commands)
    assert {"--at", "--raw"} <= set(options)
    assert str(people) in stores


def test_fish_completes_commands_options_and_stores(tmp_path: Path, people: Path):
    from sos.cli.run import COMMAND_MODULES

    script = tmp_path / "sos.fish"
    script.write_text(sos("--print-completion", "fish").stdout)
    asks = ["sos ", "sos set --", f"sos keys {people.parent}/pe"]
    program = f"source {script}; " + "; echo ==; ".join(f'complete -C "{a}"' for a in asks)
    out = subprocess.run(
        ["fish", "--no-config", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    commands, options, stores = (
        [line.split("\t")[0] for line in part.strip().splitlines()] for part in out.split("==")
    )
    assert set(COMMAND_MODULES) <= set(commands)
    assert {"--at", "--add"} <= set(options)
    assert f"{people}/" in stores


def test_zsh_loads_the_script_and_registers_it_for_sos(tmp_path: Path):
    from sos.cli.run import COMMAND_MODULES

    script = tmp_path / "_sos"
    script.write_text(sos("--print-completion", "zsh").stdout)
    program = f'autoload -U compinit; compinit -u -d {tmp_path}/zcompdump; eval "$(<{script})"; '
    program += "print ${_comps[sos]}"
    out = subprocess.run(
        ["zsh", "-f", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout == "_shtab_sos\n" and out.stderr == ""
    text = script.read_text()
    assert all(f"    {name}:'" in text for name in COMMAND_MODULES)  # with its summary
    assert "--at" in text and "--add" in text and "--force" in text


def test_an_unknown_shell_is_a_usage_error():
    proc = sos("--print-completion", "ksh", expect=2)
    assert "invalid choice: 'ksh'" in proc.stderr and proc.stdout == ""


# -- two format numbers, two names ----------------------------------------------------


def test_the_dump_format_and_the_store_format_have_distinct_names(tmp_path: Path):
    people = tmp_path / "people"
    sos("set", people, "ada", "1")  # one key at a time: no transaction, store format 1
    info = json.loads(sos("info", "--json", people).stdout)
    assert info["store_format"] == 1 and "format" not in info
    assert "store_format:     1\n" in sos("info", people).stdout
    header = json.loads(sos("dump", "--jsonl", people).stdout.splitlines()[0])
    assert header == {"sos-dump": {"kind": "dict", "dump-format": 1}}
    copy = tmp_path / "copy"
    sos("load", copy, "-", input=sos("dump", "--jsonl", people).stdout)
    # A load is a transaction: the copy's files are store format 2 now, its dump still 1.
    assert json.loads(sos("info", "--json", copy).stdout)["store_format"] == 2
    assert json.loads(sos("dump", "--jsonl", copy).stdout.splitlines()[0]) == header


def test_an_old_dump_header_still_loads_and_a_newer_one_is_refused(tmp_path: Path):
    old = '{"sos-dump": {"kind": "dict", "format": 1}}\n{"key": "a", "value": 1}\n'
    sos("load", tmp_path / "old", "-", input=old)
    assert json.loads(sos("dump", tmp_path / "old").stdout) == {"a": 1}
    newer = '{"sos-dump": {"kind": "dict", "dump-format": 2}}\n{"key": "a", "value": 1}\n'
    proc = sos("load", tmp_path / "new", "-", input=newer, expect=1)
    assert "dump format 2 is newer than this sos reads (1)" in proc.stderr
    assert not (tmp_path / "new").exists()
    bad = '{"sos-dump": {"kind": "dict", "dump-format": "one"}}\n'
    assert (
        "unknown dump format 'one'" in sos("load", tmp_path / "b", "-", input=bad, expect=1).stderr
    )


def test_the_jsonl_dump_of_an_empty_store_loads_as_an_empty_store(tmp_path: Path):
    """Only the marker line: it was read as a JSON object, a key named sos-dump."""
    for kind, make in (("dict", sos_api.Dict), ("list", sos_api.List)):
        make(tmp_path / f"empty-{kind}").close()
        dump = sos("dump", "--jsonl", tmp_path / f"empty-{kind}").stdout
        sos("load", tmp_path / f"copy-{kind}", "-", input=dump)
        assert sos("dump", tmp_path / f"copy-{kind}").stdout == (
            "{}\n" if kind == "dict" else "[]\n"
        )

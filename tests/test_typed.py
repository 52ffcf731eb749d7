"""Typed stores (issue 23): value_type=, schema.json, and what binds every writer.

Values are checked by pydantic (strict) in a typed handle and by jsonschema
everywhere else (an untyped handle, the command line, sos check); both say
the same thing in the same words, which ``test_both_validators_agree`` holds
them to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Literal

import pytest
from cli_helpers import sos as run_sos
from conftest import snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typing_extensions import TypedDict

import sos
from sos.core import schema as core_schema
from sos.format import schema as fmt_schema
from sos.storage.memory import forget

ROOT = Path(sos.__file__).resolve().parent.parent


@dataclasses.dataclass
class User:
    name: str
    born: int
    langs: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Team:
    lead: User
    members: list[User]
    tags: dict[str, float]


class Point(TypedDict):
    x: int
    y: int


class Pet(BaseModel):
    name: str
    kind: Literal["cat", "dog"]
    age: int | None = None


def _edit(store: sos.Dict, key: str, change) -> Path:  # type: ignore[type-arg]
    """Change ``key``'s document on disk as a person would, past any handle."""
    path = Path(store.path_of(key))
    doc = json.loads(path.read_text())
    change(doc["value"])
    path.write_text(json.dumps(doc, indent=2))
    return path


# -- value_type: each kind of type -----------------------------------------------------


_JSON_FLOATS = st.floats(allow_nan=False, allow_infinity=False)

# (type, strategy of values of it): hypothesis builds each from the type itself
# where it can; floats are kept finite because JSON holds no NaN.
KINDS = [
    (User, st.from_type(User)),
    (Point, st.from_type(Point)),
    (list[int], st.from_type(list[int])),
    (dict[str, float], st.dictionaries(st.text(), _JSON_FLOATS)),
    (Literal["a", "b"], st.from_type(Literal["a", "b"])),
    (int | str, st.from_type(int | str)),  # type: ignore[arg-type]
    (int | None, st.from_type(int | None)),  # type: ignore[arg-type]
    (
        Team,
        st.builds(
            Team,
            lead=st.from_type(User),
            members=st.lists(st.from_type(User), max_size=3),
            tags=st.dictionaries(st.text(max_size=5), _JSON_FLOATS, max_size=3),
        ),
    ),
    (
        Pet,
        st.builds(
            Pet,
            name=st.text(),
            kind=st.sampled_from(["cat", "dog"]),
            age=st.none() | st.integers(),
        ),
    ),
]


@pytest.mark.parametrize(("value_type", "values"), KINDS, ids=lambda k: str(k)[:30])
def test_every_kind_of_type_round_trips(value_type, values) -> None:
    """What is written comes back equal and of the type, from a fresh handle too."""
    url = f"memory://typed-{uuid.uuid4().hex}"
    try:
        db = sos.Dict(url, value_type=value_type)
        lst = sos.List(url + "-list", value_type=value_type)

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(value=values)
        def check(value) -> None:
            db["k"] = value
            assert db["k"] == value
            assert type(db["k"]) is type(value)
            again = sos.Dict(url, value_type=value_type, create=False)
            assert again["k"] == value
            lst.append(value)
            assert lst[-1] == value

        check()
        db.close()
        lst.close()
    finally:
        forget(url)
        forget(url + "-list")


def test_bad_write_raises_one_form_and_writes_nothing(store_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    users["ada"] = User("Ada", 1815, ["en"])
    before = sorted(p.name for p in store_path.rglob("*"))
    with pytest.raises(sos.ValidationError) as caught:
        users["bob"] = {"name": "Bob", "born": "x"}  # type: ignore[assignment]
    assert str(caught.value) == "bob: /born: expected integer, found string"
    assert caught.value.key == "bob"
    assert caught.value.findings == (("/born", "expected integer, found string"),)
    assert isinstance(caught.value, sos.Error) and isinstance(caught.value, ValueError)
    assert "bob" not in users
    assert sorted(p.name for p in store_path.rglob("*")) == before
    # strict: "1815" is not 1815, 3.0 is not 3, and every failing field is named
    with pytest.raises(sos.ValidationError) as caught:
        users["cy"] = User("Cy", "1815", [1])  # type: ignore[arg-type, list-item]
    assert str(caught.value) == (
        "cy: /born: expected integer, found string; cy: /langs/0: expected string, found integer"
    )
    with pytest.raises(sos.ValidationError, match="/born: expected integer, found number"):
        users.update(dan={"name": "Dan", "born": 3.0})
    assert sorted(users) == ["ada"]


def test_bad_write_to_a_typed_list(store_path: Path) -> None:
    tasks = sos.List(store_path, value_type=list[int])
    tasks.append([1, 2])
    with pytest.raises(sos.ValidationError, match=r"^values\[1\]: /0: expected integer"):
        tasks.extend([[3], ["x"]])
    with pytest.raises(sos.ValidationError, match=r"^\[0\]: /: expected array, found string"):
        tasks[0] = "x"  # type: ignore[call-overload]
    assert tasks == [[1, 2]]


def test_hand_edit_is_a_read_error_naming_key_file_and_field(store_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    users["ada"] = User("Ada", 1815, ["en"])
    path = _edit(users, "ada", lambda v: v.update(born="1815", langs=[True]))
    with pytest.raises(sos.ValidationError) as caught:
        users["ada"]
    assert str(caught.value) == (
        f"{path}: ada: /born: expected integer, found string; "
        "ada: /langs/0: expected string, found boolean"
    )
    assert caught.value.path == str(path)
    with pytest.raises(sos.ValidationError):
        list(users.values())
    assert sorted(users) == ["ada"]  # keys alone are still listed
    # an untyped handle reads the raw JSON, as it always did
    assert sos.Dict(store_path)["ada"]["born"] == "1815"


def test_untyped_store_imports_no_validator(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, sos
        db = sos.Dict({str(tmp_path / "plain")!r})
        db["a"] = {{"b": 1}}
        assert db["a"] == {{"b": 1}}
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "jsonschema")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- schema.json -----------------------------------------------------------------------


def test_schema_json_is_written_canonical_and_raises_the_format(store_path: Path) -> None:
    sos.Dict(store_path, value_type=Pet)
    data = (store_path / "schema.json").read_bytes()
    schema = json.loads(data)
    assert schema["properties"]["key"] == {"type": "string"}
    assert schema["required"] == ["key", "value"]
    assert "title" not in json.dumps(schema)  # pydantic's titles dropped
    assert data == fmt_schema.encode(schema)  # sorted keys: the canonical bytes
    assert json.loads((store_path / "sos.json").read_text())["format"] == 3
    # not data: no key, no check finding, and check reads it as a schema
    assert list(sos.Dict(store_path)) == []
    assert sos.check(store_path) == []


def test_canonical_form_ignores_titles_and_key_order() -> None:
    a = {"title": "A", "type": "object", "properties": {"title": {"type": "string"}}}
    b = {"properties": {"title": {"description": "x", "type": "string"}}, "type": "object"}
    assert fmt_schema.encode(a) == fmt_schema.encode(b)
    assert "title" in json.loads(fmt_schema.encode(a))["properties"]  # a field named title stays


def test_other_type_is_a_schema_mismatch_at_open(store_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    users["ada"] = User("Ada", 1815)
    schema = (store_path / "schema.json").read_bytes()
    with pytest.raises(sos.SchemaMismatch, match="update_schema=True"):
        sos.Dict(store_path, value_type=Pet)
    assert (store_path / "schema.json").read_bytes() == schema
    # an existing untyped store with documents: adopting a type is a change too
    plain = store_path.parent / "plain"
    sos.Dict(plain)["a"] = 1
    with pytest.raises(sos.SchemaMismatch, match="no schema"):
        sos.Dict(plain, value_type=int)
    assert sos.Dict(plain, value_type=int, update_schema=True)["a"] == 1


def test_update_schema_checks_every_document_all_or_nothing(store_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    for n in range(3):
        users[f"u{n}"] = User(f"U{n}", 1900 + n)
    users["old"] = User("Old", 1800)
    schema = (store_path / "schema.json").read_bytes()

    @dataclasses.dataclass
    class Modern:
        name: str
        born: Literal[1900, 1901, 1902]

    with pytest.raises(sos.ValidationError) as caught:
        sos.Dict(store_path, value_type=Modern, update_schema=True)
    assert "1 document(s) do not match" in str(caught.value)
    assert "old: /born: not one of the allowed values" in str(caught.value)
    assert (store_path / "schema.json").read_bytes() == schema
    del users["old"]
    modern = sos.Dict(store_path, value_type=Modern, update_schema=True)
    assert modern["u1"] == Modern("U1", 1901)
    assert (store_path / "schema.json").read_bytes() != schema
    with pytest.raises(sos.ValidationError, match="u9: /born: not one of the allowed values"):
        sos.Dict(store_path)["u9"] = {"name": "U9", "born": 1999}


def test_schema_binds_untyped_handles_and_the_command_line(store_path: Path) -> None:
    sos.Dict(store_path, value_type=User)["ada"] = User("Ada", 1815)
    plain = sos.Dict(store_path)
    with pytest.raises(sos.ValidationError, match=r"^bob: /name: required field missing$"):
        plain["bob"] = {"born": 1}
    plain["bob"] = {"name": "Bob", "born": 1}
    opened = sos.open(store_path)
    with pytest.raises(sos.ValidationError):
        opened["cy"] = []
    plain.close()
    opened.close()
    err = run_sos("set", store_path, "cy", '{"name": "Cy", "born": "x"}', expect=1).stderr
    assert err == "sos set: cy: /born: expected integer, found string\n"
    dump = store_path.parent / "in.json"
    dump.write_text(json.dumps({"dan": {"name": 5, "born": 1}}))
    err = run_sos("load", store_path, dump, expect=1).stderr
    assert "dan: /name: expected string, found integer" in err
    assert sorted(sos.Dict(store_path)) == ["ada", "bob"]
    assert run_sos("schema", store_path).stdout == (store_path / "schema.json").read_text()


# -- one wording for both validators ---------------------------------------------------


BAD_VALUES = [
    {"name": "Ada", "born": "1815"},
    {"born": 1815},
    {"name": "Ada", "born": 1815, "langs": ["en", 7, None]},
    {"name": ["Ada"], "born": True, "langs": "en"},
    {"name": "Ada", "born": None},
    [1, 2],
    "Ada",
]


def test_both_validators_agree(store_path: Path) -> None:
    """The same bad files, read by a typed handle (pydantic) and by sos check
    (jsonschema), give the same findings in the same words."""
    users = sos.Dict(store_path, value_type=User)
    keys = []
    for n, bad in enumerate(BAD_VALUES):
        key = f"k{n}"
        users[key] = User("x", 1)
        Path(users.path_of(key)).write_text(json.dumps({"key": key, "value": bad}))  # by hand
        keys.append(key)
    by_pydantic = {}
    for key in keys:
        with pytest.raises(sos.ValidationError) as caught:
            users[key]
        by_pydantic[key] = caught.value.findings
    by_check = {}
    for problem in sos.check(store_path):
        assert problem.code == "schema"
        by_check[problem.key] = problem.message.split(": ", 1)[1]
    assert set(by_check) == set(keys)
    for key in keys:
        assert by_check[key] == fmt_schema.describe(key, by_pydantic[key])
    assert by_pydantic["k1"] == (("/name", "required field missing"),)
    assert by_pydantic["k5"] == (("/", "expected object, found array"),)
    # jsonschema on the raw values, outside check, agrees as well
    findings = core_schema.compiled((store_path / "schema.json").read_bytes())
    for key, bad in zip(keys, BAD_VALUES, strict=True):
        assert tuple(findings(bad)) == by_pydantic[key]


# -- the command line ------------------------------------------------------------------


def test_check_reports_every_failing_document(store_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    for n in range(5):
        users[f"u{n}"] = User(f"U{n}", n)
    for n in (1, 3):
        _edit(users, f"u{n}", lambda v: v.update(born=str(v["born"])))
    out = run_sos("check", store_path, expect=1)
    lines = out.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["schema", "schema"]
    assert sorted(line.rsplit("[", 1)[1] for line in lines) == [
        f"sos edit {store_path} u1]",
        f"sos edit {store_path} u3]",
    ]
    assert "u1: /born: expected integer, found string" in out.stdout
    assert "2 problem(s)" in out.stderr
    # repair never guesses a value: the findings stay
    assert len(run_sos("check", "--repair", store_path, expect=1).stdout.splitlines()) == 2


def test_edit_re_prompts_on_a_schema_error(store_path: Path, tmp_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    users["ada"] = User("Ada", 1815)
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "p = sys.argv[1]; d = json.load(open(p))\n"
        "d['value']['born'] = 'x' if d['value']['born'] == 1815 else 1816\n"
        "json.dump(d, open(p, 'w'))\n"
    )
    env = {**os.environ, "EDITOR": f"{sys.executable} {editor}"}
    out = run_sos("edit", store_path, "ada", input="n\n", env=env, expect=1)
    assert "ada: /born: expected integer, found string" in out.stderr
    assert "Edit again? [Y/n]" in out.stderr
    assert users["ada"].born == 1815  # nothing written
    out = run_sos("edit", store_path, "ada", input="y\n", env=env)  # the second edit is good
    assert out.stderr.count("Edit again?") == 1
    assert users["ada"].born == 1816


def test_vscode_settings_created_and_merged(store_path: Path, tmp_path: Path) -> None:
    sos.Dict(store_path, value_type=User)
    workspace = store_path.parent
    settings = workspace / ".vscode" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"editor.tabSize": 2, "json.schemas": [{"url": "x.json"}]}))
    run_sos("schema", "--vscode", store_path.name, cwd=workspace)
    run_sos("schema", "--vscode", store_path.name, cwd=workspace)  # again: no duplicate
    got = json.loads(settings.read_text())
    assert got["editor.tabSize"] == 2
    assert got["json.schemas"] == [
        {"url": "x.json"},
        {"fileMatch": [f"/{store_path.name}/??/*.json"], "url": f"./{store_path.name}/schema.json"},
    ]
    # the glob matches the documents and nothing else of the store
    import fnmatch

    files = [p.relative_to(workspace).as_posix() for p in store_path.rglob("*") if p.is_file()]
    sos.Dict(store_path)["ada"] = {"name": "Ada", "born": 1}
    files = [p.relative_to(workspace).as_posix() for p in store_path.rglob("*") if p.is_file()]
    matched = [f for f in files if fnmatch.fnmatch("/" + f, got["json.schemas"][1]["fileMatch"][0])]
    assert matched == [Path(sos.Dict(store_path).path_of("ada")).relative_to(workspace).as_posix()]
    run_sos("schema", "--vscode", store_path.parent / "elsewhere", cwd=workspace, expect=1)


# -- typing ----------------------------------------------------------------------------


def test_mypy_strict_knows_the_value_type(tmp_path: Path) -> None:
    example = tmp_path / "typed_example.py"
    example.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            import sos

            @dataclass
            class User:
                name: str
                born: int

            users = sos.Dict("data/users", value_type=User)
            born: int = users["ada"].born
            tasks = sos.List("data/tasks", value_type=User)
            first: str = tasks[0].name
            maybe = sos.Dict[int | None]("data/n", value_type=int | None)
            n: int | None = maybe["a"]
            plain = sos.Dict("data/plain")
            anything: str = plain["x"]
            wrong: str = users["ada"].born
            """
        )
    )
    out = subprocess.run(
        # the project's settings (stub-less dependencies) and its incremental cache
        [sys.executable, "-m", "mypy", "--strict", "--config-file", "pyproject.toml", str(example)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, out.stdout + out.stderr  # only the deliberate mistake
    assert "typed_example.py:18:" in errors[0] and 'has type "int"' in errors[0]


# -- migrate ---------------------------------------------------------------------------


@dataclasses.dataclass
class Born:
    name: str
    year: int


def _rename(value: dict) -> dict:  # type: ignore[type-arg]
    return {"name": value["name"], "year": value["born"]}


def _data(store: Path) -> dict[str, bytes | None]:
    """The store's files, less the reserved .sos/ (locks, finished records)."""
    return {k: v for k, v in snapshot(store).items() if not k.startswith(".sos")}


def test_migrate_converts_every_value_and_adopts_the_schema(store_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    users.update({f"u{n}": User(f"U{n}", 1900 + n) for n in range(4)})
    users.migrate(_rename, Born)
    assert users["u2"] == Born("U2", 1902)
    again = sos.Dict(store_path, value_type=Born)  # the stored schema is Born's now
    assert dict(again.items()) == {f"u{n}": Born(f"U{n}", 1900 + n) for n in range(4)}
    with pytest.raises(sos.SchemaMismatch):
        sos.Dict(store_path, value_type=User)
    tasks = sos.List(store_path.parent / "tasks", value_type=int)
    tasks.extend([1, 2, 3])
    tasks.migrate(lambda v: [v] * v, list[int])
    assert sos.List(store_path.parent / "tasks", value_type=list[int]) == [[1], [2, 2], [3, 3, 3]]
    for handle in (users, again, tasks):
        handle.close()


def test_migrate_to_a_value_the_type_rejects_changes_nothing(store_path: Path) -> None:
    users = sos.Dict(store_path, value_type=User)
    users.update({f"u{n}": User(f"U{n}", 1900 + n) for n in range(4)})
    before = _data(store_path)
    with pytest.raises(sos.ValidationError, match="/year: expected integer, found string"):
        users.migrate(lambda v: {"name": v["name"], "year": str(v["born"])}, Born)
    assert _data(store_path) == before
    assert users["u1"] == User("U1", 1901)


MIGRATE_AND_DIE = """
import os, signal, sys, dataclasses
sys.path.insert(0, {tests!r})
import sos, sos.txn
from test_typed import Born, User, _rename
where = sys.argv[1]
seen = []
def fn(value):
    seen.append(value)
    if where == "before-commit" and len(seen) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return _rename(value)
if where == "after-commit":  # the record is durable; die before any file is replaced
    sos.txn.Journal.apply = lambda self: os.kill(os.getpid(), signal.SIGKILL)
sos.Dict({store!r}, value_type=User).migrate(fn, Born)
"""


@pytest.mark.parametrize("where", ["before-commit", "after-commit"])
def test_crash_mid_migration_is_all_or_nothing(store_path: Path, where: str) -> None:
    users = sos.Dict(store_path, value_type=User)
    users.update({f"u{n}": User(f"U{n}", 1900 + n) for n in range(6)})
    users.close()
    before = _data(store_path)
    code = MIGRATE_AND_DIE.format(tests=str(Path(__file__).parent), store=str(store_path))
    proc = subprocess.run([sys.executable, "-c", code, where], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr  # killed, as a power cut would
    if where == "before-commit":
        assert _data(store_path) == before
        with sos.Dict(store_path, value_type=User) as old:
            assert old["u4"] == User("U4", 1904)
    else:
        with sos.Dict(store_path, value_type=Born) as new:  # opening finishes the record
            assert dict(new.items()) == {f"u{n}": Born(f"U{n}", 1900 + n) for n in range(6)}


MODELS = """
import dataclasses

@dataclasses.dataclass
class User:
    name: str
    born: int

@dataclasses.dataclass
class Born:
    name: str
    year: int

def upgrade(value):
    return {"name": value["name"], "year": value["born"]}
"""


def test_migrate_and_update_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "models_for_sos.py").write_text(MODELS)
    store = tmp_path / "users"
    sos.Dict(store, value_type=User)["ada"] = User("Ada", 1815)
    run_sos("migrate", store, "models_for_sos:upgrade", "models_for_sos:Born", cwd=tmp_path)
    with sos.Dict(store) as plain:
        assert plain["ada"] == {"name": "Ada", "year": 1815}
    err = run_sos("schema", "--update", "models_for_sos:User", store, cwd=tmp_path, expect=1)
    assert "1 document(s) do not match" in err.stderr
    assert "ada: /born: required field missing" in err.stderr
    assert "year" in json.dumps(json.loads((store / "schema.json").read_text()))
    run_sos("schema", "--update", "nosuchmodule:X", store, cwd=tmp_path, expect=2)


def test_an_older_sos_refuses_a_store_with_a_schema(store_path: Path) -> None:
    """An sos that knows formats 1 and 2 only (this one, told so) must not write past the schema."""
    sos.Dict(store_path, value_type=User)
    code = (
        "import sys, sos\n"
        "sys.modules['sos.format.documents'].FORMAT_VERSION = 2\n"
        f"sos.Dict({str(store_path)!r})['bob'] = {{'name': 5}}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "store format 3 is newer than this sos reads (2); upgrade sos" in proc.stderr
    assert list(sos.Dict(store_path)) == []


def test_adopt_and_append_meet_the_schema(tmp_path: Path) -> None:
    store = tmp_path / "users"
    sos.Dict(store, value_type=User)
    loose = tmp_path / "bob.json"
    loose.write_text(json.dumps({"key": "bob", "value": {"name": "Bob", "born": "1900"}}))
    err = run_sos("adopt", store, loose, expect=1).stderr
    assert "bob: /born: expected integer, found string" in err
    assert list(sos.Dict(store)) == [] and loose.exists()
    tasks = tmp_path / "tasks"
    sos.List(tasks, value_type=Literal["todo", "done"])
    run_sos("append", tasks, '"todo"')
    err = run_sos("append", tasks, '"later"', expect=1).stderr
    assert "not one of the allowed values" in err
    assert sos.List(tasks) == ["todo"]


def test_a_change_at_a_json_pointer_meets_the_schema(tmp_path: Path) -> None:
    """sos set --at writes the whole document by compare-and-swap, outside the
    store's write path: schema.json binds it all the same."""
    store = tmp_path / "users"
    sos.Dict(store, value_type=User)["ada"] = User("Ada", 1815, ["en"])
    before = sorted(p.read_bytes() for p in store.rglob("*.json"))
    err = run_sos("set", store, "ada", "--at", "/born", '"1815"', expect=1).stderr
    assert "ada: /born: expected integer, found string" in err and "nothing written" in err
    assert sorted(p.read_bytes() for p in store.rglob("*.json")) == before
    run_sos("set", store, "ada", "--at", "/born", "1816")
    assert sos.Dict(store, value_type=User)["ada"].born == 1816


def test_a_damaged_schema_is_a_finding_and_no_handle_opens(store_path: Path) -> None:
    sos.Dict(store_path, value_type=User)
    (store_path / "schema.json").write_text('{"type": "object",')  # a bad hand edit
    [problem] = sos.check(store_path)
    assert problem.code == "schema" and problem.path == str(store_path / "schema.json")
    assert "invalid JSON" in problem.message
    with pytest.raises(sos.CorruptError, match=r"schema\.json"):
        sos.Dict(store_path)  # an unreadable schema binds nothing: refuse, never bypass


def test_open_takes_a_value_type_and_writeback(store_path: Path) -> None:
    sos.Dict(store_path, value_type=User)["ada"] = User("Ada", 1815)
    with sos.open(store_path, value_type=User) as users:
        assert users["ada"] == User("Ada", 1815)
    # writeback: tests/test_typed_writeback.py
    with sos.open(store_path, value_type=User, writeback=True) as users:
        users["ada"].born = 1816
    with sos.open(store_path, value_type=User) as users:
        assert users["ada"] == User("Ada", 1816)

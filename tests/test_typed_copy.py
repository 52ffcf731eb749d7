"""``sos copy`` and schema.json (issue 23): a copy is a writer like any other.

Every document is checked against the destination's schema.json and the one
the source brings; the first that fails stops the copy, naming its key and
file. In-process (``sos.cli.main``), local directories and ``memory://``.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import sos
from test_copy_diff import everything, files

import sos as sos_api
from sos import format as _format
from sos.storage.memory import forget


@dataclasses.dataclass
class User:
    name: str
    born: int
    langs: list[str] = dataclasses.field(default_factory=list)


COUNT = 1200  # more than one chunk of a local copy (512 documents)


@pytest.fixture
def typed(tmp_path: Path) -> Path:
    path = tmp_path / "typed"
    with sos_api.Dict(path, value_type=User) as db, db.batch():
        for n in range(COUNT):
            db[f"u{n}"] = User(f"user {n}", 1800 + n % 200)
    return path


@pytest.fixture
def memory() -> Iterator[str]:
    url = f"memory://typed-copy-{uuid.uuid4().hex}"
    yield url
    forget(url)


def _break(store: Path, key: str, value: object) -> Path:
    """Set ``key``'s value on disk as a hand edit would, past every check."""
    with sos_api.Dict(store) as db:
        path = Path(db.path_of(key))
    doc = json.loads(path.read_text())
    doc["value"] = value
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def test_a_document_that_fails_the_sources_schema_stops_the_copy(typed: Path, tmp_path: Path):
    bad = _break(typed, "u700", {"name": "Bob", "born": "1815"})
    target = tmp_path / "copy"
    failed = sos("copy", typed, target, expect=1)
    assert failed.stderr == (
        f"sos copy: {bad}: key 'u700' does not meet {typed / 'schema.json'}: "
        "u700: /born: expected integer, found string; the copy stopped here "
        "(fix the source, then run the copy again)\n"
    )
    assert not (target / "sos.json").exists()  # not a store: nobody opens half of it
    assert not (target / bad.relative_to(typed)).exists()  # its chunk wrote nothing
    with pytest.raises(sos_api.Error, match="not a sos store"):
        sos_api.open(target)

    _break(typed, "u700", {"name": "Bob", "born": 1815})
    done = sos("copy", typed, target)  # resumes
    assert f"copied {COUNT:,} keys" in done.stderr
    assert f"every document meets {typed / 'schema.json'}" in done.stderr
    assert files(target) == files(typed)
    with sos_api.Dict(target, value_type=User) as db:
        assert db["u700"] == User("Bob", 1815)


def test_a_damaged_document_stops_a_copy_that_checks(typed: Path, memory: str):
    bad = _break(typed, "u3", None)
    bad.write_text('{"key": "u3", "value": {"name": "x", "born": 1')
    failed = sos("copy", typed, memory, expect=1)
    assert failed.stderr.startswith(f"sos copy: {bad}: invalid JSON at line 1")
    assert failed.stderr.endswith(
        "; the copy stopped here (fix the source, then run the copy again)\n"
    )
    with pytest.raises(sos_api.Error, match="not a sos store"):
        sos_api.open(memory)


def test_force_over_a_typed_store_holds_to_its_schema_and_leaves_it_whole(
    typed: Path, tmp_path: Path
):
    source = tmp_path / "plain"
    with sos_api.Dict(source) as db:  # untyped: no schema.json of its own
        db.update({"ada": {"name": "Ada", "born": 1815}, "bob": {"name": "Bob", "born": "x"}})
    before = everything(typed)
    failed = sos("copy", "--force", source, typed, expect=1)
    with sos_api.Dict(source) as db:
        bob = db.path_of("bob")
    assert failed.stderr == (
        f"sos copy: {bob}: key 'bob' does not meet {typed / 'schema.json'}: "
        "bob: /born: expected integer, found string; nothing was copied "
        "(fix the source, then run the copy again)\n"
    )
    assert everything(typed) == before  # still the store it was, every byte

    with sos_api.Dict(source) as db:
        db["bob"] = {"name": "Bob", "born": 1906}
    done = sos("copy", "--force", source, typed)
    assert f"every document meets {typed / 'schema.json'}" in done.stderr
    # The destination's schema stays and binds its writers, old and new.
    assert (typed / "schema.json").read_bytes() == before["schema.json"]
    kind, version = _format.describe_metadata((typed / "sos.json").read_bytes(), "sos.json")
    assert (kind, version) == ("dict", _format.SCHEMA_FORMAT)
    with sos_api.Dict(typed, value_type=User) as db:
        assert dict(db.items()) == {"ada": User("Ada", 1815), "bob": User("Bob", 1906)}
    with sos_api.Dict(typed) as db, pytest.raises(sos_api.ValidationError):
        db["eve"] = {"name": "Eve", "born": "x"}


def test_both_schemas_bind_when_both_stores_have_one(typed: Path, tmp_path: Path):
    """The source's schema allows what the destination's refuses: refused."""
    source = tmp_path / "loose"
    with sos_api.Dict(source, value_type=dict[str, object]) as db:
        db["ada"] = {"name": "Ada", "born": "1815"}
    failed = sos("copy", "--force", source, typed, expect=1)
    assert f"does not meet {typed / 'schema.json'}: ada: /born: expected integer" in failed.stderr


def test_an_untyped_copy_checks_nothing_and_copies_bytes_as_they_are(tmp_path: Path):
    source, target = tmp_path / "plain", tmp_path / "copy"
    with sos_api.Dict(source) as db:
        db["a"] = 1
        path = Path(db.path_of("a"))
    path.write_text('{"key": "a", "value": NaN}')  # damaged: copied, as before, for sos check
    done = sos("copy", source, target)
    assert "every document meets" not in done.stderr
    assert files(target) == files(source)

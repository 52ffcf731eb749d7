"""``writeback=True`` with a ``value_type`` (issue 23): values read are the
type's objects, changed in place, and checked when they are written back.

A changed value the type rejects makes ``sync()``/``close()`` (or the end of
a batch or transaction) raise :class:`sos.ValidationError` naming the key,
and nothing of that write-back is written; unchanged values are not written
at all, as in untyped writeback (tests/test_writeback.py).
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
from recording import Recording

import sos
from sos.storage import atomic as _atomic


@dataclasses.dataclass
class User:
    name: str
    born: int
    langs: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture
def renames(monkeypatch: pytest.MonkeyPatch) -> Recording:
    ops = Recording()
    monkeypatch.setattr(_atomic, "ops", ops)
    return ops


def _disk(path: Path) -> dict[str, object]:
    """What the files hold, read by a plain (untyped) handle."""
    with sos.Dict(path) as plain:
        return dict(plain.items())


def test_dict_changes_in_place_are_written_back_as_the_type(store_path: Path) -> None:
    with sos.Dict(store_path, value_type=User) as db:
        db.update({"ada": User("Ada", 1815), "bob": User("Bob", 1900)})
    db = sos.Dict(store_path, value_type=User, writeback=True)
    ada = db["ada"]
    assert isinstance(ada, User) and db["ada"] is ada  # kept: the same object
    ada.born += 1
    ada.langs.append("en")
    assert _disk(store_path)["ada"] == {"name": "Ada", "born": 1815, "langs": []}
    db.sync()
    assert _disk(store_path)["ada"] == {"name": "Ada", "born": 1816, "langs": ["en"]}
    db.close()


def test_a_bad_value_refuses_the_whole_write_back_naming_its_key(store_path: Path) -> None:
    with sos.Dict(store_path, value_type=User) as db:
        db.update({"ada": User("Ada", 1815), "bob": User("Bob", 1900)})
    before = _disk(store_path)
    db = sos.Dict(store_path, value_type=User, writeback=True)
    db["ada"].born = 1816  # a good change ...
    db["bob"].born = "1900"  # type: ignore[assignment]  # ... and a bad one
    with pytest.raises(sos.ValidationError) as caught:
        db.sync()
    assert str(caught.value) == "bob: /born: expected integer, found string"
    assert caught.value.key == "bob"
    assert _disk(store_path) == before  # nothing of it was written
    # A batch's end writes kept values back too: refused as a whole.
    with pytest.raises(sos.ValidationError, match="bob: /born"), db.batch():
        db["cy"] = User("Cy", 1950)
    assert _disk(store_path) == before
    db["bob"].born = 1901
    db.close()
    assert _disk(store_path) == {
        "ada": {"name": "Ada", "born": 1816, "langs": []},
        "bob": {"name": "Bob", "born": 1901, "langs": []},
    }


def test_a_bad_value_refuses_the_transaction(store_path: Path) -> None:
    with sos.Dict(store_path, value_type=User) as db:
        db["ada"] = User("Ada", 1815)
    before = _disk(store_path)
    with sos.Dict(store_path, value_type=User, writeback=True) as db:
        with (
            pytest.raises(sos.ValidationError, match="ada: /name: expected string"),
            db.transaction(),
        ):
            db["new"] = User("New", 2000)
            db["ada"].name = None  # type: ignore[assignment]
        assert _disk(store_path) == before
        db["ada"].name = "Ada L."
    assert _disk(store_path)["ada"] == {"name": "Ada L.", "born": 1815, "langs": []}


def test_unchanged_values_are_not_written(store_path: Path, renames: Recording) -> None:
    with sos.Dict(store_path, value_type=User) as db:
        db.update({f"u{n}": User(f"u{n}", n) for n in range(5)})
    renames.clear()
    with sos.Dict(store_path, value_type=User, writeback=True) as db:
        users = [db[f"u{n}"] for n in range(5)]
        users[2].langs.append("fr")
        users[3].born = 99
        users[3].born = 3  # changed back: no write
    assert [Path(p).parent.name for p in renames.paths("rename")] == [
        Path(db.path_of("u2")).parent.name
    ]


def test_list_items_are_written_back_and_checked(store_path: Path) -> None:
    with sos.List(store_path, value_type=User) as lst:
        lst.extend([User("Ada", 1815), User("Bob", 1900)])
    lst = sos.List(store_path, value_type=User, writeback=True)
    lst[1].langs.append("de")
    lst[0].born = 1815.5  # type: ignore[assignment]
    with pytest.raises(sos.ValidationError, match=r"/born: expected integer, found number"):
        lst.sync()
    with sos.List(store_path) as plain:
        assert [u["langs"] for u in plain] == [[], []]
    lst[0].born = 1815
    lst.close()
    with sos.List(store_path, value_type=User) as again:
        assert list(again) == [User("Ada", 1815), User("Bob", 1900, ["de"])]


def test_a_typed_writeback_handle_pickles_as_itself(store_path: Path) -> None:
    with sos.Dict(store_path, value_type=User, writeback=True) as db:
        db["ada"] = User("Ada", 1815)
        again = pickle.loads(pickle.dumps(db))
        try:
            assert again._writeback and again._typed is not None
            assert again["ada"] == User("Ada", 1815)
        finally:
            again.close()


def test_what_is_kept_is_what_a_read_gives(store_path: Path) -> None:
    """The object set is kept (changed in place, it is written back); a dict
    set for a dataclass type is kept as the dataclass a read gives."""
    with sos.Dict(store_path, value_type=User, writeback=True) as db:
        ada = User("Ada", 1815)
        db["ada"] = ada
        assert db["ada"] is ada
        ada.born = 1816
        db["bob"] = {"name": "Bob", "born": 1900}  # type: ignore[assignment]
        assert db["bob"] == User("Bob", 1900)
        db["bob"].langs.append("en")
    assert _disk(store_path) == {
        "ada": {"name": "Ada", "born": 1816, "langs": []},
        "bob": {"name": "Bob", "born": 1900, "langs": ["en"]},
    }
    with sos.List(store_path.with_name("list"), value_type=User, writeback=True) as lst:
        lst.append({"name": "Cy", "born": 1950})  # type: ignore[arg-type]
        assert lst[0] == User("Cy", 1950)
    with sos.Dict(store_path.with_name("ints"), value_type=list[int], writeback=True) as ints:
        numbers = [1, 2]
        ints["n"] = numbers
        numbers.append(3)  # not a class: the list itself is kept
    with sos.Dict(store_path.with_name("ints")) as plain:
        assert plain["n"] == [1, 2, 3]

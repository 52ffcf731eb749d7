"""sos.Dict behaves as a dict of str keys to JSON values, and every call reaches disk."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conformance import check_bad_key_types, check_mapping
from conftest import digest_path, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import AWKWARD_KEYS, json_values

import sos


def data_files(store: Path) -> list[str]:
    return sorted(
        name
        for root, _, files in os.walk(store)
        for name in files
        if name.endswith(".json") and name != "sos.json"
    )


# -- the conformance checkers, proven on dict first -----------------------------


def test_checkers_pass_on_a_plain_dict():
    check_mapping({})
    check_bad_key_types({})


def test_mapping_conformance(store_path: Path):
    with sos.Dict(store_path) as db:
        check_mapping(db)
        check_bad_key_types(db)
    assert data_files(store_path) == []  # deleted keys leave no file


def test_mapping_conformance_on_memory_storage(memory_url: str):
    """The same checker on the in-memory storage: Dict needs nothing but the interface."""
    with sos.Dict(memory_url) as db:
        check_mapping(db)
        check_bad_key_types(db)
        db.update({"a": 1, "b": [2]})
    with sos.open(memory_url) as db:  # a second handle sees what the first wrote
        assert isinstance(db, sos.Dict)
        assert db == {"a": 1, "b": [2]}


def test_conformance_survives_reopen(store_path: Path):
    with sos.Dict(store_path) as db:
        db.update({"a": 1, "b": [2]})
    with sos.Dict(store_path) as db:
        assert db == {"a": 1, "b": [2]}
        db.clear()
        check_mapping(db)


# -- keys --------------------------------------------------------------------------


def test_awkward_keys_are_distinct_and_round_trip(store_path: Path):
    keys = [*AWKWARD_KEYS, "x" * 100_000]
    with sos.Dict(store_path) as db:
        for n, key in enumerate(keys):
            db[key] = n
        assert len(db) == len(keys)
    with sos.Dict(store_path) as db:
        assert sorted(db) == sorted(keys)
        for n, key in enumerate(keys):
            assert db[key] == n
            assert digest_path(store_path, key).is_file()
    # nothing escaped the store through "/" or ".."
    assert sorted(os.listdir(store_path.parent)) == ["store"]


def test_both_spellings_of_e_acute_are_two_keys(store_path: Path):
    with sos.Dict(store_path) as db:
        db["\u00e9"] = "composed"
        db["e\u0301"] = "decomposed"
        assert db["\u00e9"] == "composed"
        assert db["e\u0301"] == "decomposed"
        assert len(db) == 2


@pytest.mark.parametrize("bad", [5, 5.0, None, b"k", ("k",), True])
def test_non_str_key_write_is_type_error_and_changes_nothing(store_path: Path, bad: Any):
    with sos.Dict(store_path) as db:
        db["k"] = "old"
        before = snapshot(store_path)
        with pytest.raises(TypeError):
            db[bad] = 1
        with pytest.raises(TypeError):
            db.update({"fine": 1, bad: 2})
        with pytest.raises(TypeError):
            db.update([("fine", 1), (bad, 2)])
        with pytest.raises(TypeError):
            db.setdefault(bad, 1)
        assert snapshot(store_path) == before


def test_lone_surrogate_key(store_path: Path):
    with sos.Dict(store_path) as db:
        before = snapshot(store_path)
        with pytest.raises(ValueError):
            db["\ud800"] = 1
        assert "\ud800" not in db
        assert db.get("\ud800") is None
        with pytest.raises(KeyError):
            db["\ud800"]
        assert snapshot(store_path) == before


# -- values ------------------------------------------------------------------------


def _cycle_list() -> list[Any]:
    x: list[Any] = []
    x.append(x)
    return x


def _cycle_dict() -> dict[str, Any]:
    x: dict[str, Any] = {}
    x["me"] = {"again": x}
    return x


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


BAD_VALUES = [
    pytest.param(object(), TypeError, id="object"),
    pytest.param({1, 2}, TypeError, id="set"),
    pytest.param(b"bytes", TypeError, id="bytes"),
    pytest.param(math.nan, ValueError, id="nan"),
    pytest.param(math.inf, ValueError, id="inf"),
    pytest.param([1, [-math.inf]], ValueError, id="nested-inf"),
    pytest.param({1: "one"}, TypeError, id="int-key"),
    pytest.param({"a": [{"b": {None: 1}}]}, TypeError, id="deep-none-key"),
    pytest.param({("t",): 1}, TypeError, id="tuple-key"),
    pytest.param(_cycle_list(), ValueError, id="cycle-list"),
    pytest.param(_cycle_dict(), ValueError, id="cycle-dict"),
    pytest.param("lone \udc80", ValueError, id="surrogate-text"),
    pytest.param({"\ud800": 1}, ValueError, id="surrogate-member-name"),
    pytest.param(_deep(5000), ValueError, id="too-deep"),
    pytest.param(1 + 2j, TypeError, id="complex"),
    # more digits than Python 3.11 converts to text by default (sys.int_info)
    pytest.param([10**5000], ValueError, id="int-too-long-for-str"),
]


@pytest.mark.parametrize(("value", "error"), BAD_VALUES)
def test_bad_values_are_refused_before_touching_disk(
    store_path: Path, value: Any, error: type[Exception]
):
    with sos.Dict(store_path) as db:
        db["k"] = "old"
        before = snapshot(store_path)
        with pytest.raises(error):
            db["k"] = value
        with pytest.raises(error):
            db["new"] = value
        with pytest.raises(error):
            db.update({"a": 1, "k": value, "z": 2})
        with pytest.raises(error):
            db.setdefault("new", value)
        assert snapshot(store_path) == before
        assert db["k"] == "old"


def test_value_types_survive(store_path: Path):
    values = {
        "int": 1,
        "float": 1.0,
        "true": True,
        "zero": 0,
        "false": False,
        "big": -(10**50),
        "none": None,
        "neg-zero": -0.0,
        "tiny": 5e-324,
    }
    with sos.Dict(store_path) as db:
        db.update(values)
    with sos.Dict(store_path) as db:
        for key, value in values.items():
            got = db[key]
            assert type(got) is type(value), key
            assert got == value
        assert math.copysign(1.0, db["neg-zero"]) == -1.0


def test_tuples_come_back_as_lists(store_path: Path):
    with sos.Dict(store_path) as db:
        db["t"] = (1, (2, 3), {"in": ()})
        assert db["t"] == [1, [2, 3], {"in": []}]


def test_values_are_copies(store_path: Path):
    with sos.Dict(store_path) as db:
        db["ada"] = {"langs": ["en", "fr"]}
        before = snapshot(store_path)
        db["ada"]["langs"].append("de")
        assert db["ada"] == {"langs": ["en", "fr"]}
        assert snapshot(store_path) == before
        value = {"x": [1]}
        db["v"] = value
        value["x"].append(2)
        assert db["v"] == {"x": [1]}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_any_json_round_trips(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]):
    path = tmp_path_factory.mktemp("rt") / "s"
    with sos.Dict(path) as db:
        db.update(data)
    with sos.Dict(path) as db:
        assert db == data
    shutil.rmtree(path)


# -- order ---------------------------------------------------------------------------


def test_iteration_is_sorted_by_file_name_and_popitem_takes_the_first(store_path: Path):
    keys = [f"key{n}" for n in range(40)] + ["", "é"]
    with sos.Dict(store_path) as db:
        db.update((k, k) for k in reversed(keys))
        by_name = sorted(keys, key=lambda k: digest_path(store_path, k).name)
        assert list(db) == by_name
        assert list(db.keys()) == by_name
        assert [k for k, _ in db.items()] == by_name
        assert list(db.values()) == by_name
        assert db.popitem() == (by_name[0], by_name[0])
        assert db.popitem() == (by_name[1], by_name[1])
        assert list(db) == by_name[2:]


def test_equality(store_path: Path, tmp_path: Path):
    with sos.Dict(store_path) as a, sos.Dict(tmp_path / "b") as b:
        a.update(x=1, y=[2])
        b.update(y=[2], x=1)
        assert a == b
        assert a == {"x": 1, "y": [2]}
        assert a != {"x": 1, "y": (2,)}  # a tuple is not equal to a list in Python
        assert a != [("x", 1), ("y", [2])]
        b["x"] = 1.5
        assert a != b


def test_update_accepts_what_dict_update_accepts(store_path: Path):
    class KeysOnly:
        """Has keys() and __getitem__ but is not iterable: dict.update uses keys()."""

        def keys(self) -> list[str]:
            return ["a", "b"]

        def __getitem__(self, key: str) -> str:
            return key.upper()

    expected: dict[str, Any] = {}
    expected.update(KeysOnly())
    expected.update([("c", 3)], d=4)
    expected.update(iter([["e", 5]]))
    with sos.Dict(store_path) as db:
        db.update(KeysOnly())
        db.update([("c", 3)], d=4)
        db.update(iter([["e", 5]]))
        assert db == expected
        with pytest.raises((TypeError, ValueError)):
            db.update([("too", "many", "parts")])
        assert db == expected


def test_path_of_names_the_file(store_path: Path):
    with sos.Dict(store_path) as db:
        db["ada"] = 1
        assert Path(db.path_of("ada")) == digest_path(store_path, "ada")
        assert os.path.isfile(db.path_of("ada"))


# -- corruption stays local ------------------------------------------------------


def corrupt_store(store_path: Path) -> sos.Dict:
    db = sos.Dict(store_path)
    db.update({"good": 1, "bad": 2, "other": [3]})
    return db


def test_bad_json_names_the_file_line_and_column(store_path: Path):
    with corrupt_store(store_path) as db:
        path = digest_path(store_path, "bad")
        path.write_bytes(b'{\n  "key": "bad",\n  "value": [1,,\n}\n')
        with pytest.raises(sos.CorruptError) as info:
            db["bad"]
        error = info.value
        assert isinstance(error, ValueError) and isinstance(error, sos.Error)
        assert error.path == str(path)
        assert str(path) in str(error)
        assert (error.line, error.column) == (3, 15)
        assert db["good"] == 1 and db["other"] == [3]
        assert "bad" in db  # membership does not read the file
        assert len(db) == 3
        db["good"] = "still writable"
        assert db["good"] == "still writable"
        db["bad"] = "repaired"  # overwriting a corrupt file is allowed
        assert db["bad"] == "repaired"


def test_conflict_markers_are_named(store_path: Path):
    with corrupt_store(store_path) as db:
        path = digest_path(store_path, "bad")
        path.write_text(
            '{\n  "key": "bad",\n<<<<<<< HEAD\n  "value": 1\n=======\n  "value": 2\n'
            ">>>>>>> theirs\n}\n"
        )
        with pytest.raises(sos.CorruptError, match="conflict") as info:
            db["bad"]
        assert info.value.line == 3
        assert db["other"] == [3]


@pytest.mark.parametrize(
    "content",
    [
        b'{"key": "bad"}',
        b'{"key": "bad", "value": 1, "more": 1}',
        b"[1, 2]",
        b'{"key": "bad", "value": NaN}',
        b'{"key": 7, "value": 1}',
    ],
)
def test_wrong_shape_is_corrupt(store_path: Path, content: bytes):
    with corrupt_store(store_path) as db:
        digest_path(store_path, "bad").write_bytes(content)
        with pytest.raises(sos.CorruptError):
            db["bad"]
        assert db["good"] == 1


def test_key_that_does_not_hash_to_its_name_is_corrupt(store_path: Path):
    with corrupt_store(store_path) as db:
        # a file copied under another key's name
        shutil.copyfile(digest_path(store_path, "other"), digest_path(store_path, "bad"))
        with pytest.raises(sos.CorruptError) as info:
            db["bad"]
        assert str(digest_path(store_path, "bad")) in str(info.value)
        assert db["other"] == [3]
        with pytest.raises(sos.CorruptError):
            list(db.items())  # iteration reads the file and reports it


def test_dropping_a_store_without_close_leaks_nothing(store_path: Path):
    db = sos.Dict(store_path)
    db["a"] = 1
    del db  # the no_leaks fixture fails the test if the lock's descriptor stayed open


def test_update_names_the_key_whose_value_is_refused(store_path: Path):
    values = {f"k{i}": i for i in range(1000)}
    values["k500"] = {1: "int key"}
    with sos.Dict(store_path) as db:
        with pytest.raises(TypeError, match="key 'k500'"):
            db.update(values)
        assert len(db) == 0  # refused before anything was written

"""Watching a typed store (issue 23): a watcher of a Dict handle with a
``value_type`` reports values through the type, and a document the type
rejects as an ``"error"`` change; an untyped handle (``sos watch``) reports
the JSON values. Polling, in-process: cheap."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

import sos
from sos.watch.change import Change

POLL = 0.02


@dataclasses.dataclass
class User:
    name: str
    born: int


def _next(watcher: sos.watch.watcher.Watcher, kind: str) -> Change:
    """The next change of ``kind`` (others, such as the first look's, skipped)."""
    for _ in range(50):
        change = watcher.get(timeout=5)
        assert change is not None, f"no {kind} change in 5 s"
        if change.kind == kind:
            return change
    raise AssertionError(f"no {kind} change")


def _hand_write(path: Path, doc: dict[str, object]) -> None:
    """A person's edit, saved as editors save: a new file renamed over the old."""
    tmp = path.with_name("edit.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def test_a_typed_watcher_reports_the_types_values_and_its_refusals(store_path: Path) -> None:
    with sos.Dict(store_path, value_type=User) as db:
        db["ada"] = User("Ada", 1815)
        path = Path(db.path_of("ada"))
        with db.watch(poll=POLL) as typed, sos.Dict(store_path).watch(poll=POLL) as plain:
            with sos.Dict(store_path, value_type=User) as writer:
                writer["ada"] = User("Ada", 1816)
            change = _next(typed, "set")
            assert (change.key, change.value) == ("ada", User("Ada", 1816))
            assert _next(plain, "set").value == {"name": "Ada", "born": 1816}

            _hand_write(path, {"key": "ada", "value": {"name": "Ada", "born": "1817"}})
            error = _next(typed, "error")
            assert error.key == "ada" and error.path == path.relative_to(store_path).as_posix()
            assert isinstance(error.error, sos.ValidationError)
            assert str(error.error) == f"{path}: ada: /born: expected integer, found string"
            assert error.to_json()["error"] == str(error.error)
            # Untyped, the same edit is a plain JSON value (sos watch prints it).
            assert _next(plain, "set").value == {"name": "Ada", "born": "1817"}

            _hand_write(path, {"key": "ada", "value": {"name": "Ada", "born": 1817}})
            assert _next(typed, "set").value == User("Ada", 1817)


def test_a_document_rejected_before_watching_began_is_not_reported(store_path: Path) -> None:
    """As for damaged files, the first look reports nothing; a later good
    version is reported as set."""
    with sos.Dict(store_path, value_type=User) as db:
        db["ada"] = User("Ada", 1815)
        path = Path(db.path_of("ada"))
        _hand_write(path, {"key": "ada", "value": {"name": "Ada", "born": None}})
        with db.watch(poll=POLL) as watcher:
            assert watcher.get(timeout=0.2) is None
            _hand_write(path, {"key": "ada", "value": {"name": "Ada", "born": 1}})
            assert _next(watcher, "set").value == User("Ada", 1)


@pytest.mark.parametrize("typed", [True, False])
def test_a_list_watcher_counts_changes_either_way(store_path: Path, typed: bool) -> None:
    with sos.List(store_path, value_type=User if typed else None) as lst:
        lst.append(User("Ada", 1815) if typed else {"name": "Ada", "born": 1815})
        with lst.watch(poll=POLL) as watcher:
            with sos.List(store_path) as other:
                other.append({"name": "Bob", "born": 1900})
            change = _next(watcher, "changed")
            assert (change.length, change.added, change.value) == (2, 1, None)

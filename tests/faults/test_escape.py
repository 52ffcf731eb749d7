"""Symlinks planted inside a store must never take sos outside it.

A fan-out directory (or a document) that is a symlink to a place outside
the store: reads must not return what is there, writes, deletes, clear()
and check --repair must leave it byte for byte as it was, and sos check
must report the symlink. Each step runs in a child under the time and
memory limits of :mod:`.limits`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .figures import add
from .limits import run_read
from .operations import digest
from .test_planted import make_store

OUTSIDE_VALUE = "outside the store"

# (label, code with the store path as R); each runs on a fresh copy.
DICT_STEPS = [
    ("read", 'result = sos.open(R)["a"]'),
    ("iterate", "s = sos.open(R); result = {k: s[k] for k in s}"),
    ("set", 'sos.open(R)["a"] = 99'),
    ("set-new-key-same-dir", "s = sos.open(R); s[K] = 1"),
    ("del", 'del sos.open(R)["a"]'),
    ("pop", 'result = sos.open(R).pop("a")'),
    ("clear", "sos.open(R).clear()"),
    ("update", 's = sos.open(R); s.update({"a": 1, K: 2})'),
    ("check", "result = sos.check(R)"),
    ("check-repair", "result = sos.check(R, repair=True)"),
    ("cli-check-repair", "import sos.cli; result = sos.cli.main(['check', '--repair', R])"),
]
LIST_STEPS = [
    ("read", "result = sos.open(R)[0]"),
    ("iterate", "result = list(sos.open(R))"),
    ("set", "sos.open(R)[0] = 99"),
    ("pop", "result = sos.open(R).pop(0)"),
    ("clear", "sos.open(R).clear()"),
    ("check", "result = sos.check(R)"),
    ("check-repair", "result = sos.check(R, repair=True)"),
]


def snapshot(top: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(top))
            out[rel] = "dir" if path.is_dir() else path.read_bytes()
    return out


def _doc(key: str, value: object) -> bytes:
    return (json.dumps({"key": key, "value": value}, indent=2) + "\n").encode()


def _key_in(prefix: str, avoid: str) -> str:
    """Another key whose file belongs in the fan-out directory ``prefix``."""
    n = 0
    while True:
        key = f"k{n}"
        if key != avoid and digest(key).startswith(prefix):
            return key
        n += 1


def plant_fanout(kind: str, base: Path) -> tuple[Path, Path, str, str]:
    """A store whose fan-out directory holding key "a" (or item 0) is a symlink
    to a directory outside, holding that document and a stranger's file."""
    root = base / "store"
    make_store(kind, root)
    if kind == "dict":
        key = "a"
    else:  # the first item's id: the first run's PREFIX and FIRST
        key = next(
            line.split()[0] + "-" + line.split()[1].split("-")[0]
            for line in (root / "order.txt").read_text().splitlines()
            if not line.startswith("#")
        )
    prefix = digest(key)[:2]
    outside = base / "outside" / prefix
    outside.mkdir(parents=True)
    (outside / f"{digest(key)}.json").write_bytes(_doc(key, OUTSIDE_VALUE))
    stranger = _key_in(prefix, key)
    (outside / f"{digest(stranger)}.json").write_bytes(_doc(stranger, "not sos's"))
    shutil.rmtree(root / prefix)
    (root / prefix).symlink_to(outside, target_is_directory=True)
    return root, base / "outside", prefix, _key_in(prefix, stranger)




@pytest.mark.parametrize("kind", ["dict", "list"])
def test_symlinked_fanout_directory_is_never_followed(kind: str, tmp_path: Path) -> None:
    problems: list[str] = []
    steps = DICT_STEPS if kind == "dict" else LIST_STEPS
    for label, code in steps:
        base = tmp_path / label
        root, outside, prefix, other_key = plant_fanout(kind, base)
        before = snapshot(outside)
        outcome = run_read({"root": str(root), "code": f"K = {other_key!r}\n{code}"})
        add("escape: steps")
        result = outcome.result
        if outcome.status is None or result is None:
            problems.append(f"{label}: hung or died: {outcome.stderr[-300:]}")
        elif OUTSIDE_VALUE in json.dumps(result.get("returned")):
            problems.append(f"{label}: returned what is outside the store: {result!r:.200}")
        elif "raised" in result and not result["sos"]:
            problems.append(f"{label}: raised {result['raised']}: {result['message'][:200]}")
        if label == "check":
            findings = (result or {}).get("returned") or []
            link = str(root / prefix)
            if not any(link in f["path"] or link in f["message"] for f in findings):
                problems.append(f"check: no finding names the symlink {prefix}: {findings!r:.300}")
        if snapshot(outside) != before:
            problems.append(f"{label}: changed files outside the store")
    add("escape: failures", len(problems))
    assert not problems, "\n".join(problems)


def test_symlinked_document_is_not_read_through(tmp_path: Path) -> None:
    """A document that is a symlink to a valid document elsewhere."""
    root = tmp_path / "store"
    make_store("dict", root)
    name = digest("a")
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes(_doc("a", OUTSIDE_VALUE))
    path = root / name[:2] / f"{name}.json"
    path.unlink()
    path.symlink_to(outside)
    before = outside.read_bytes()
    read = run_read({"root": str(root), "code": 'result = sos.open(R)["a"]'})
    assert read.result is not None and read.result.get("sos"), read
    assert os.path.relpath(path, root) in read.result["message"]
    checked = run_read({"root": str(root), "code": "result = sos.check(R)"})
    findings = (checked.result or {}).get("returned") or []
    assert any(f["path"] == str(path) for f in findings), checked
    for code in ['del sos.open(R)["a"]', "sos.open(R).clear()", "sos.check(R, repair=True)"]:
        run_read({"root": str(root), "code": code})
        assert outside.read_bytes() == before, code

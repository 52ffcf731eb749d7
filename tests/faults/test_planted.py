"""Files planted in a store the way git, rsync or a hostile sender deliver them.

Every read of every case runs in a child held to a time limit and a memory
limit (:mod:`.limits`): a FIFO must not hang it, ``/dev/zero`` or an absurd
manifest must not eat its memory. A read may succeed where it does not touch
the planted file; where it does (``must``), it raises ``sos.CorruptError``
naming the file, and ``sos.check`` reports a finding naming it. Nothing may
end in a traceback, a bare ``ValueError`` or a ``NotADirectoryError``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import sos

from .figures import add
from .limits import run_read, run_reads
from .operations import DICT0, LIST0, digest

HEADER = "# sos list order: one run of item ids per line (PREFIX FIRST-LAST)\n"
BIG = "9" * 5000  # beyond int()'s default 4300 digits


def dict_doc(root: Path, key: str = "a") -> Path:
    name = digest(key)
    return root / name[:2] / f"{name}.json"


def first_item(root: Path) -> Path:
    store = sos.List(root)
    try:
        return Path(store.path_of(0))
    finally:
        store.close()


def _replace(path: Path, make: Callable[[Path], None]) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    make(path)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def text(data: str | bytes) -> Callable[[Path], None]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return lambda path: path.write_bytes(raw)


def doc_with(value_json: str, key: str = "a") -> str:
    return f'{{\n  "key": {json.dumps(key)},\n  "value": {value_json}\n}}\n'


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    target: Callable[[Path], Path]  # the file to plant over
    make: Callable[[Path], None]  # what to put there
    must: tuple[str, ...]  # the reads that must refuse it, naming it
    skip: tuple[str, ...] = ()  # reads not judged here (the reason is at the case)


DOC = ("get", "check")
ORDER = ("len", "get", "check")
META = ("open", "get", "check")


def _meta(root: Path) -> Path:
    return root / "sos.json"


def _order(root: Path) -> Path:
    return root / "order.txt"


def _fanout(root: Path) -> Path:
    return dict_doc(root).parent


CASES = [
    Case("fifo-document", "dict", dict_doc, fifo, DOC),
    Case("fifo-list-item", "list", first_item, fifo, DOC),
    Case("fifo-order", "list", _order, fifo, ORDER),
    Case("fifo-metadata", "dict", _meta, fifo, META),
    Case("dev-zero-document", "dict", dict_doc, zero, DOC),
    Case("dev-zero-order", "list", _order, zero, ORDER),
    Case("dev-zero-metadata", "list", _meta, zero, META),
    Case("file-as-fanout-dir", "dict", _fanout, text(b"not a directory\n"), DOC),
    Case("absurd-run", "list", _order, text(HEADER + "0123456789abcdef 0-999999999999\n"), ORDER),
    Case(
        "absurd-run-repeated",
        "list",
        _order,
        text(HEADER + "0123456789abcdef 0-999999999999\n" * 2000),
        ORDER,
    ),
    Case(
        "absurd-total",
        "list",
        _order,
        text(HEADER + "".join(f"{p} 0-2000000000\n" for p in ("aa", "bb", "cc"))),
        ORDER,
    ),
    # Below every bound, and no file behind it: reads name the first missing
    # item, check reports the run as one finding; nothing makes a billion ids.
    # (Not list(s): list() preallocates len() slots, 8 GB here, as it would
    # for a real billion-item list.)
    Case(
        "run-of-a-billion-missing",
        "list",
        _order,
        text(HEADER + "aa 0-999999999\n"),
        DOC,
        skip=("iterate",),
    ),
    Case("manifest-5000-digits", "list", _order, text(HEADER + f"abc 1-{BIG}\n"), ORDER),
    Case("manifest-past-int64", "list", _order, text(HEADER + "abc 99999999999999999999\n"), ORDER),
    Case("manifest-empty", "list", _order, text(b""), ORDER),
    Case("manifest-no-header", "list", _order, text("0123456789abcdef 0-3\n"), ORDER),
    Case("manifest-bom", "list", _order, text("\ufeff" + HEADER), ORDER),
    Case("document-1e999", "dict", dict_doc, text(doc_with("1e999")), DOC),
    Case("document--1e999", "dict", dict_doc, text(doc_with("[-1e999]")), DOC),
    Case("document-5000-digits", "dict", dict_doc, text(doc_with(BIG)), DOC),
    Case("document-bom", "dict", dict_doc, text("\ufeff" + doc_with("1")), DOC),
    Case("metadata-1e999", "dict", _meta, text('{"format": 1e999, "kind": "dict"}'), META),
    Case("metadata-5000-digits", "dict", _meta, text(f'{{"format": {BIG}, "kind": "dict"}}'), META),
    Case("metadata-bom", "dict", _meta, text('\ufeff{"format": 1, "kind": "dict"}'), META),
]
# Numbers at the edge that ARE valid: read back as Python reads them, no finding.
VALID = [
    ("-0", 0),
    ("-0.0", -0.0),
    ("1e-999", 0.0),
    ("123456789012345678901234567890", 123456789012345678901234567890),
    ("-1.7976931348623157e308", -1.7976931348623157e308),
]


def reads(kind: str, root: Path) -> dict[str, dict[str, object]]:
    """Each read a user might do first, as a spec for :func:`run_read`."""
    r = str(root)
    index = '"a"' if kind == "dict" else "0"
    return {
        "open": {"code": "result = repr(sos.open(R))"},
        "len": {"code": "result = len(sos.open(R))"},
        "get": {"code": f"result = sos.open(R)[{index}]"},
        "iterate": {
            "code": "s = sos.open(R); result = [s[k] for k in s] if "
            "isinstance(s, sos.Dict) else list(s)"
        },
        "check": {"code": "result = sos.check(R)"},
        "cli-get": {"cli": ["get", r, "a" if kind == "dict" else "0"]},
        "cli-keys": {"cli": ["keys", r]},
        "cli-check": {"cli": ["check", r]},
    }


def make_store(kind: str, root: Path) -> None:
    store = sos.Dict(root) if kind == "dict" else sos.List(root)
    with store:
        if kind == "dict":
            store.update(DICT0)
        else:
            store.extend(LIST0)


def judge_read(label: str, must: bool, named: str, outcome) -> list[str]:
    """What is wrong with one read's outcome."""
    where = f"{label}:"
    if outcome.result is not None and outcome.result.get("not run"):
        return [f"{where} not run, an earlier read hung"]
    if outcome.status is None:
        return [f"{where} still running after the time limit (a hang)"]
    if label.startswith("cli-"):
        said = outcome.stdout + outcome.stderr
        out = []
        if "Traceback" in outcome.stderr:
            out.append(f"{where} a traceback: {outcome.stderr[-300:]}")
        result = outcome.result or {}
        if "raised" in result:
            out.append(f"{where} raised {result['raised']}: {result['message'][:200]}")
        elif result.get("status") not in (0, 1):
            out.append(f"{where} exit {outcome.status}: {outcome.stderr[-300:]}")
        elif must and (result["status"] != 1 or named not in said):
            out.append(f"{where} exit {result['status']}, not 1 naming {named}: {said[-300:]}")
        return out
    result = outcome.result
    if result is None:
        return [f"{where} died (exit {outcome.status}): {outcome.stderr[-300:]}"]
    if "raised" in result:
        if not result["sos"]:
            return [f"{where} raised {result['raised']}: {result['message'][:200]}"]
        if named not in result["message"] and named not in str(result["path"]):
            return [f"{where} CorruptError not naming {named}: {result['message'][:200]}"]
        return []
    if label == "check":
        findings = result["returned"] or []
        if must and not any(named in f["path"] or named in f["message"] for f in findings):
            return [f"{where} no finding names {named}: {findings!r:.300}"]
        return []
    if must:
        return [f"{where} returned {result['returned']!r:.100} instead of refusing {named}"]
    return []


# Cases known to fail, each with the reason, as strict xfails; remove an
# entry when its fix is merged. (None now: the last, sos keys of a List whose
# manifest names a billion absent items, is refused at once.)
KNOWN: dict[str, str] = {}


def _xfail_known(cases: list[Case]) -> list[object]:
    return [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN[c.name]))
        if c.name in KNOWN
        else c
        for c in cases
    ]


@pytest.mark.parametrize("case", _xfail_known(CASES), ids=[c.name for c in CASES])
def test_planted_file_is_refused_quickly_in_bounded_memory(case: Case, tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_store(case.kind, root)
    target = case.target(root)
    _replace(target, case.make)
    named = str(target)  # as the store was given: absolute
    problems = []
    todo = {k: v for k, v in reads(case.kind, root).items() if k not in case.skip}
    for label, outcome in run_reads(str(root), todo).items():
        must = label in case.must or label.removeprefix("cli-") in case.must
        problems += judge_read(label, must, named, outcome)
        add("planted: reads")
    add("planted: cases")
    add("planted: failures", len(problems))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("number,value", VALID, ids=[v[0] for v in VALID])
def test_edge_numbers_that_are_valid_read_back(number: str, value: object, tmp_path: Path):
    root = tmp_path / "store"
    make_store("dict", root)
    dict_doc(root).write_text(doc_with(number))
    outcome = run_read({"root": str(root), "code": 'result = sos.open(R)["a"]'})
    assert outcome.result == {"returned": value}, outcome
    checked = run_read({"root": str(root), "code": "result = sos.check(R)"})
    assert checked.result == {"returned": []}, checked


def test_bom_is_named_as_such(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_store("dict", root)
    path = dict_doc(root)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.raises(sos.CorruptError) as caught:
        sos.Dict(root)["a"]
    assert str(path) in str(caught.value)
    assert "BOM" in str(caught.value) or "byte order mark" in str(caught.value)

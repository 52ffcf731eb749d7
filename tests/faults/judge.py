"""The verdict on one attacked run, from the files alone (and sos.check).

A call that returned left the new state. One that raised left the old or the
new state (a Dict change of many keys: each key old or new) and destroyed
nothing it did not hand back. No file is torn, no temporary file is leaked
(unless the unlink that would remove it was the one made to fail), and
``sos.check`` names whatever remains, and ``check --repair`` ends clean.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import sos

from .operations import Op, digest
from .tracer import Run

ABSENT = "<absent>"
_RUN = re.compile(r"([0-9a-z]+) (0|[1-9][0-9]*)(?:-(0|[1-9][0-9]*))?\Z")
_DATA = re.compile(r"[0-9a-f]{32}\.json\Z")
_SUPPORT = {"sos.json", ".gitignore", ".gitattributes", ".rsync-filter"}
# A failed write, fsync or rename of a temporary file must reach the caller:
# the call had not committed. (Failures while cleaning up after the commit,
# such as unlinking a removed item, may be left to sos check.)
_MUST_RAISE = re.compile(r"^\d+\s+(write|fsync|fdatasync|rename\w*)\([^)]*\.sos-tmp-")
_MUTATION = re.compile(r"^\d+\s+(rename\w*|unlink\w*|mkdir\w*)\(")


def state(root: Path, kind: str) -> Any:
    """The content as a fresh handle reads it."""
    store = sos.open(root)
    try:
        if kind == "dict":
            return {k: store[k] for k in store}
        return list(store)
    finally:
        store.close()


def scan(root: Path, kind: str) -> tuple[list[str], list[str], list[str]]:
    """(temp files, orphan items, damage), by docs/format.md, without sos."""
    temps: list[str] = []
    damage: list[str] = []
    keys: dict[str, str] = {}
    for name in sorted(os.listdir(root)):
        path = root / name
        if name.startswith(".sos-tmp-"):
            temps.append(str(path))
        elif name in _SUPPORT or (name == "order.txt" and kind == "list"):
            continue
        elif name == "lost+found" and path.is_dir():  # where check --repair moves orphans
            pass
        elif name == ".sos" and path.is_dir():  # reserved: transaction records, locks
            temps += [str(path / n) for n in sorted(os.listdir(path)) if n.startswith(".sos-tmp-")]
        elif re.fullmatch(r"[0-9a-f]{2}", name) and path.is_dir():
            for sub in sorted(os.listdir(path)):
                if sub.startswith(".sos-tmp-"):
                    temps.append(str(path / sub))
                elif _DATA.match(sub) and sub.startswith(name):
                    key = _document_key((path / sub).read_bytes(), sub)
                    if key is None:
                        damage.append(f"torn or invalid document {path / sub}")
                    else:
                        keys[key] = str(path / sub)
                else:
                    damage.append(f"unexpected file {path / sub}")
        else:
            damage.append(f"unexpected file {path}")
    orphans: list[str] = []
    if kind == "list":
        ids = _manifest_ids((root / "order.txt").read_bytes())
        if ids is None:
            damage.append("order.txt is not a valid manifest")
            ids = []
        named = set(ids)
        damage += [f"the manifest names {i}, whose file is missing" for i in ids if i not in keys]
        orphans = sorted(p for k, p in keys.items() if k not in named)
    return temps, orphans, damage


def _document_key(data: bytes, name: str) -> str | None:
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(doc, dict) or set(doc) != {"key", "value"}:
        return None
    key = doc["key"]
    if not isinstance(key, str) or digest(key) + ".json" != name:
        return None
    return key


def _manifest_ids(data: bytes) -> list[str] | None:
    ids: list[str] = []
    for line in data.decode("ascii", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _RUN.match(line)
        if match is None:
            return None
        first = int(match.group(2))
        last = first if match.group(3) is None else int(match.group(3))
        step = 1 if last >= first else -1
        ids += [f"{match.group(1)}-{n}" for n in range(first, last + step, step)]
    return ids


def _contains(values: list[Any], wanted: Any) -> bool:
    return any(v == wanted for v in values)


def _swallowed(run: Run) -> str | None:
    """The injected failure a returning call should have raised, if any."""
    lines = run.log.splitlines()
    for index, line in enumerate(lines):
        if "(INJECTED)" not in line:
            continue
        if _MUST_RAISE.match(line):
            return line
        if re.match(r"^\d+\s+f(data)?sync\(", line):
            before = [m.group(1) for m in map(_MUTATION.match, lines[:index]) if m]
            if before and not before[-1].startswith("unlink"):
                return line  # the fsync that makes a rename or mkdir durable
    return None


def verdict(root: Path, op: Op, run: Run) -> list[str]:
    """Everything wrong after ``run`` of ``op`` on a store that held its initial content."""
    from .operations import initial

    if run.status is None:
        return [f"hung: killed after {run.log.count(chr(10))} traced syscalls"]
    if run.outcome is None:
        return [f"the child wrote no outcome (exit {run.status}): {run.stderr[-600:]}"]
    old = initial(op)
    new, returns = op.expected(old)
    out: list[str] = []
    try:
        got = state(root, op.kind)
    except Exception as exc:
        return [f"reading the store raised {type(exc).__name__}: {exc}"]
    if run.returned:
        if got != new:
            out.append(f"returned, but the store holds {got!r:.200}, not {new!r:.200}")
        if op.cli is None and run.outcome["returned"] != returns:
            out.append(f"returned {run.outcome['returned']!r:.100}, expected {returns!r:.100}")
        swallowed = _swallowed(run)
        if swallowed is not None:
            out.append(f"returned normally although this failed: {swallowed[:200]}")
    else:
        if op.kind == "dict" and op.per_key:
            for key in set(old) | set(new) | set(got):
                value = got.get(key, ABSENT)
                if value not in (old.get(key, ABSENT), new.get(key, ABSENT)):
                    out.append(f"raised, and key {key!r} holds {value!r:.80}: neither old nor new")
        elif got not in (old, new):
            out.append(f"raised, and the store holds {got!r:.200}: neither old nor new")
        if op.hands_back and got != old:
            carried = run.outcome.get("carried", [])
            lost = returns if op.name != "dict-popitem" else returns[1]
            if not (_contains(carried, lost) or _contains(carried, returns)):
                out.append(
                    f"raised {run.outcome['raised']}: {run.outcome['message'][:120]!r} after "
                    f"destroying {returns!r:.80} on disk, and neither returned it nor carried it"
                )
    out += _leftovers(root, op, run)
    return out


def _leftovers(root: Path, op: Op, run: Run) -> list[str]:
    out: list[str] = []
    temps, orphans, damage = scan(root, op.kind)
    out += damage
    unlink_failed = any(re.match(r"^\d+\s+unlink", line) for line in run.injected)
    if temps and not unlink_failed and not op.plant:
        out.append(f"leaked temporary file(s): {temps}")
    try:
        found = sos.check(root)
    except Exception as exc:
        return [*out, f"sos.check raised {type(exc).__name__}: {exc}"]
    named = {os.path.normpath(p.path) for p in found}
    for path in temps + orphans:
        if os.path.normpath(path) not in named:
            out.append(f"sos.check does not name the leftover {path}")
    out += [
        f"sos.check: {p.code}: {p}" for p in found if p.code not in ("temp-file", "orphan-item")
    ]
    try:
        before = state(root, op.kind)
        sos.check(root, repair=True)
        after = sos.check(root)
        out += [f"after check --repair still {p.code}: {p}" for p in after]
        if state(root, op.kind) != before:
            out.append("check --repair changed the content")
    except Exception as exc:
        out.append(f"check --repair raised {type(exc).__name__}: {exc}")
    return out

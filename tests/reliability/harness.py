"""Shared machinery of the reliability suites: the crash loop, forked
children, and one invariant checker every suite uses.

Checkers *return* a list of violations instead of asserting, so each suite can
also be run against deliberately broken code and be seen to go red.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import re
import shutil
import stat
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import recording
from recording import CRASH_EXIT, CRASH_EXIT_WRITE, Recording

import sos
from sos.storage.fileops import TEMP_PREFIX

ABSENT: Any = "<absent>"  # a Dict key's "value" when the key is not there
_DATA = re.compile(r"[0-9a-f]{32}\.json\Z")
_SUPPORT = {".gitignore", ".gitattributes", ".rsync-filter"}
_RUN = re.compile(r"([0-9a-z]+) (0|[1-9][0-9]*)(?:-(0|[1-9][0-9]*))?\Z")

# Figures each suite reports, printed at the end of the session (see conftest).
FIGURES: dict[str, int] = {}


def add_figure(name: str, count: int) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + count


# -- processes -------------------------------------------------------------------


def _fork() -> int:
    """``os.fork()`` with the parent's objects out of the child's garbage
    collections (``gc.freeze``): a child that happens to run a full
    collection otherwise walks every object of the large test process,
    copying each page it touches."""
    gc.freeze()
    pid = os.fork()
    if pid != 0:
        gc.unfreeze()
    return pid


def in_fork(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a forked child (a fresh process: fresh handles, fresh
    caches, its own threads) and return its result, or raise its error text."""
    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            payload = pickle.dumps(("ok", fn()))
        except BaseException:
            payload = pickle.dumps(("error", traceback.format_exc()))
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as src:
        data = src.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"forked child died with status {status}")
    tag, value = pickle.loads(data)
    if tag == "error":
        raise RuntimeError(f"forked child failed:\n{value}")
    return value


def fork_exit_code(fn: Callable[[], Any]) -> int:
    """Run ``fn`` in a forked child that may die on purpose; its exit code."""
    pid = _fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def crash_loop(
    name: str,
    reset: Callable[[], None],
    run: Callable[[], Any],
    verify: Callable[[bool], list[str]],
    broken: Callable[[], None] | None = None,
    state: Path | None = None,
) -> tuple[int, list[str]]:
    """Kill ``run`` before each of its filesystem steps in turn, and halfway
    through each write (``os._exit`` from a :class:`recording.Recording`: no
    cleanup, no finally, as ``kill -9``), each time from the state ``reset``
    makes; then ``verify(done)`` in a fresh process. Returns (crash points
    tried, violations).

    ``state``, if given, is the directory whose contents are all ``verify``
    looks at: a crash that leaves it byte for byte as an earlier one did (a
    kill before a stat, a read, an fsync) gets that one's verdict without a
    second verifying process (half of them in the suites here; each is a
    fork of a large test process).

    The number of steps varies from run to run (a new fan-out directory
    costs two more, a thread pool orders its steps as it likes): k goes up
    until a child finishes without reaching step k. ``broken``, if given,
    breaks the build inside each writing child.
    """
    found: list[str] = []
    tried = 0
    verdicts: dict[tuple[bytes, bool], list[str]] = {}
    for k in range(10_000):
        for torn in (False, True):
            reset()

            def die_at_k(k: int = k, torn: bool = torn) -> None:
                if broken is not None:
                    broken()
                recording.install(Recording(k, torn=torn, write_exit_code=CRASH_EXIT_WRITE))
                run()

            code = fork_exit_code(die_at_k)
            if code not in (0, CRASH_EXIT, CRASH_EXIT_WRITE):
                return tried, [*found, f"{name}, step {k}: child exited {code}"]
            tried += 1
            done = code == 0
            seen = None if state is None else (tree_fingerprint(state), done)
            problems = verdicts.get(seen) if seen is not None else None
            if problems is None:
                problems = in_fork(lambda done=done: verify(done))
                if seen is not None:
                    verdicts[seen] = problems
            where = "after the call returned" if done else f"killed before step {k}"
            where += " (mid-write)" if torn else ""
            found += [f"{name}, {where}: {p}" for p in problems]
            if done:
                return tried, found
            if code != CRASH_EXIT_WRITE:
                break  # only a write step has a halfway point
    return tried, found


def tree_fingerprint(root: Path) -> bytes:
    """A digest of everything below ``root`` (names, kinds, modes, bytes); a
    missing root has one too. Temp files count by their bytes, not their
    random names: a kill before the fsync and one before the close leave the
    same store."""
    digest = hashlib.blake2b(digest_size=20)
    for directory, dirs, files in os.walk(root):  # symlinks are not followed
        dirs.sort()
        entries = []
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = f.read()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path).encode()
            else:
                content = b""
            shown = TEMP_PREFIX + "*" if name.startswith(TEMP_PREFIX) else name
            entries.append((shown, st.st_mode, hashlib.blake2b(content).digest()))
        digest.update(f"d {os.path.relpath(directory, root)}\0".encode())
        for shown, mode, content_digest in sorted(entries):
            digest.update(f"e {shown} {mode}\0".encode() + content_digest)
    return digest.digest()


# -- reading a store independently ------------------------------------------------------


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def valid_document(data: bytes, name: str) -> tuple[bool, Any]:
    """An oracle written from docs/format.md, independent of sos: is this a
    valid document for the file ``name``? Returns (valid, (key, value))."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return False, None
    if not isinstance(doc, dict) or set(doc) != {"key", "value"}:
        return False, None
    if not isinstance(doc["key"], str) or name != digest(doc["key"]) + ".json":
        return False, None
    return True, (doc["key"], doc["value"])


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def manifest_ids(data: bytes) -> list[str] | None:
    """The ids an ``order.txt`` names, per docs/format.md, or None if invalid."""
    if not data.startswith(b"#"):  # the header line is required (empty included)
        return None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    ids: list[str] = []
    total = 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _RUN.match(line)
        if m is None:
            return None
        first = int(m.group(2))
        last = first if m.group(3) is None else int(m.group(3))
        if max(first, last) > 2**63 - 1:
            return None  # a NUMBER is at most 2^63-1
        total += abs(last - first) + 1
        if total > 2**32:
            return None  # a manifest names at most 2^32 ids
        step = 1 if last >= first else -1
        ids += [f"{m.group(1)}-{n}" for n in range(first, last + step, step)]
    return ids


def leftovers(root: str, kind: str) -> tuple[list[str], list[str], list[str]]:
    """Scan a store: (temp files, orphan item files, problems).

    A problem is anything a crash must never leave: a data file that is not a
    valid document (torn), a stray file of an unknown shape, or for a List a
    manifest naming an item whose file is missing.
    """
    temps: list[str] = []
    orphans: list[str] = []
    problems: list[str] = []
    docs: dict[str, str] = {}  # key -> path
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(TEMP_PREFIX):
            temps.append(path)
        elif name in _SUPPORT or name == "sos.json" or (name == "order.txt" and kind == "list"):
            continue
        elif name == "lost+found" and os.path.isdir(path):
            continue  # where check --repair puts orphans: not part of the store
        elif name == ".sos" and os.path.isdir(path):
            # The reserved name space: once the store was opened (which
            # finishes any record) nothing but a crash-left part may be there.
            for n in os.listdir(path):
                if n == "txn.done":
                    continue  # the last finished record, kept for watchers
                if n.endswith(".part") or n.startswith(TEMP_PREFIX):
                    temps.append(os.path.join(path, n))  # garbage a crash may leave
                else:
                    problems.append(f"leftover in .sos/: {n}")
        elif re.fullmatch(r"[0-9a-f]{2}", name) and os.path.isdir(path):
            for sub in sorted(os.listdir(path)):
                subpath = os.path.join(path, sub)
                if sub.startswith(TEMP_PREFIX):
                    temps.append(subpath)
                elif _DATA.match(sub) and sub.startswith(name):
                    with open(subpath, "rb") as f:
                        ok, doc = valid_document(f.read(), sub)
                    if not ok:
                        problems.append(f"torn or invalid document {subpath}")
                    else:
                        docs[doc[0]] = subpath
                else:
                    problems.append(f"unexpected file {subpath}")
        else:
            problems.append(f"unexpected file {path}")
    if kind == "list":
        try:
            with open(os.path.join(root, "order.txt"), "rb") as f:
                ids = manifest_ids(f.read())
        except FileNotFoundError:
            ids = None
        if ids is None:
            problems.append("order.txt missing or not a valid manifest")
            ids = []
        named = set(ids)
        problems += [f"manifest names missing item {i}" for i in ids if i not in docs]
        orphans = sorted(p for k, p in docs.items() if k not in named)
    return temps, orphans, problems


def check_problems(root: str, kind: str) -> list[str]:
    """What ``sos.check`` finds that is worse than temp or orphan files, and
    whether ``repair`` leaves the store clean: nothing check reports, and
    no temp file anywhere, ``.sos/`` included, nor a part file (what a
    crash left must not stay hidden either)."""
    out = []
    found = sos.check(root)
    worse = [p for p in found if p.code not in ("temp-file", "orphan-item")]
    out += [f"sos.check reports {p.code}: {p}" for p in worse]
    sos.check(root, repair=True)
    after = sos.check(root)
    out += [f"after check --repair still: {p.code}: {p}" for p in after]
    temps, _orphans, _problems = leftovers(root, kind)
    out += [f"after check --repair, a crash leftover: {t}" for t in temps]
    return out


# -- the invariant --------------------------------------------------------------------


def store_state(root: str) -> tuple[str | None, Any]:
    """(kind, content) read with a fresh handle: a dict, a list, or (None, None)
    if there is no store yet. Raises whatever sos raises."""
    if not os.path.exists(os.path.join(root, "sos.json")):
        return None, None
    store = sos.open(root)
    try:
        if isinstance(store, sos.Dict):
            return "dict", {k: store[k] for k in store}
        return "list", list(store)
    finally:
        store.close()


def violations(
    root: str, kind: str, old: Any, new: Any, *, done: bool, repair: bool = True
) -> list[str]:
    """Everything wrong with the store at ``root`` after a crash.

    ``old``/``new`` are the expected contents before and after the call
    (``None`` for "no store"). While the call was running (``done=False``) a
    Dict key may hold its old or its new value, each key on its own, and a
    List its old or its new sequence; once it returned, only the new. Temp
    files and (for a List) orphan items are allowed leftovers; then
    ``sos.check --repair`` must leave the store clean.
    """
    out: list[str] = []
    try:
        got_kind, got = store_state(root)
    except Exception as exc:  # any error reading is a violation
        return [f"reading the store raised {type(exc).__name__}: {exc}"]
    if got_kind is None:
        if old is not None or done:
            return ["the store's metadata is gone"]
        # A creation interrupted: the directory must be claimable.
        try:
            store = (sos.Dict if kind == "dict" else sos.List)(root)
            empty = len(store) == 0
            store.close()
        except Exception as exc:
            return [f"a half-created store cannot be claimed: {type(exc).__name__}: {exc}"]
        return [] if empty else ["a claimed store is not empty"]
    if got_kind != kind:
        out.append(f"kind is {got_kind}, expected {kind}")
    elif kind == "dict":
        old_d = old or {}
        for key in set(old_d) | set(new) | set(got):
            value = got.get(key, ABSENT)
            allowed = [new.get(key, ABSENT)]
            if not done:
                allowed.append(old_d.get(key, ABSENT))
            if value not in allowed:
                out.append(f"key {key!r}: {value!r:.60} is none of {allowed!r:.120}")
    else:
        allowed = [new] if done else [old or [], new]
        if got not in allowed:
            out.append(f"list is {got!r:.120}, none of {allowed!r:.200}")
    _temps, _orphans, problems = leftovers(root, kind)
    out += problems
    if repair and not out:
        out += check_problems(root, kind)
    return out


# -- stores on disk -----------------------------------------------------------------


def make_store(root: Path, kind: str, content: Any) -> None:
    store = sos.Dict(root) if kind == "dict" else sos.List(root)
    try:
        if kind == "dict":
            store.update(content)
        else:
            store.extend(content)
    finally:
        store.close()


def replace_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)

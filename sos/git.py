"""What git knows about a store's files during a merge: unmerged paths and their sides.

A modify/delete conflict leaves no markers in any file (git keeps the modified
side in the work tree and calls the path unmerged), so only git can say that a
key is conflicted. ``sos check`` asks here, and ``sos resolve`` settles such a
path the way ``git mergetool`` does: it writes the chosen side and marks the
path resolved (``git add``, or ``git rm`` when the chosen side deleted it).

Plumbing only: no store internals. Outside a git work tree, or without git,
every function answers "nothing unmerged". A git that does not answer in
:data:`TIMEOUT` seconds (a hung mount, a stuck hook) is an error naming the
command, never taken for "nothing unmerged": a conflict would be missed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass

from sos.errors import Error

__all__ = ["Unmerged", "mark_resolved", "side_bytes", "unmerged"]

#: Seconds a git command may take before it is given up as an error.
TIMEOUT = 60.0

# Index stages of an unmerged path: 1 the common base, 2 ours, 3 theirs.
OURS, THEIRS = 2, 3
_STATES = {
    frozenset({1, 2, 3}): "both modified",
    frozenset({2, 3}): "both added",
    frozenset({1, 3}): "deleted by us, modified by them",
    frozenset({1, 2}): "modified by us, deleted by them",
    frozenset({2}): "added by us",
    frozenset({3}): "added by them",
    frozenset({1}): "deleted by both",
}


@dataclass(frozen=True)
class Unmerged:
    """One unmerged path, relative to the store, with the stages git holds."""

    name: str
    stages: frozenset[int]

    @property
    def state(self) -> str:
        """What ``git status`` says about it ("deleted by us, modified by them")."""
        return _STATES.get(self.stages, "unmerged")

    def has(self, stage: int) -> bool:
        return stage in self.stages


def _git(root: str, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    """Run git in ``root``; None if there is no git to run. Raises
    :class:`~sos.Error` naming the command if it does not finish in time."""
    command = ["git", "-C", root, *args]
    try:
        return subprocess.run(
            command, capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise Error(
            f"{root}: `{shlex.join(command)}` did not finish in {TIMEOUT:g} s (a lock or a "
            "hung mount?); without its answer sos cannot tell which files git lists as "
            "unmerged",
            root,
        ) from None
    except (OSError, subprocess.SubprocessError):
        return None


def _maybe_in_work_tree(root: str) -> bool:
    """False only when git certainly sees no work tree at ``root``.

    git finds its repository by looking for ``.git`` in ``root`` and each
    parent, unless the environment names one (``GIT_DIR``, ``GIT_WORK_TREE``).
    Looking the same way first costs a stat per parent instead of starting a
    git process, which on a store outside any repository (most of them) is the
    whole of what ``unmerged`` would spend.
    """
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return True
    path = os.path.realpath(root)
    while True:
        if os.path.lexists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def unmerged(root: str) -> dict[str, Unmerged]:
    """Every unmerged path below the store ``root``, by store-relative name.

    ``git ls-files -u`` lists one line per stage; nothing (an empty dict) if
    ``root`` is not in a git work tree or git is not installed.
    """
    if not os.path.isdir(root) or not _maybe_in_work_tree(root):
        return {}
    proc = _git(root, "ls-files", "-u", "-z", "--", ".")
    if proc is None or proc.returncode != 0:
        return {}
    stages: dict[str, set[int]] = {}
    for entry in proc.stdout.split(b"\0"):
        if not entry:
            continue
        info, _, path = entry.partition(b"\t")
        stage = int(info.split()[2])
        name = os.fsdecode(path)
        stages.setdefault(name, set()).add(stage)
    return {name: Unmerged(name, frozenset(s)) for name, s in sorted(stages.items())}


def side_bytes(root: str, name: str, stage: int) -> bytes | None:
    """The bytes of ``name`` at index ``stage`` (2 ours, 3 theirs), or None if absent."""
    proc = _git(root, "cat-file", "blob", f":{stage}:./{name}")
    if proc is None or proc.returncode != 0:
        return None
    return proc.stdout


def mark_resolved(root: str, name: str) -> str:
    """Tell git the path is settled, as ``git mergetool`` does; returns the command run."""
    present = os.path.lexists(os.path.join(root, name))
    args = ["add", "--", name] if present else ["rm", "--cached", "--quiet", "--", name]
    proc = _git(root, *args)
    if proc is None or proc.returncode != 0:
        err = "" if proc is None else proc.stderr.decode("utf-8", "replace").strip()
        raise OSError(f"git {' '.join(args)} failed in {root}: {err or 'git not found'}")
    shown = [a for a in args[:-1] if a != "--"]
    return shlex.join(["git", *shown, os.path.join(root, name)])

"""A store under git, with the real git program: commit, diff, clone, merge, conflicts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import clean_env, git, sos

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")


class Clones:
    """A bare origin and two clones, A and B, of a repo holding data/users and data/todo."""

    def __init__(self, tmp_path: Path, *, attributes: bool = True) -> None:
        home = tmp_path / "home"
        home.mkdir()
        self.env = clean_env(home)
        self.tmp = tmp_path
        origin = tmp_path / "origin.git"
        self.git(tmp_path, "init", "-q", "--bare", "-b", "main", origin)
        seed = tmp_path / "seed"
        self.git(tmp_path, "clone", "-q", origin, seed)
        self.sos("load", seed / "data/users", "-", input='{"ada": {"born": 1815}, "alan": 1912}')
        self.sos("load", seed / "data/todo", "-", input='["milk", "eggs"]')
        if not attributes:  # a user who deleted the shipped attributes
            for store in ("users", "todo"):
                (seed / "data" / store / ".gitattributes").unlink()
        self.git(seed, "add", "data")
        self.git(seed, "commit", "-q", "-m", "seed")
        self.git(seed, "push", "-q", "origin", "main")
        self.a = tmp_path / "a"
        self.b = tmp_path / "b"
        for clone in (self.a, self.b):
            self.git(tmp_path, "clone", "-q", origin, clone)

    def git(self, cwd: Path, *args, expect: int | None = 0):
        return git("-c", "pull.rebase=false", *args, cwd=cwd, env=self.env, expect=expect)

    def sos(self, *args, **kwargs):
        return sos(*args, env=self.env, **kwargs)

    def commit(self, clone: Path, message: str) -> None:
        self.git(clone, "add", "-A", "data")
        self.git(clone, "commit", "-q", "-m", message)

    def b_pushes_a_pulls(self, expect: int = 0):
        self.git(self.b, "push", "-q", "origin", "main")
        return self.git(self.a, "pull", "--no-edit", "origin", "main", expect=expect)


def test_a_store_is_ready_to_commit(tmp_path: Path):
    c = Clones(tmp_path)
    users = c.a / "data/users"
    assert (users / ".gitattributes").read_text() == "* -text\norder.txt merge=union\n"
    attrs = c.git(c.a, "check-attr", "-a", "data/todo/order.txt").stdout
    assert "merge: union" in attrs and "text: unset" in attrs
    # Leftover temp files are never staged.
    (users / ".sos-tmp-0123456789abcdef").write_text("half")
    assert c.git(c.a, "status", "--porcelain").stdout == ""
    assert c.git(c.a, "check-ignore", "data/users/.sos-tmp-0123456789abcdef").returncode == 0


def test_one_key_one_file_and_a_line_by_line_diff(tmp_path: Path):
    c = Clones(tmp_path)
    users = c.a / "data/users"
    c.sos("set", users, "ada", '{"born": 1815, "died": 1852}')
    path = Path(c.sos("path", users, "ada").stdout.strip())
    status = c.git(c.a, "status", "--porcelain").stdout.splitlines()
    assert status == [f" M {path.relative_to(c.a)}"]
    diff = c.git(c.a, "diff", "-U0").stdout
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed == ['-    "born": 1815', '+    "born": 1815,', '+    "died": 1852']


def test_different_keys_merge_without_conflict(tmp_path: Path):
    c = Clones(tmp_path)
    c.sos("set", c.a / "data/users", "ada", '"changed in a"')
    c.commit(c.a, "a: ada")
    c.sos("set", c.b / "data/users", "alan", '"changed in b"')
    c.sos("set", c.b / "data/users", "grace", "1906")
    c.commit(c.b, "b: alan, grace")
    c.b_pushes_a_pulls()
    users = c.a / "data/users"
    assert json.loads(c.sos("dump", users).stdout) == {
        "ada": "changed in a",
        "alan": "changed in b",
        "grace": 1906,
    }
    assert c.sos("check", users).stdout.startswith("clean: ")


def test_both_clones_append_to_one_list(tmp_path: Path):
    c = Clones(tmp_path)
    for item in ("a1", "a2"):
        c.sos("append", c.a / "data/todo", json.dumps(item))
    c.commit(c.a, "a appends")
    for item in ("b1", "b2", "b3"):
        c.sos("append", c.b / "data/todo", json.dumps(item))
    c.commit(c.b, "b appends")
    c.b_pushes_a_pulls()  # plain git, with the union attribute the store ships
    todo = c.a / "data/todo"
    merged = json.loads(c.sos("dump", todo).stdout)
    assert merged == ["milk", "eggs", "a1", "a2", "b1", "b2", "b3"]
    assert c.sos("check", todo).stdout.startswith("clean: ")


def test_a_delete_merged_with_an_append_loses_nothing(tmp_path: Path):
    c = Clones(tmp_path)
    c.sos("del", c.a / "data/todo", "0")  # a removes "milk"
    c.sos("append", c.a / "data/todo", '"a1"')
    c.commit(c.a, "a: done with milk")
    c.sos("append", c.b / "data/todo", '"b1"')
    c.commit(c.b, "b appends")
    c.b_pushes_a_pulls()
    todo = c.a / "data/todo"
    # The union merge keeps a's old run beside its new one: "milk" is named but gone.
    found = c.sos("check", todo, expect=1).stdout
    assert "missing-item:" in found and "duplicate-entry:" in found
    c.sos("check", "--repair", todo)
    assert c.sos("check", todo).stdout.startswith("clean: ")
    assert json.loads(c.sos("dump", todo).stdout) == ["eggs", "a1", "b1"]


def test_without_the_union_attribute_repair_keeps_both_sides(tmp_path: Path):
    c = Clones(tmp_path, attributes=False)
    c.sos("append", c.a / "data/todo", '"a1"')
    c.commit(c.a, "a appends")
    c.sos("append", c.b / "data/todo", '"b1"')
    c.commit(c.b, "b appends")
    merge = c.b_pushes_a_pulls(expect=1)
    assert "order.txt" in merge.stdout + merge.stderr
    todo = c.a / "data/todo"
    found = c.sos("check", todo, expect=1).stdout
    assert "bad-manifest:" in found and "order.txt" in found
    c.sos("check", "--repair", todo)
    assert json.loads(c.sos("dump", todo).stdout) == ["milk", "eggs", "a1", "b1"]
    c.commit(c.a, "merge")
    assert c.git(c.a, "status", "--porcelain").stdout == ""


@pytest.mark.parametrize("style", ["merge", "diff3"])
def test_same_key_conflicts_then_resolve(tmp_path: Path, style: str):
    c = Clones(tmp_path)
    c.sos("set", c.a / "data/users", "ada", '{"born": 1815, "by": "a"}')
    c.commit(c.a, "a: ada")
    c.sos("set", c.b / "data/users", "ada", '{"born": 1815, "by": "b"}')
    c.commit(c.b, "b: ada")
    c.git(c.a, "config", "merge.conflictStyle", style)
    c.b_pushes_a_pulls(expect=1)
    users = c.a / "data/users"
    path = c.sos("path", users, "ada").stdout.strip()
    report = c.sos("check", users, expect=1)
    [line] = report.stdout.splitlines()
    assert line.startswith("conflict-markers:") and path in line and "'ada'" in line
    assert f"sos resolve {users} ada --ours" in line
    c.sos("get", users, "alan")  # the other keys stay readable
    c.sos("resolve", users, "ada", "--theirs")
    assert json.loads(c.sos("get", users, "ada").stdout) == {"born": 1815, "by": "b"}
    assert c.sos("check", users).stdout.startswith("clean: ")
    # Marked resolved, as git mergetool does: no git add needed.
    assert c.git(c.a, "diff", "--name-only", "--diff-filter=U").stdout == ""
    c.git(c.a, "commit", "-q", "--no-edit")
    assert c.git(c.a, "status", "--porcelain").stdout == ""


def test_same_key_conflict_resolved_with_edit(tmp_path: Path):
    c = Clones(tmp_path)
    c.sos("set", c.a / "data/users", "alan", "1")
    c.commit(c.a, "a")
    c.sos("set", c.b / "data/users", "alan", "2")
    c.commit(c.b, "b")
    c.b_pushes_a_pulls(expect=1)
    users = c.a / "data/users"
    editor = tmp_path / "merge-by-hand.py"
    # The "user" keeps the sum of both sides: the copy holds the markers to edit away.
    editor.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1]); text = p.read_text()\n"
        "assert '<<<<<<<' in text and '>>>>>>>' in text\n"
        'p.write_text(\'{"key": "alan", "value": 3}\')\n'
    )
    c.env["EDITOR"] = f"python3 {editor}"
    c.sos("edit", users, "alan")
    assert c.sos("get", users, "alan").stdout == "3\n"
    assert c.sos("check", users).stdout.startswith("clean: ")


@pytest.mark.parametrize("side", ["--ours", "--theirs"])
def test_a_modify_delete_conflict_is_reported_and_resolved(tmp_path: Path, side: str):
    """Issue 12: A deletes a key that B changes; git says DU and leaves no markers."""
    c = Clones(tmp_path)
    c.sos("del", c.a / "data/users", "ada")
    c.commit(c.a, "a: no ada")
    c.sos("set", c.b / "data/users", "ada", '{"born": 1815, "by": "b"}')
    c.commit(c.b, "b: ada")
    c.b_pushes_a_pulls(expect=1)
    users = c.a / "data/users"
    path = c.sos("path", users, "ada").stdout.strip()
    assert c.git(c.a, "status", "--porcelain").stdout.startswith("DU ")
    report = c.sos("check", users, expect=1)
    [line] = report.stdout.splitlines()
    assert line.startswith("unmerged:") and path in line and "'ada'" in line
    assert "deleted by us" in line and f"sos resolve {users} ada --ours" in line
    proc = c.sos("resolve", users, "ada", side)
    if side == "--ours":
        assert "kept ours (deleted)" in proc.stderr and "git rm" in proc.stderr
        c.sos("get", users, "ada", expect=1)
    else:
        assert "git add" in proc.stderr
        assert json.loads(c.sos("get", users, "ada").stdout) == {"born": 1815, "by": "b"}
    assert c.git(c.a, "diff", "--name-only", "--diff-filter=U").stdout == ""
    assert c.sos("check", users).stdout.startswith("clean: ")
    c.git(c.a, "commit", "-q", "--no-edit")
    assert c.git(c.a, "status", "--porcelain").stdout == ""


def test_keys_and_dump_during_a_conflict(tmp_path: Path):
    c = Clones(tmp_path)
    c.sos("set", c.a / "data/users", "ada", "1")
    c.commit(c.a, "a")
    c.sos("set", c.b / "data/users", "ada", "2")
    c.commit(c.b, "b")
    c.b_pushes_a_pulls(expect=1)
    users = c.a / "data/users"
    proc = c.sos("keys", users, expect=1)
    assert proc.stdout == "alan\n" and "conflict markers" in proc.stderr
    proc = c.sos("dump", users, expect=1)
    assert json.loads(proc.stdout) == {"alan": 1912}


def test_a_list_item_changed_on_one_side_and_deleted_on_the_other(tmp_path: Path):
    c = Clones(tmp_path)
    todo_a, todo_b = c.a / "data/todo", c.b / "data/todo"
    c.sos("set", todo_a, "1", '"EGGS"')
    c.commit(c.a, "a: EGGS")
    c.sos("set", todo_b, "0", '"oat milk"')  # unrelated, merges cleanly
    item = c.sos("path", todo_b, "1").stdout.strip()
    Path(item).unlink()  # b removes the item's file by hand; the manifest still names it
    c.commit(c.b, "b: no eggs file")
    c.b_pushes_a_pulls(expect=1)
    report = c.sos("check", todo_a, expect=1).stdout
    assert "unmerged:" in report and f"sos resolve {todo_a} 1 --ours" in report
    c.sos("resolve", todo_a, "1", "--theirs")  # theirs deleted it: the item goes
    assert json.loads(c.sos("dump", todo_a).stdout) == ["oat milk"]
    assert c.sos("check", todo_a).stdout.startswith("clean: ")
    c.git(c.a, "commit", "-q", "--no-edit")
    assert c.git(c.a, "status", "--porcelain").stdout == ""


def test_outside_a_work_tree_no_git_process_is_started(tmp_path: Path, monkeypatch):
    """`sos check` on a store outside any repository must not pay for a git process."""
    from sos import git as sos_git

    store = tmp_path / "plain" / "users"
    store.mkdir(parents=True)
    started: list[object] = []
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)
    monkeypatch.setattr(sos_git.subprocess, "run", lambda *a, **k: started.append(a))
    assert sos_git.unmerged(str(store)) == {}
    assert started == []
    # GIT_DIR names a repository from outside: only git can answer then.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    sos_git.unmerged(str(store))
    assert len(started) == 1


def test_a_store_deep_inside_a_work_tree_still_asks_git(tmp_path: Path):
    """The look-up walks every parent, as git does: a conflict two levels up is seen."""
    from sos import git as sos_git

    c = Clones(tmp_path)
    deep = c.a / "data" / "users"
    (deep / ".." / ".." / ".git").resolve(strict=True)
    assert sos_git._maybe_in_work_tree(str(deep))
    assert not sos_git._maybe_in_work_tree(str(tmp_path / "home"))

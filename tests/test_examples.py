"""Every example runs, in a real subprocess, and does what its docstring says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == ["quickstart.py", "todo.py"]


def test_quickstart_leaves_readable_files(tmp_path: Path):
    result = run("quickstart.py", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ada was born in 1815" in result.stdout
    assert "ada speaks en, fr, it" in result.stdout
    assert "to do: ['design format', 'write tests', 'ship it', 'celebrate']" in result.stdout
    # The file it names is the document, readable without sos.
    path = next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if "file:" in line)
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    assert doc == {"key": "ada", "value": {"born": 1815, "langs": ["en", "fr", "it"]}}


def test_quickstart_runs_without_arguments(tmp_path: Path):
    result = run("quickstart.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []  # it cleaned up its temporary directory


def test_todo_keeps_its_list_across_runs(tmp_path: Path):
    env = {"TODO_STORE": str(tmp_path / "todo")}
    assert run("todo.py", "list", cwd=tmp_path, env=env).stdout == "nothing to do\n"
    assert run("todo.py", "add", "buy", "milk", cwd=tmp_path, env=env).stdout == "added #1\n"
    assert run("todo.py", "add", "write docs", cwd=tmp_path, env=env).stdout == "added #2\n"
    assert run("todo.py", "done", "1", cwd=tmp_path, env=env).stdout == "done: buy milk\n"
    assert run("todo.py", "list", cwd=tmp_path, env=env).stdout == "  1. write docs\n"
    assert run("todo.py", "undo", cwd=tmp_path, env=env).stdout == "reopened: buy milk\n"
    listing = run("todo.py", "list", cwd=tmp_path, env=env).stdout
    assert listing == "  1. write docs\n  2. buy milk\n"
    missing = run("todo.py", "done", "9", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert "no task #9" in missing.stderr

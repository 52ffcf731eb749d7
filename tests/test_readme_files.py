"""README "Working with the files": every ``$ `` command runs, in order, in one bash
session in an empty directory, and prints exactly what the README shows.

Conventions of the walk-through: output is stdout and stderr as a terminal
shows them (merged); a line ``...`` stands for any number of lines; a last
line ``[exit N]`` means the command exits N (otherwise it must exit 0).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import clean_env

README = Path(__file__).resolve().parent.parent / "README.md"
MARK = "__sos_readme_step__"

pytestmark = pytest.mark.skipif(
    not (shutil.which("git") and shutil.which("rsync") and shutil.which("flock")),
    reason="the walk-through uses git, rsync and flock",
)


def section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- section: files -->\n(.*?)<!-- /section: files -->", text, re.S)
    assert match, "README has no files section"
    return match.group(1)


def steps() -> list[tuple[str, list[str], int]]:
    """(command, expected output lines, expected exit status) for each ``$ `` line."""
    found: list[tuple[str, list[str], int]] = []
    for block in re.findall(r"^```console\n(.*?)^```", section(), re.S | re.M):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, *output = chunk.rstrip("\n").split("\n")
            status = 0
            if output and re.fullmatch(r"\[exit \d+\]", output[-1]):
                status = int(output.pop()[6:-1])
            found.append((command, output, status))
    return found


def matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


def test_the_walk_through_has_steps():
    commands = " ".join(command for command, _, _ in steps())
    for needed in ("sos path", "sos edit", "grep", "git diff", "git pull", "sos resolve", "rsync"):
        assert needed in commands, needed


def test_the_walk_through_runs(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    script = ["set +e"]
    for command, _, _ in steps():
        script.append(command)
        script.append(f'echo "{MARK} $?"')
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input="\n".join(script) + "\n",
        cwd=work,
        env=clean_env(home, TMPDIR=str(tmp_path), EDITOR="false", COLUMNS="80"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    outputs = re.split(rf"^{MARK} (\d+)\n", proc.stdout, flags=re.M)
    for n, (command, expected, status) in enumerate(steps()):
        actual = outputs[2 * n].splitlines()
        got_status = int(outputs[2 * n + 1])
        assert matches(expected, actual) and got_status == status, (
            f"README step {n + 1}: $ {command}\nexpected (exit {status}):\n"
            + "\n".join(expected)
            + f"\nactual (exit {got_status}):\n"
            + "\n".join(actual)
        )

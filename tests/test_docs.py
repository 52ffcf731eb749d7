"""Every Python block and console transcript in README.md and the manual (docs/)
runs, in the order it appears, and shows what the page says it shows.

Each Markdown file is one session in its own empty directory (the current
directory of every block):

- A ```` ```python ```` block is run in-process, in one namespace per file, so
  a later block may use the names an earlier one made. What it prints must be
  the ```` ```text ```` block right after it (nothing but blank lines
  between), or nothing when no such block follows; its asserts are the rest
  of the comparison.
- A ```` ```console ```` block is a transcript: each ``$ `` line is a command,
  run in one bash session per block, and the lines after it, up to the next
  ``$ ``, are what it prints (stdout and stderr merged, as a terminal shows
  them). A line ``...`` stands for any number of lines; a last line
  ``[exit N]`` means the command exits N (otherwise it must exit 0).
- A block that cannot run here carries a marker that the reader sees too: a
  paragraph of its own right before the fence (a blank line between is
  allowed), ``*Not run by the tests: REASON.*``, e.g. ``*Not run by the
  tests: needs an S3 endpoint.*``. The reason must not be empty. Other fences (``sh``,
  ``json``, ``text``, plain) are listings, not transcripts: they may not hold
  ``$ `` lines, so a transcript cannot dodge the test by changing its tag.

Pages the manual generates at build time (docs/cli/<command>.md) hold no
examples to run; the parser they come from is tested by tests/test_cli.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import clean_env

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARK = "__sos_docs_step__"
FENCE = re.compile(
    r"^(?:\*Not run by the tests: (?P<reason>[^\n]*?)\.?\*\n\n?)?"
    r"```(?P<lang>[\w-]*)\n(?P<body>.*?)^```\n",
    re.S | re.M,
)


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    not_run: str | None  # the marker's reason
    end: int  # offset just past the closing fence
    output: str | None = None  # a python block's ```text block that follows it


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found: list[Block] = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        lang = match["lang"]
        if lang == "text" and found and found[-1].lang == "python":
            between = text[found[-1].end : match.start()]
            if not between.strip():
                found[-1].output = match["body"]
                continue
        found.append(Block(page, line, lang, match["body"], match["reason"], match.end()))
    return found


def steps(body: str) -> list[tuple[str, list[str], int]]:
    """(command, expected output lines, expected exit status) for each ``$ `` line."""
    found: list[tuple[str, list[str], int]] = []
    for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
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


def where(block: Block) -> str:
    page = block.page.relative_to(ROOT) if block.page.is_relative_to(ROOT) else block.page
    return f"{page}:{block.line}"


SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?{}\[\]~\\]")
QUOTED = re.compile(r"'[^']*'|\"[^\"$`\\\\]*\"")  # quoted words: bash expands nothing in them
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def in_process(command: str) -> tuple[dict[str, str], list[str]] | None:
    """(environment assignments, argv) of a plain ``[VAR=x ...] sos ARGS`` command.

    Only a command with no shell syntax but quoting qualifies: for it, bash
    would do nothing but split the words, so running ``sos.cli.main(argv)``
    in this process prints what the installed command prints, without the
    interpreter start that would otherwise make these pages the slowest tests.
    Everything else (pipes, ``$(...)``, globs, ``&&``) runs in bash.
    """
    if SHELL_SYNTAX.search(QUOTED.sub("", command)):
        return None
    words = shlex.split(command)
    assigned: dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        assigned[name] = value
    if not words or words[0] != "sos":
        return None
    return assigned, words[1:]


def run_sos(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    """``sos argv`` in-process: stdout and stderr merged, stdin empty."""
    from sos.cli import main

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    saved = (sys.stdin, sys.stdout, sys.stderr, dict(os.environ))
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), out, out
    os.environ.clear()
    os.environ.update(env)
    try:
        status = main(argv)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved[:3]
        os.environ.clear()
        os.environ.update(saved[3])
    return raw.getvalue().decode("utf-8"), status


def run_bash(commands: list[str], cwd: Path, env: dict[str, str]) -> list[tuple[str, int]]:
    """Run commands in one bash session; (output, exit status) of each."""
    script = ["set +e"]
    for command in commands:
        script += [command, f'echo "{MARK} $?"']
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input="\n".join(script) + "\n",
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    outputs = re.split(rf"^{MARK} (\d+)\n", proc.stdout, flags=re.M)
    return [(outputs[2 * n], int(outputs[2 * n + 1])) for n in range(len(commands))]


def run_console(block: Block, cwd: Path, env: dict[str, str]) -> None:
    todo = steps(block.body)
    results: list[tuple[str, int]] = []
    pending: list[str] = []  # shell commands, run together before the next in-process one
    for command, _, _ in todo:
        plain = in_process(command)
        if plain is None:
            pending.append(command)
            continue
        if pending:
            results += run_bash(pending, cwd, env)
            pending = []
        assigned, argv = plain
        results.append(run_sos(argv, {**env, **assigned}))
    if pending:
        results += run_bash(pending, cwd, env)
    for (command, expected, status), (output, got_status) in zip(todo, results, strict=True):
        actual = output.splitlines()
        assert matches(expected, actual) and got_status == status, (
            f"{where(block)}: $ {command}\nexpected (exit {status}):\n"
            + "\n".join(expected)
            + f"\nactual (exit {got_status}):\n"
            + "\n".join(actual)
        )


def run_python(block: Block, namespace: dict[str, object]) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # dont_inherit: run as a reader's script runs, without this file's
        # `from __future__ import annotations` (dataclasses and pydantic read
        # the annotations of the examples' classes).
        exec(compile(block.body, where(block), "exec", dont_inherit=True), namespace)
    assert printed.getvalue() == (block.output or ""), (
        f"{where(block)} printed:\n{printed.getvalue()}\nthe page shows:\n{block.output or ''}"
    )


def close_stores(namespace: dict[str, object]) -> None:
    for value in list(namespace.values()):
        close = getattr(value, "close", None)
        if callable(close) and type(value).__module__.startswith("sos"):
            close()


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home, TMPDIR=str(tmp_path), EDITOR="false", COLUMNS="80")
    commands = " ".join(c for b in blocks(page) if b.lang == "console" for c, _, _ in steps(b.body))
    # As tests/test_git.py and test_rsync.py do; .ci/run installs all three.
    used = [p for p in ("git", "rsync", "flock") if re.search(rf"\b{p}\b", commands)]
    absent = [p for p in used if not shutil.which(p)]
    if absent:
        pytest.skip(f"the page's transcripts use {', '.join(absent)}")
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {"__name__": "docs"}
    try:
        for block in blocks(page):
            if block.not_run is not None:
                assert block.not_run.strip(), f"{where(block)}: 'not run' needs a reason"
            elif block.lang == "python":
                run_python(block, namespace)
            elif block.lang == "console":
                run_console(block, work, env)
            else:
                assert not re.search(r"^\$ ", block.body, re.M), (
                    f"{where(block)}: a transcript in a ```{block.lang} block; "
                    "tag it console so it runs, or mark it *Not run by the tests: REASON.*"
                )
    finally:
        close_stores(namespace)


def test_the_docs_have_examples():
    """The runner finds what the pages hold (a broken pattern would pass vacuously)."""
    everything = [b for page in PAGES for b in blocks(page)]
    run = [b for b in everything if b.not_run is None and b.lang in ("python", "console")]
    assert sum(b.lang == "python" for b in run) >= 10
    commands = " ".join(c for b in run if b.lang == "console" for c, _, _ in steps(b.body))
    for needed in ("sos path", "sos edit", "grep", "git diff", "git pull", "sos resolve", "rsync"):
        assert needed in commands, needed
    readme = [b for b in blocks(ROOT / "README.md") if b.not_run is None]
    assert {"python", "console"} <= {b.lang for b in readme}


def test_a_failing_example_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The comparison can fail: a wrong output, a wrong exit status, a wrong print."""
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ echo hi\nho\n```\n\n```console\n$ false\n```\n\n"
        "```python\nprint('a')\n```\n\n```text\nb\n```\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    env = clean_env(tmp_path, TMPDIR=str(tmp_path))
    found = blocks(page)
    assert [b.lang for b in found] == ["console", "console", "python"]
    for block in found[:2]:
        with pytest.raises(AssertionError):
            run_console(block, tmp_path, env)
    with pytest.raises(AssertionError):
        run_python(found[2], {})


def test_the_not_run_marker_is_read(tmp_path: Path):
    """A marked block is recognised with its reason; an unmarked one is run."""
    page = tmp_path / "page.md"
    page.write_text(
        "*Not run by the tests: needs an S3 endpoint.*\n\n```python\nraise SystemExit\n```\n\n"
        "```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    marked, unmarked = blocks(page)
    assert marked.not_run == "needs an S3 endpoint" and marked.body == "raise SystemExit\n"
    assert unmarked.not_run is None


def test_the_readme_names_every_command():
    """The README's command table is written by hand: it must name each
    command the parser has, so a new command cannot be left out of it."""
    from sos.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## The command line") : readme.index("## Sharing")]
    missing = [n for n in subparsers.choices if not re.search(rf"`(sos )?{n} ", table)]
    assert not missing, f"README.md's command table lacks {missing}"

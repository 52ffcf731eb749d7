"""MkDocs hook: the manual's command pages, made at build time from the parser
the ``sos`` command itself uses (``sos.cli.build_parser``), so they cannot
drift from it.

- one page per command, ``cli/<name>.md``: its summary and its ``--help``;
- the command table of ``cli/index.md``, written where the page holds
  ``<!-- commands -->``;
- the pages' entries in the "Command line" section of the nav.

Only the public entry point is used: the commands are read back from the
parser (its subparsers action), never from sos's own tables, so the hook keeps
working however sos/ is laid out inside.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

SECTION = "Command line"
INDEX = "cli/index.md"
PLACEHOLDER = "<!-- commands -->"
WIDTH = "88"  # argparse wraps to $COLUMNS: fix it so the pages do not depend on the terminal


def commands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line summary, parser) of every subcommand, in the parser's order."""
    from sos.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, summaries.get(name, ""), sub) for name, sub in action.choices.items()]
    raise RuntimeError("sos.cli.build_parser() has no subcommands")


def help_text(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def page(name: str, summary: str, parser: argparse.ArgumentParser) -> str:
    return (
        f"# sos {name}\n\n"
        f"{summary[:1].upper() + summary[1:]}.\n\n"
        "This page is generated from the command's own parser when the manual is "
        f"built; `sos {name} --help` prints the same text, wrapped to the terminal.\n\n"
        f"```text\n{help_text(parser).rstrip()}\n```\n\n"
        "General rules (keys, values, exit status): [the command line](index.md).\n"
    )


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    entries: list[Any] = [INDEX] + [{f"sos {n}": f"cli/{n}.md"} for n, _, _ in commands()]
    for item in config.nav or []:
        if isinstance(item, dict) and SECTION in item:
            item[SECTION] = entries
            return config
    raise RuntimeError(f"mkdocs.yml: the nav has no {SECTION!r} section")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for name, summary, parser in commands():
        files.append(File.generated(config, f"cli/{name}.md", content=page(name, summary, parser)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != INDEX:
        return markdown
    if PLACEHOLDER not in markdown:
        raise RuntimeError(f"{INDEX} lost its {PLACEHOLDER} line")
    rows = ["| command | does |", "|---|---|"]
    rows += [f"| [`sos {n}`]({n}.md) | {cell(s)} |" for n, s, _ in commands()]
    return markdown.replace(PLACEHOLDER, "\n".join(rows))

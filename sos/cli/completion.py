"""``sos --print-completion SHELL``: tab completion generated from the parser.

The script comes from the same argparse definitions the commands use (by
``shtab``), so it cannot drift from them. ``shtab`` is imported only when a
script is printed: every other ``sos`` call pays nothing for it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

SHELLS = ("bash", "zsh", "fish")


class _PrintCompletion(argparse.Action):
    """Print the script for the shell named and exit, as ``--version`` does."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        import shtab

        _mark_paths(parser, shtab.DIRECTORY, shtab.FILE)
        print(shtab.complete(parser, shell=str(values)), end="")
        parser.exit()


def _mark_paths(parser: argparse.ArgumentParser, directory: Any, file: Any) -> None:
    """Complete STORE as a directory and FILE as a file, in every command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub, directory, file)
        elif action.dest == "store":
            action.complete = directory  # type: ignore[attr-defined]
        elif action.dest == "file":
            action.complete = file  # type: ignore[attr-defined]


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-completion",
        choices=SHELLS,
        action=_PrintCompletion,
        help="print a tab-completion script for SHELL and exit "
        '(bash: eval "$(sos --print-completion bash)")',
        metavar="SHELL",
    )

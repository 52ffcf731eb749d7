"""The ``sos`` command's entry point: the parser and :func:`main`.

The commands register themselves in :mod:`sos.cli.framework` when their
module is imported; ``COMMAND_MODULES`` says which module that is, so that
``main`` imports only the module of the command it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

import sos
from sos.cli import completion as _completion
from sos.cli.framework import _COMMANDS, Command, Failure, Interrupted, UsageError

# Each command and the module that defines it, in the order ``sos --help``
# lists them. ``main`` imports only the module of the command it runs:
# importing them all (and building all their parsers) made ``sos get`` take
# 80-84 ms of CPU instead of 66-67. tests/test_cli.py holds this table to
# what the modules register.
COMMAND_MODULES: dict[str, str] = {
    "check": "check",
    "adopt": "check",
    "copy": "copy",
    "diff": "diff",
    "edit": "edit",
    "resolve": "edit",
    "info": "info",
    "path": "info",
    "get": "read_write",
    "set": "read_write",
    "del": "read_write",
    "append": "read_write",
    "keys": "read_write",
    "mv": "rename",
    "cp": "rename",
    "schema": "schema",
    "migrate": "schema",
    "dump": "transfer",
    "load": "transfer",
    "watch": "watch",
}


def load_commands(names: Iterable[str] | None = None) -> dict[str, Command]:
    """Import the modules of the commands ``names`` (all by default), which
    registers them; the registry, name -> :class:`Command`."""
    wanted = COMMAND_MODULES if names is None else names
    for module in dict.fromkeys(COMMAND_MODULES[name] for name in wanted):
        importlib.import_module(f"sos.cli.{module}")
    return _COMMANDS


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``sos`` parser; with ``only``, every command is known by name but
    only that one has its arguments and help (and only its module is loaded)."""
    commands = load_commands(None if only is None else [only])
    parser = argparse.ArgumentParser(
        prog="sos",
        description="Read, write, edit, check and repair sos stores (directories of JSON files).",
        epilog="Values are JSON. Exit status: 0 success, 1 missing key or problems found, "
        "2 usage error. 'sos COMMAND --help' shows examples.",
    )
    parser.add_argument("--version", action="version", version=f"sos {sos.__version__}")
    _completion.add_argument(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        cmd = commands[name]
        p = sub.add_parser(
            cmd.name,
            help=cmd.summary,
            description=cmd.summary[:1].upper() + cmd.summary[1:] + ".",
            epilog=(cmd.notes and cmd.notes + "\n\n")
            + "examples:\n"
            + "\n".join("  " + e for e in cmd.examples.splitlines()),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=cmd.func)
        groups: dict[str, Any] = {}
        for a in cmd.args:
            into: Any = p
            if a.group is not None:
                if a.group not in groups:
                    groups[a.group] = p.add_mutually_exclusive_group(
                        required=a.group in cmd.required_groups
                    )
                into = groups[a.group]
            into.add_argument(*a.flags, **a.options)
    return parser


@functools.cache
def _parser(only: str | None) -> argparse.ArgumentParser:
    """The parser for ``only`` (see :func:`build_parser`), built once per
    process: building the whole costs ~15 ms (argparse looks up a translation
    for every option), which a process that runs ``main`` many times (a test
    suite, a shell written in Python) pays once."""
    return build_parser(only)


def _command_named(argv: list[str]) -> str | None:
    """The command ``argv`` runs, if its first word names one and no option
    comes before it (``--help``, ``--version`` and completion need them all)."""
    if argv and not argv[0].startswith("-") and argv[0] in COMMAND_MODULES:
        return argv[0]
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the ``sos`` command; returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    parser = _parser(_command_named(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    try:
        status: int = args.func(args)
        sys.stdout.flush()
    except UsageError as exc:
        print(f"sos {args.command}: {exc}", file=sys.stderr)
        return 2
    except (Failure, sos.Error) as exc:
        print(f"sos {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (head, less) went away: not an error worth a word. Point
        # stdout at /dev/null so the interpreter's final flush is quiet too.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Interrupted as exc:
        print(f"\nsos {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\nsos {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        name = exc.filename or args.store
        print(f"sos {args.command}: {name}: {exc.strerror}", file=sys.stderr)
        return 1
    return status

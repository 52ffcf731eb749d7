"""The ``sos`` command: the framework, and the commands grouped by job.

Importing a command module registers its commands; the order here is the
order ``sos --help`` lists them in.
"""

from sos.cli import (  # noqa: F401 - registers
    check,
    copy,
    diff,
    edit,
    info,
    read_write,
    rename,
    schema,
    transfer,
    watch,
)
from sos.cli.framework import build_parser, main

__all__ = ["build_parser", "main"]

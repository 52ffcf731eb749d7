"""The ``sos`` command: the framework, and the commands grouped by job.

Importing a command module registers its commands; ``main`` imports only
the module of the command it runs (``COMMAND_MODULES`` in
:mod:`sos.cli.run` says which, and the order ``sos --help`` lists them
in), ``build_parser()`` all of them.
"""

from sos.cli.run import build_parser, main

__all__ = ["build_parser", "main"]

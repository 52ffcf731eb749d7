"""sos watch."""

from __future__ import annotations

import argparse
import json
import sys

from sos.cli.framework import STORE, arg, command
from sos.watch.watcher import watch

# -- the command -----------------------------------------------------------------------


def run_watch_command(path: str, poll: float | None) -> int:
    """``sos watch STORE [--poll SECONDS]``: one JSON line per change until Ctrl-C.

    Returns 130 on Ctrl-C (the shell's code for SIGINT). sos.Error (not a
    store) propagates for the command's usual one-line message.
    """
    import sos

    store = sos.open(path)
    watcher = None
    try:
        watcher = watch(store, poll=poll)
        out = sys.stdout
        for change in watcher:
            out.write(json.dumps(change.to_json(), ensure_ascii=False) + "\n")
            out.flush()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    finally:
        if watcher is not None:
            watcher.close()
        store.close()
    return 0


@command(
    "watch",
    "print one JSON line per change to a store, until Ctrl-C",
    "sos watch data/users\nsos watch --poll 2 data/todo     # stat-based polling every 2 s",
    STORE,
    arg("--poll", type=float, metavar="SECONDS", help="poll at this interval, not OS events"),
)
def cmd_watch(args: argparse.Namespace) -> int:
    from sos.cli.watch import run_watch_command

    return run_watch_command(args.store, args.poll)

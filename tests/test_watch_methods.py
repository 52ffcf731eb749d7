"""``db.watch()`` and ``db.awatch()``: the store's own methods reach the watcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sos


def test_dict_watch_method_reports_another_process(store_path: Path):
    with sos.Dict(store_path) as db, db.watch(poll=0.05) as changes:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sos,sys; sos.Dict(sys.argv[1])['k'] = 42",
                str(store_path),
            ],
            check=True,
        )
        change = next(iter(changes))
        assert (change.kind, change.key, change.value) == ("set", "k", 42)

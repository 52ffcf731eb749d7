"""``db.watch()`` and ``db.awatch()``: the store's own methods reach the watcher."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import default_sigint

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


def test_the_watch_command_prints_json_lines_until_ctrl_c(store_path: Path):
    sos.Dict(store_path).close()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "sos", "watch", "--poll", "0.05", str(store_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        time.sleep(1.0)  # let it take its first look
        subprocess.run(
            [sys.executable, "-m", "sos", "set", str(store_path), "ada", '{"born": 1815}'],
            check=True,
        )
        assert watcher.stdout is not None
        line = json.loads(watcher.stdout.readline())
        assert (line["kind"], line["key"], line["value"]) == ("set", "ada", {"born": 1815})
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=10) == 130
    finally:
        watcher.kill()
        watcher.communicate()

"""tests/forked.py, the warm fork server the process tests use: its children
must behave as ``python ...`` would, or those tests prove nothing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import forked
import pytest

pytestmark = pytest.mark.usefixtures("fork_server")


def test_exit_status_output_argv_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOS_FORKED_PROBE", "seen")
    code = (
        "import os, sys\n"
        "print(sys.argv[1:], os.environ['SOS_FORKED_PROBE'], os.getpid() != int(sys.argv[1]))\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    child = forked.run("-c", code, str(os.getpid()), "two")
    assert child.returncode == 3
    assert child.stdout == f"[{str(os.getpid())!r}, 'two'] seen True\n"
    assert child.stderr == "to stderr\n"


def test_an_exception_is_exit_status_1_with_its_traceback() -> None:
    child = forked.run("-c", "raise ValueError('boom')")
    assert child.returncode == 1
    assert "ValueError: boom" in child.stderr


def test_kill_9_and_atexit(tmp_path: Path) -> None:
    marker = tmp_path / "atexit"
    done = forked.run(
        "-c", "import atexit, sys; atexit.register(open(sys.argv[1], 'w').write, 'ran')",
        str(marker),
    )  # fmt: skip
    assert done.returncode == 0 and marker.read_text() == "ran"
    looping = forked.start("-c", "print('ready', flush=True)\nwhile True: pass")
    looping.wait_for_line("ready")
    looping.kill()
    assert looping.wait(10) == -signal.SIGKILL


def test_a_script_runs_as_main_beside_its_directory(tmp_path: Path) -> None:
    (tmp_path / "helper_mod.py").write_text("VALUE = 7\n")
    script = tmp_path / "main.py"
    script.write_text("import sys, helper_mod\nprint(__name__, helper_mod.VALUE, sys.argv[1:])\n")
    child = forked.run(str(script), "x")
    assert (child.returncode, child.stdout) == (0, "__main__ 7 ['x']\n")

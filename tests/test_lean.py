"""The lean helper (lean.py) runs a test in its own process, and what the
worker would have seen of the test (its outcome with the values compared,
its output, its figures, a leaked descriptor) still reaches the worker."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from lean import _ESCAPED, in_lean_process
from reliability import harness


@in_lean_process
def _where(out: Path) -> None:
    out.write_text(f"{os.getpid()} {os.getppid()} {tempfile.gettempdir()}")


@in_lean_process
def _compare(found: list[str]) -> None:
    assert found == []


@in_lean_process
def _leak(path: Path) -> None:
    os.open(path, os.O_RDONLY)  # never closed, on purpose


@in_lean_process
def _say_and_count() -> None:
    print("printed in the helper")
    harness.add_figure("lean helper test", 2)


@in_lean_process
def _fork_and_come_back() -> None:
    pid = os.fork()
    if pid == 0:
        return  # a test's bug: its child returns to the helper instead of dying
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == _ESCAPED  # stopped before it could answer


@in_lean_process
def _skip() -> None:
    pytest.skip("not on this machine")


@in_lean_process
def _die() -> None:
    print("last words", flush=True)
    os._exit(3)


@pytest.mark.usefixtures("lean_helper")
def test_a_test_runs_in_a_child_of_the_worker_with_its_temp_directory(tmp_path: Path) -> None:
    _where(out=tmp_path / "where")
    pid, parent, temp = (tmp_path / "where").read_text().split()
    assert int(pid) != os.getpid()
    assert int(parent) == os.getpid()
    assert temp == tempfile.gettempdir()  # the worker's (tmpfs), not the helper's default


@pytest.mark.usefixtures("lean_helper")
def test_a_failed_assert_shows_the_values_compared() -> None:
    with pytest.raises(AssertionError, match=r"assert \['a crash point'\] == \[\]"):
        _compare(found=["a crash point"])
    _compare(found=[])


@pytest.mark.usefixtures("lean_helper")
def test_a_descriptor_leaked_in_the_helper_fails_the_test(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(AssertionError, match="leaked 1 file descriptor"):
        _leak(path=tmp_path / "f")


@pytest.mark.usefixtures("lean_helper")
def test_output_and_figures_come_back_to_the_worker(capsys: pytest.CaptureFixture[str]) -> None:
    _say_and_count()
    assert "printed in the helper" in capsys.readouterr().out
    # not one of the run's figures (docs/reliability.md prints them)
    assert harness.FIGURES.pop("lean helper test") == 2


@pytest.mark.usefixtures("lean_helper")
def test_a_child_that_comes_back_never_answers_for_a_test(tmp_path: Path) -> None:
    _where(out=tmp_path / "before")
    _fork_and_come_back()
    _where(out=tmp_path / "after")
    helper = (tmp_path / "before").read_text().split()[0]
    assert (tmp_path / "after").read_text().split()[0] == helper
    with pytest.raises(AssertionError, match="a later test's failure"):
        _compare(found=["a later test's failure"])


@pytest.mark.usefixtures("lean_helper")
def test_a_skip_in_the_helper_is_a_skip() -> None:
    with pytest.raises(pytest.skip.Exception, match="not on this machine"):
        _skip()


@pytest.mark.usefixtures("lean_helper")
def test_a_helper_that_dies_fails_its_test_with_its_output_and_starts_again() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)exit status 3\).*last words"):
        _die()
    _compare(found=[])  # the next test runs in a new helper

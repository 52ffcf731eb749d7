"""The crash-point and power-loss suites go red on broken builds.

Each run starts pytest in a subprocess with ``SOS_MUTANT=<name>`` (see
mutants.py), which puts a broken ``sos.storage.atomic.ops`` under the whole write
path, and runs the suites' tests of every operation. A suite that stays green
on a build without fsync, without the directory fsync, or with a replace
that is not atomic would prove nothing. Each suite is also expected to stay
green where its model cannot see the fault: process death loses nothing the
kernel has, so a missing fsync is for the power-loss model alone to catch.

A soak (``-m slow``, run by ``.ci/run``): one subprocess per build.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from . import harness
from .mutants import MUTANTS

pytestmark = [pytest.mark.slow, pytest.mark.mutants]

ROOT = Path(__file__).resolve().parents[2]
SUITES = {  # name -> (file, the tests of every operation)
    "crash points": ("tests/reliability/test_crash_points.py", "test_crash_at_every_step"),
    "power loss": ("tests/reliability/test_power_loss.py", "test_every_power_loss_state"),
}
# build -> suite -> "red" or "green"; a suite left out is not run for that build.
EXPECTED: dict[str, dict[str, str]] = {
    "none": {"crash points": "green", "power loss": "green"},
    "no-file-fsync": {"crash points": "green", "power loss": "red"},
    "no-dir-fsync": {"crash points": "green", "power loss": "red"},
    # The power-loss model follows writes to files open_temp made; a write
    # into the target itself is outside it, so only process death is tried.
    "in-place": {"crash points": "red"},
    "unlink-then-rename": {"crash points": "red", "power loss": "red"},
}
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) (\S+?)::(\w+)")


def run_suites(mutant: str) -> tuple[dict[str, dict[str, int]], str]:
    """Run the suites against ``mutant``; per suite the count of each outcome,
    and everything pytest printed."""
    suites = EXPECTED[mutant]
    env = dict(os.environ)
    env.pop("SOS_MUTANT", None)
    if mutant != "none":
        env["SOS_MUTANT"] = mutant
    tests = " or ".join(SUITES[s][1] for s in suites)
    files = [SUITES[s][0] for s in suites]
    # -n0: one process; the soak already runs the builds on parallel workers.
    args = ["-k", tests, "-q", "-rA", "--tb=line", "-p", "no:cacheprovider", "-n0"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *files, *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )
    counts = {s: {"PASSED": 0, "FAILED": 0, "ERROR": 0} for s in suites}
    for line in proc.stdout.splitlines():
        m = _OUTCOME.match(line)
        if m:
            suite = next(s for s in suites if SUITES[s][0] == m.group(2))
            counts[suite][m.group(1)] += 1
    return counts, proc.stdout + proc.stderr


@pytest.mark.parametrize("mutant", list(EXPECTED))
def test_the_suites_catch_a_broken_build(mutant: str):
    assert mutant == "none" or mutant in MUTANTS
    counts, output = run_suites(mutant)
    print(f"\n== build {mutant!r}")
    for line in output.splitlines():
        if line.startswith(("FAILED", "crash points:", "power-loss states:")) or "passed" in line:
            print(line[:300])
    for suite, expected in EXPECTED[mutant].items():
        got = counts[suite]
        harness.add_figure(f"mutant {mutant}, {suite}: operations red", got["FAILED"])
        harness.add_figure(f"mutant {mutant}, {suite}: operations green", got["PASSED"])
        assert got["ERROR"] == 0, output[-3000:]
        assert got["PASSED"] + got["FAILED"] > 0, output[-3000:]
        if expected == "red":
            assert got["FAILED"] > 0, f"{suite} stayed green on {mutant}:\n{output[-3000:]}"
        else:
            assert got["FAILED"] == 0, f"{suite} went red on {mutant}:\n{output[-3000:]}"

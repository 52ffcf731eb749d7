"""A store on a real multi-process SeaweedFS cluster while its nodes fail.

One ``weed master -defaultReplication=001`` (every object on two volume
servers of the rack), three ``weed volume`` servers on one rack and one
``weed filer -s3`` gateway, each its own process (tests/s3/weed.py). Eight
worker processes (tests/s3/cluster_worker.py) share two stores through the
gateway: 4 append to one List, 2 increment a counter in transactions, 2 set
random keys. Mid-run one volume server is killed with SIGKILL; later the
gateway is stopped and started again. Every worker logs each call before
sending it and when it returned, so the end state is judged against what
was acknowledged:

- no acknowledged write is lost: every append and set that returned is
  there, and the counter equals the number of committed transactions (each
  writes a marker key holding the count it made: the markers are exactly
  1..counter, so no increment was lost or doubled);
- nothing appears that was never tried, and no item twice;
- calls during the outage fail with a ``sos.Error`` naming the endpoint,
  after the client's retries, never a botocore traceback or a secret;
- the workload goes on once the gateway is back, with the handles the
  workers had (judged per role: the lease has no queue, so one appender
  can wait while the others append);
- ``sos check`` of both stores is clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sos

from .weed import Cluster, ServerError, running_cluster

pytestmark = [pytest.mark.s3, pytest.mark.slow]  # a real cluster: .ci/run -m slow

WORKER = str(Path(__file__).with_name("cluster_worker.py"))
ROLES = ["append"] * 4 + ["txn"] * 2 + ["set"] * 2
# Bounds: the whole run must stay well under two minutes.
WORKLOAD_SECONDS = 100.0  # the workers' own deadline, a backstop
MAX_OPS = 20000  # per worker, another backstop (a plain set is one request now: fast)
PHASE_OPS = 8  # acknowledged calls per role that end each phase
KILLED_PHASE_SECONDS = 6.0  # the workload runs this long with a volume server dead


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    try:
        context = running_cluster(tmp_path / "cluster")
        cluster = context.__enter__()
    except ServerError as exc:
        pytest.fail(f"the cluster test needs a real SeaweedFS cluster: {exc}", pytrace=False)
    try:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            monkeypatch.delenv(name)
        for name, value in cluster.server.environment(tmp_path).items():
            monkeypatch.setenv(name, value)
        yield cluster
    finally:
        context.__exit__(None, None, None)


class Workers:
    """The worker processes and their logs."""

    def __init__(self, tmp_path: Path, urls: dict[str, str]) -> None:
        self.stop_file = tmp_path / "stop"
        self.logs = [tmp_path / f"worker{w}-{role}.jsonl" for w, role in enumerate(ROLES)]
        self.errors = [tmp_path / f"worker{w}-{role}.err" for w, role in enumerate(ROLES)]
        deadline = time.time() + WORKLOAD_SECONDS
        self.processes: list[subprocess.Popen[bytes]] = []
        for w, role in enumerate(ROLES):
            command = [
                sys.executable, WORKER, role, urls[role], str(w), str(self.logs[w]),
                str(self.stop_file), str(deadline), str(MAX_OPS),
            ]  # fmt: skip
            with open(self.errors[w], "wb") as err:
                process = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL
                )
            self.processes.append(process)

    def records(self, w: int) -> list[dict[str, Any]]:
        try:
            lines = self.logs[w].read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        # The last line may be half-written while the worker runs.
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def done(self, w: int) -> list[dict[str, Any]]:
        return [r for r in self.records(w) if r["event"] == "done"]

    def wait_until(self, what: str, ready: Callable[[int], bool], timeout: float) -> None:
        """Until ``ready(w)`` holds for every worker; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            late = [w for w in range(len(ROLES)) if not ready(w)]
            if not late:
                return
            dead = [w for w in late if self.processes[w].poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.fail(
                    f"workers {late} not ready within {timeout:g} s: {what}"
                    + "".join(f"\nworker {w}: {self.tail(w)}" for w in late),
                    pytrace=False,
                )
            time.sleep(0.2)

    def wait_for_roles(
        self, what: str, after: float, timeout: float, at_least: float = 0.0
    ) -> None:
        """Until every role's workers together have PHASE_OPS acknowledged
        calls that started after ``after``, and ``at_least`` seconds have
        passed; fails after ``timeout``."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            counts = {role: 0 for role in ROLES}
            for w, role in enumerate(ROLES):
                counts[role] += self.acknowledged_after(w, after)
            if all(n >= PHASE_OPS for n in counts.values()) and (
                time.monotonic() - start >= at_least
            ):
                return
            # a worker that ended on its own (exit 0: its op budget spent) is not dead
            dead = [w for w, p in enumerate(self.processes) if p.poll() not in (None, 0)]
            if dead or time.monotonic() > deadline:
                pytest.fail(
                    f"not within {timeout:g} s: {what} (per role: {counts}; exited: {dead})"
                    + "".join(f"\nworker {w}: {self.tail(w)}" for w in range(len(ROLES))),
                    pytrace=False,
                )
            time.sleep(0.2)

    def acknowledged_after(self, w: int, t: float) -> int:
        return sum(1 for r in self.done(w) if r["ok"] and r["t0"] > t)

    def failed_after(self, w: int, t: float) -> int:
        return sum(1 for r in self.done(w) if not r["ok"] and r["t1"] > t)

    def tail(self, w: int) -> str:
        records = self.records(w)[-3:]
        err = self.errors[w].read_text(errors="replace")[-2000:]
        return f"{records} {err}".strip()

    def finish(self, timeout: float) -> list[int | None]:
        """Ask the workers to stop; kill those still running after ``timeout``."""
        self.stop_file.touch()
        deadline = time.monotonic() + timeout
        for p in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        codes = [p.poll() for p in self.processes]
        self.kill()
        return codes

    def kill(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.kill()
            p.wait()


def sos_check(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sos", "check", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cluster_loses_no_acknowledged_write(cluster: Cluster, tmp_path: Path) -> None:
    started = time.monotonic()
    endpoint = cluster.server.endpoint
    # Plain sets get a store of their own: on S3 a plain set that finds a
    # transaction's record pending waits for the lease, which has no queue,
    # and two transaction workers can keep it from a setter for 30 s and more.
    urls = {
        role: f"s3://{cluster.server.bucket}/cluster/{role}" for role in ("append", "txn", "set")
    }
    sos.List(urls["append"]).close()
    sos.Dict(urls["txn"]).close()
    sos.Dict(urls["set"]).close()

    phases: dict[str, float] = {}
    workers = Workers(tmp_path, urls)
    try:
        # Progress is judged per role, not per worker: on S3 an append and a
        # transaction hold the lease, which has no queue, so one worker of a
        # role can wait a long time while the others of its role go on.
        # 1. All eight at work on the healthy cluster.
        workers.wait_for_roles("acknowledged calls on the healthy cluster", after=0, timeout=30)
        # 2. A volume server dies without a goodbye; writes go on.
        phases["volume killed"] = t_kill = time.time()
        cluster.kill_volume(1)
        workers.wait_for_roles(
            "acknowledged calls after the volume server was killed",
            after=t_kill,
            timeout=40,
            at_least=KILLED_PHASE_SECONDS,
        )
        # 3. The gateway goes away until every worker has seen a call fail
        # (a worker waiting for the lease fails at its next poll).
        phases["gateway stopped"] = t_stop = time.time()
        cluster.stop_gateway()
        workers.wait_until(
            "a failed call during the outage",
            lambda w: workers.failed_after(w, t_stop) >= 1, timeout=45,
        )  # fmt: skip
        phases["gateway restarting"] = t_restart = time.time()
        cluster.start_gateway()
        phases["gateway back"] = t_back = time.time()
        # 4. The workers resume with the handles they had (a lease left by a
        # call cut off by the outage expires after 30 s, hence the bound).
        workers.wait_for_roles(
            "acknowledged calls after the gateway came back", after=t_back, timeout=60
        )
        phases["workers stopped"] = time.time()
        codes = workers.finish(timeout=40)
    finally:
        workers.kill()
    assert codes == [0] * len(ROLES), [workers.tail(w) for w in range(len(ROLES))]

    done = [workers.done(w) for w in range(len(ROLES))]
    tried = [[r for r in workers.records(w) if r["event"] == "try"] for w in range(len(ROLES))]
    failures = [r for d in done for r in d if not r["ok"]]

    # Every failure is a sos.Error, never a raw botocore error or a traceback,
    # and no message carries the secret key.
    foreign = [r for r in failures if not r["sos"]]
    assert foreign == [], "\n".join(r["message"] for r in foreign[:3])
    assert not [r for r in failures if cluster.server.secret_key in r["message"]]
    # What failed while the gateway was down names the endpoint.
    outage = [r for r in failures if t_stop < r["t1"] < t_restart]
    assert outage, "no call failed while the gateway was down"
    unnamed = [r for r in outage if endpoint not in r["message"]]
    assert unnamed == [], "\n".join(r["message"] for r in unnamed[:3])

    with sos.List(urls["append"]) as lst:
        items = list(lst)
    with sos.Dict(urls["txn"]) as db:
        state = dict(db.items())
    with sos.Dict(urls["set"]) as db:
        state.update(db.items())

    # The List: every acknowledged append there, nothing never tried, no
    # item twice, each writer's items in its order.
    pairs = [(item["w"], item["i"]) for item in items]
    assert len(pairs) == len(set(pairs)), "an item appears twice"
    for w, role in enumerate(ROLES):
        if role != "append":
            continue
        mine = [i for (writer, i) in pairs if writer == str(w)]
        acknowledged = {r["i"] for r in done[w] if r["ok"]}
        attempted = {r["i"] for r in tried[w]}
        assert acknowledged <= set(mine), f"worker {w} lost {sorted(acknowledged - set(mine))}"
        assert set(mine) <= attempted
        assert mine == sorted(mine), f"worker {w}'s items out of order"

    # The counter: the markers of the committed transactions are exactly
    # 1..counter, every acknowledged one among them.
    counter = state.get("counter", 0)
    markers = {k: v for k, v in state.items() if k.startswith("txn-")}
    assert sorted(markers.values()) == list(range(1, counter + 1))
    committed = 0
    for w, role in enumerate(ROLES):
        if role != "txn":
            continue
        acknowledged = {f"txn-{w}-{r['i']}": r["read"] + 1 for r in done[w] if r["ok"]}
        committed += len(acknowledged)
        assert {k: markers.get(k) for k in acknowledged} == acknowledged
        assert {k for k in markers if k.startswith(f"txn-{w}-")} <= {
            f"txn-{w}-{r['i']}" for r in tried[w]
        }
    assert committed <= counter

    # The sets: each key holds its last acknowledged value, or a value whose
    # call came later and failed (it may have landed); nothing else.
    for w, role in enumerate(ROLES):
        if role != "set":
            continue
        last_ok: dict[str, int] = {}
        for r in done[w]:
            if r["ok"]:
                last_ok[r["key"]] = r["i"]
        for key in {r["key"] for r in tried[w]}:
            floor = last_ok.get(key, -1)
            allowed = {floor} if floor >= 0 else set()
            allowed |= {r["i"] for r in tried[w] if r["key"] == key and r["i"] > floor}
            value = state.get(key)
            if value is None:
                assert floor < 0, f"{key}: acknowledged set {floor} lost"
            else:
                assert value["w"] == str(w) and value["i"] in allowed, (key, value, floor)

    for url in urls.values():
        result = sos_check(url)
        assert result.returncode == 0, result.stdout + result.stderr

    acknowledged_total = sum(1 for d in done for r in d if r["ok"])
    resumed = [sum(1 for r in d if r["ok"] and r["t0"] > t_back) for d in done]
    if os.environ.get("SOS_CLUSTER_VERBOSE") == "1":  # what failed, for a report
        for r in failures:
            print(f"{r['t1'] - phases['volume killed']:+.1f} s {r['error']}: {r['message'][:300]}")
    print(
        f"\ncluster run: {time.monotonic() - started:.1f} s; {acknowledged_total} acknowledged "
        f"calls, {len(failures)} failed ({len(outage)} during the outage); {len(items)} "
        f"items, counter {counter} ({committed} acknowledged); acknowledged per worker "
        f"after the gateway was back: {resumed}; phases "
        + ", ".join(f"{k} at +{v - phases['volume killed']:.1f} s" for k, v in phases.items())
    )

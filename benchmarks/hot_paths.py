"""The hot-path targets of issue 21, measured on one filesystem.

Each target is a ratio between sos and its floor measured in this run, the
two sides alternating so that load which comes and goes hits both alike:
reads and single writes in blocks (the order flipped each block; the figure
is the median of the blocks' ratios, so a block that lost the CPU to another
process counts once, not in full), writers and transactions run by run (the
figure is the ratio of total times, so every deferred cost is counted):

- get / the floor's read, ``in`` / a bare stat: the floor reads the same
  document at the same hashed path (computed before the clock);
- ``lst[i]`` / stat of ``order.txt`` + read of the item's file;
- set / a durable replace (temp, write, fsync, rename, directory fsync) of the
  same bytes at the same path;
- append / the item written durably, then a manifest of the same size
  rewritten durably;
- 4 and 8 writer processes / as many floor writers doing their own durable
  replaces into the same fan-out directories;
- 20 back-to-back transactions of 1,000 new keys / the same files written and
  renamed with no fsync at all, on as many threads as sos uses.

``bench.py`` runs this on tmpfs and on the disk and adds the syscall counts.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import peers
import shared

import sos
from sos import format as _format

# sos applies a transaction's files on the calling thread (``Journal.apply``
# in sos/txn/journal.py); the no-fsync floor gets as many. Change both together.
SOS_TXN_THREADS = 1
WRITE_BLOCK = 5  # durable sets / appends per alternating block


def value_of(key: str) -> Any:
    n = int(key[1:])
    return {"name": f"user {n}", "n": n, "tags": ["a", "b"], "active": n % 2 == 0}


def alternate(
    a: Callable[[int], None], b: Callable[[int], None], blocks: int
) -> tuple[float, float]:
    """Total seconds of ``a(i)`` and ``b(i)`` for i in range(blocks), run in
    alternation with the order flipped every block."""
    ta = tb = 0.0
    gc.collect()
    for i in range(blocks):
        first, second = (a, b) if i % 2 else (b, a)
        t0 = time.perf_counter()
        first(i)
        t1 = time.perf_counter()
        second(i)
        t2 = time.perf_counter()
        if first is a:
            ta, tb = ta + t1 - t0, tb + t2 - t1
        else:
            tb, ta = tb + t1 - t0, ta + t2 - t1
    return ta, tb


def median_ratio(
    sos_block: Callable[[int], None], floor_block: Callable[[int], None], blocks: int
) -> tuple[float, float]:
    """sos speed / floor speed: the median over ``blocks`` alternating blocks
    (order flipped each time) of floor time / sos time, and beside it the
    ratio of the total times (which a rare slow path in sos, or a stall that
    hit one side, moves). Block 0 is run once untimed on each side first, to
    warm both alike."""
    sos_block(0)
    floor_block(0)
    gc.collect()
    ratios = []
    total_sos = total_floor = 0.0
    for i in range(blocks):
        if i % 2:
            t0 = time.perf_counter()
            sos_block(i)
            t1 = time.perf_counter()
            floor_block(i)
            t2 = time.perf_counter()
            t_sos, t_floor = t1 - t0, t2 - t1
        else:
            t0 = time.perf_counter()
            floor_block(i)
            t1 = time.perf_counter()
            sos_block(i)
            t2 = time.perf_counter()
            t_floor, t_sos = t1 - t0, t2 - t1
        ratios.append(ratio(t_floor, t_sos))
        total_sos, total_floor = total_sos + t_sos, total_floor + t_floor
    return statistics.median(ratios), ratio(total_floor, total_sos)


class Sizes:
    def __init__(self, quick: bool) -> None:
        self.keys = 200 if quick else 2000  # store size for the single-op targets
        self.reads = 40 if quick else 400  # reads per block
        self.blocks = 4 if quick else 40  # read blocks per side
        self.writes = 20 if quick else 300  # durable sets / appends per side
        # sets per writer process, on the disk and on tmpfs: a writer must run
        # long enough to overlap the others (on tmpfs 150 sets take ~5 ms)
        self.writer_count = 5 if quick else 150
        self.writer_count_tmpfs = 5 if quick else 1500
        self.writer_rounds = 1 if quick else 3
        self.txn_keys = 50 if quick else 1000
        self.txns = 3 if quick else 20


def ratio(floor_time: float, sos_time: float) -> float:
    """sos speed over floor speed, for the same work on each side."""
    return floor_time / sos_time if sos_time > 0 else float("inf")


def single_ops(work: Path, sz: Sizes) -> dict[str, float]:
    """get, in, set, lst[i] and append ratios (sos speed / floor speed)."""
    rnd = random.Random(21)
    root = str(work / "dict")
    ks = [f"k{i}" for i in range(sz.keys)]
    peers.SosDict().fill(root, ((k, value_of(k)) for k in ks))
    floor = peers.Floor()
    floor.prepare(root, ks, value_of)
    out: dict[str, float] = {}
    db = sos.Dict(root)
    samples = [[rnd.choice(ks) for _ in range(sz.reads)] for _ in range(sz.blocks)]

    def sos_get(i: int) -> None:
        for k in samples[i]:
            db[k]

    def floor_get(i: int) -> None:
        for k in samples[i]:
            floor.get(root, k)

    def sos_in(i: int) -> None:
        for k in samples[i]:
            k in db  # noqa: B015 - the lookup is what is timed

    def floor_in(i: int) -> None:
        for k in samples[i]:
            floor.contains(root, k)

    for k in ks:  # warm both sides alike: every file read once
        db[k]
        floor.get(root, k)
    out["get"], out["get total"] = median_ratio(sos_get, floor_get, sz.blocks)
    out["in"], out["in total"] = median_ratio(sos_in, floor_in, sz.blocks)

    # Durable writes in short blocks: fsync latency here moves by 5x within
    # a minute, so each block of sos has a block of the floor beside it.
    writes = [ks[i : i + WRITE_BLOCK] for i in range(0, sz.writes, WRITE_BLOCK)]
    values = {k: value_of(k) for block in writes for k in block}

    def sos_set(i: int) -> None:
        for k in writes[i]:
            db[k] = values[k]

    def floor_set(i: int) -> None:
        for k in writes[i]:
            floor.set(root, k, None)

    out["set"], out["set total"] = median_ratio(sos_set, floor_set, len(writes))
    db.close()

    out.update(list_ops(work, sz, rnd))
    return out


def list_ops(work: Path, sz: Sizes, rnd: random.Random) -> dict[str, float]:
    """lst[i] against stat(manifest) + read(item); append against a durable
    item write and a durable manifest rewrite."""
    lroot = str(work / "list")
    peers.SosList().fill(lroot, ((f"k{i}", value_of(f"k{i}")) for i in range(sz.keys)))
    lst = sos.List(lroot)
    manifest = os.path.join(lroot, _format.ORDER_NAME)
    indexes = [[rnd.randrange(sz.keys) for _ in range(sz.reads)] for _ in range(sz.blocks)]
    paths = [lst.path_of(i) for i in range(sz.keys)]  # public: the file that holds item i
    out: dict[str, float] = {}

    def floor_index(i: int) -> None:
        for j in indexes[i]:
            os.stat(manifest)
            fd = os.open(paths[j], os.O_RDONLY)
            try:
                chunks = [os.read(fd, 1 << 16)]
                while chunks[-1]:
                    chunks.append(os.read(fd, 1 << 16))
            finally:
                os.close(fd)
            json.loads(b"".join(chunks))["value"]

    def sos_index(i: int) -> None:
        for j in indexes[i]:
            lst[j]

    # The manifest is "racily clean" for a moment after a write (its
    # timestamp cannot yet prove it unchanged): measure the steady state.
    time.sleep(0.25)
    for j in range(sz.keys):
        lst[j]
    out["index"], out["index total"] = median_ratio(sos_index, floor_index, sz.blocks)

    # The append floor: its own directory laid out as the List's, the item's
    # bytes and a manifest one line longer than the List's, made beforehand.
    froot = str(work / "list-floor")
    item_dir = os.path.join(froot, os.path.relpath(os.path.dirname(paths[0]), lroot))
    os.makedirs(item_dir)
    with open(paths[0], "rb") as f:
        item_bytes = f.read()
    with open(manifest, "rb") as f:
        order_bytes = f.read()
    floor_manifest = os.path.join(froot, _format.ORDER_NAME)
    fresh = [f"{i:016x}-{i}" for i in range(sz.writes)]
    manifests = [order_bytes + f"{item}\n".encode() for item in fresh]
    value = value_of("k0")
    blocks = range(0, sz.writes, WRITE_BLOCK)

    def floor_append(i: int) -> None:
        for j in range(i * WRITE_BLOCK, min((i + 1) * WRITE_BLOCK, sz.writes)):
            peers.durable_replace(os.path.join(item_dir, fresh[j] + ".json"), item_bytes)
            peers.durable_replace(floor_manifest, manifests[j])

    def sos_append(i: int) -> None:
        for _ in range(i * WRITE_BLOCK, min((i + 1) * WRITE_BLOCK, sz.writes)):
            lst.append(value)

    out["append"], out["append total"] = median_ratio(sos_append, floor_append, len(blocks))
    lst.close()
    return out


def writers(work: Path, sz: Sizes, processes: int, count: int) -> float:
    """sos's throughput with ``processes`` writers over the floor's, best of the
    interleaved rounds for each."""
    best = {"sos": 0.0, "floor": 0.0}
    for r in range(sz.writer_rounds):
        for mode in ("floor", "sos") if r % 2 == 0 else ("sos", "floor"):
            root = str(work / f"writers-{mode}-{processes}-{r}")
            rate = shared.writers_rate(mode, root, processes, count)
            best[mode] = max(best[mode], rate)
            shutil.rmtree(root, ignore_errors=True)
    return best["sos"] / best["floor"]


def transactions(work: Path, sz: Sizes) -> float:
    """Sustained rate of back-to-back transactions of new keys over the
    no-fsync floor writing the same files (total time of each side)."""
    floor_root = str(work / "txn-floor")
    for i in range(256):
        os.makedirs(os.path.join(floor_root, f"{i:02x}"), exist_ok=True)
    db = sos.Dict(work / "txn-sos")
    rounds = [[(f"t{r}-{i}", {"n": i, "v": r}) for i in range(sz.txn_keys)] for r in range(sz.txns)]
    docs = [
        [
            (os.path.join(floor_root, _format.key_relpath(k)), _format.encode_document(k, v))
            for k, v in pairs
        ]
        for pairs in rounds
    ]

    def sos_txn(r: int) -> None:
        with db.transaction():
            for key, value in rounds[r]:
                db[key] = value
        # what a commit defers is paid by the next one: count it here
        with db.transaction():
            pass

    def floor_txn(r: int) -> None:
        def one(item: tuple[str, bytes]) -> None:
            path, data = item
            temp = path + ".floor-tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, path)

        if SOS_TXN_THREADS > 1:
            with ThreadPoolExecutor(SOS_TXN_THREADS) as pool:
                list(pool.map(one, docs[r]))
        else:
            for item in docs[r]:
                one(item)

    t_sos, t_floor = alternate(sos_txn, floor_txn, sz.txns)
    db.close()
    return ratio(t_floor, t_sos)


def measure(work: Path, quick: bool, on_disk: bool) -> dict[str, float]:
    """Every hot-path ratio (sos speed / floor speed) on the filesystem of ``work``."""
    sz = Sizes(quick)
    out = single_ops(work, sz)
    count = sz.writer_count if on_disk else sz.writer_count_tmpfs
    out["4 writers"] = writers(work, sz, 4, count)
    out["8 writers"] = writers(work, sz, 8, count)
    out["transactions"] = transactions(work, sz)
    return out

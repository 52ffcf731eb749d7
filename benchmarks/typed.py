"""Typed stores against untyped ones, and ``sos check``'s schema validation rate.

bench.py calls :func:`targets` (typed get and set of a small dataclass /
the untyped ones, goal >= 0.8 each) and :func:`check_targets` (``sos check``
of a store with schema.json, goal >= 20,000 documents/s). Run alone:

    python benchmarks/typed.py [--docs N] [--rounds R] [--only get-set|check]

(default N = 100,000 documents, R = 5) prints both, each with PASS/MISS.

The machine is shared, so every figure is paired: typed and untyped (or
with and without schema.json) run in alternating stretches, the order
flipped each time, and the figure is the median of the pairs' ratios; a
burst of load hits a few pairs, which the median leaves out.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sos

CHECK_GOAL = 20_000  # documents/s, issue 23


@dataclass
class User:
    name: str
    born: int
    langs: list[str] = field(default_factory=list)


def user(n: int) -> User:
    return User(f"user {n}", 1800 + n % 200, ["en", "fr"][: n % 3])


def _paired(
    first: Callable[[int], None], second: Callable[[int], None], ops: int, stretch: int
) -> list[tuple[float, float]]:
    """Seconds spent in ``first(i)`` and in ``second(i)`` for i in range(ops),
    per stretch of ``stretch`` ops: the two sides alternate stretch by
    stretch, which goes first flipped each time."""
    pairs = []
    sides = (first, second)
    for start in range(0, ops, stretch):
        times = [0.0, 0.0]
        order = (0, 1) if (start // stretch) % 2 == 0 else (1, 0)
        for side in order:
            fn = sides[side]
            t0 = time.perf_counter()
            for i in range(start, min(start + stretch, ops)):
                fn(i)
            times[side] = time.perf_counter() - t0
        pairs.append((times[0], times[1]))
    return pairs


def rates(work: Path, ops: int, rounds: int) -> dict[str, float]:
    """Typed and untyped get and set of the same small dataclass, paired.

    Returns ops/s of each (over all rounds) and ``get``/``set``: the median,
    over every pair of stretches of all rounds, of typed ops/s / untyped
    ops/s. The stretches are short (a get is microseconds: 5 keys read 10
    times each; a durable set one op), so the other processes of a loaded
    machine take their time slices in a few pairs, which the median leaves
    out, instead of in every long run of one side.
    """
    typed = sos.Dict(work / "typed", value_type=User)
    plain = sos.Dict(work / "plain")
    keys = [f"k{n}" for n in range(ops)]
    users = [user(n) for n in range(ops)]
    raw = [{"name": u.name, "born": u.born, "langs": u.langs} for u in users]

    def typed_set(i: int) -> None:
        typed[keys[i]] = users[i]

    def plain_set(i: int) -> None:
        plain[keys[i]] = raw[i]

    def typed_get(i: int) -> None:
        for _ in range(10):
            typed[keys[i]]

    def plain_get(i: int) -> None:
        for _ in range(10):
            plain[keys[i]]

    # Untimed first: every key on disk, and each path's first call (pydantic's
    # validators, the name caches) made before the clock runs.
    _paired(typed_set, plain_set, ops, ops)
    _paired(typed_get, plain_get, ops, ops)
    pairs: dict[str, list[tuple[float, float]]] = {"get": [], "set": []}
    for _ in range(rounds):
        pairs["set"] += _paired(typed_set, plain_set, ops, 1)
        pairs["get"] += _paired(typed_get, plain_get, ops, 5)
    typed.close()
    plain.close()
    out: dict[str, float] = {}
    for what, per in (("set", 1), ("get", 10)):
        done = ops * rounds * per
        out[f"typed_{what}"] = done / sum(t for t, _ in pairs[what])
        out[f"plain_{what}"] = done / sum(p for _, p in pairs[what])
        out[what] = statistics.median(p / t for t, p in pairs[what] if t > 0)
    return out


def targets(work: Path, ops: int, rounds: int, at_least: Callable[..., Any]) -> list[Any]:
    r = rates(work, ops, max(rounds, 3))
    return [
        at_least(
            f"typed {what} / untyped {what} (a small dataclass)",
            r[what],
            0.8,
            f"{r[f'typed_{what}']:,.0f} vs {r[f'plain_{what}']:,.0f} ops/s",
        )
        for what in ("get", "set")
    ]


def fill(root: Path, count: int) -> None:
    """A typed store of ``count`` small dataclass documents (one batch)."""
    with sos.Dict(root, value_type=User) as db, db.batch():
        for n in range(count):
            db[f"k{n}"] = user(n)


def check_rates(root: Path, count: int, rounds: int) -> dict[str, float]:
    """Documents/s of ``sos check ROOT`` (a process of its own, as a user
    runs it: Python's start and the imports count) on the typed store
    ``root`` of ``count`` documents, with its schema.json and without it
    (moved aside), paired.

    Returns the medians over the rounds: ``with``, ``without`` (docs/s),
    ``ratio`` (with / without, per round) and ``with_cpu`` (docs per
    CPU-second of the check process: what one idle core gives, whatever
    the load of the shared machine). One untimed check first warms the page
    cache, as any repeated check finds it.
    """
    schema = root / "schema.json"
    aside = root.parent / f"{root.name}.schema.json"

    cpus: list[float] = []

    def one(with_schema: bool) -> float:
        if with_schema != schema.exists():
            (aside if with_schema else schema).rename(schema if with_schema else aside)
        u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "sos", "check", str(root)], capture_output=True, text=True
        )
        elapsed = time.perf_counter() - t0
        u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or not proc.stdout.startswith("clean:"):
            raise RuntimeError(f"sos check {root}: {proc.stdout[:500]}{proc.stderr[-2000:]}")
        if with_schema:
            cpus.append(count / (u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime))
        return count / elapsed

    one(True)
    cpus.clear()
    withs, withouts, ratios = [], [], []
    for n in range(rounds):
        if n % 2:
            without, with_ = one(False), one(True)
        else:
            with_, without = one(True), one(False)
        withs.append(with_)
        withouts.append(without)
        ratios.append(with_ / without)
    if not schema.exists():
        aside.rename(schema)
    return {
        "with": statistics.median(withs),
        "without": statistics.median(withouts),
        "ratio": statistics.median(ratios),
        "with_cpu": statistics.median(cpus),
    }


def check_targets(work: Path, count: int, rounds: int, at_least: Callable[..., Any]) -> list[Any]:
    root = work / "check"
    fill(root, count)
    r = check_rates(root, count, max(rounds, 3))
    return [
        at_least(
            f"sos check with schema.json, {count:,} docs / {CHECK_GOAL:,} docs/s",
            r["with"] / CHECK_GOAL,
            1.0,
            f"{r['with']:,.0f} docs/s ({r['with_cpu']:,.0f} per CPU-second); without "
            f"schema.json {r['without']:,.0f} docs/s (with/without {r['ratio']:.2f})",
        )
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="documents sos check reads")
    parser.add_argument("--ops", type=int, default=1000, help="typed gets and sets per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["get-set", "check"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sos-typed-bench-") as work:
        if args.only != "check":
            r = rates(Path(work), args.ops, args.rounds)
            for what in ("get", "set"):
                verdict = "PASS" if r[what] >= 0.8 else "MISS"
                print(
                    f"typed {what} / untyped {what}: {r[what]:.2f} (goal >= 0.8) {verdict}  "
                    f"[{r[f'typed_{what}']:,.0f} vs {r[f'plain_{what}']:,.0f} ops/s; "
                    f"{args.rounds} rounds of {args.ops} keys: the median of short "
                    "paired stretches]",
                    flush=True,
                )
        if args.only != "get-set":
            root = Path(work) / "check"
            fill(root, args.docs)
            c = check_rates(root, args.docs, args.rounds)
            verdict = "PASS" if c["with"] >= CHECK_GOAL else "MISS"
            print(
                f"sos check with schema.json, {args.docs:,} docs: {c['with']:,.0f} docs/s, "
                f"{c['with'] / CHECK_GOAL:.2f}x the goal of {CHECK_GOAL:,} {verdict}  "
                f"[{c['with_cpu']:,.0f} docs per CPU-second; without schema.json: "
                f"{c['without']:,.0f} docs/s; with/without {c['ratio']:.2f}; "
                f"medians of {args.rounds} paired rounds, each a `sos check` process]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Typed stores against untyped ones, and ``sos check``'s schema validation rate.

bench.py calls :func:`targets` (typed get and set of a small dataclass /
the untyped ones, goal >= 0.8 each). Run alone, it measures ``sos check`` on
a store with a schema.json:

    python benchmarks/typed.py [N]     (default N = 20,000 documents)

and prints the validation rate with PASS/MISS against 20,000 documents/s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sos


@dataclass
class User:
    name: str
    born: int
    langs: list[str] = field(default_factory=list)


def user(n: int) -> User:
    return User(f"user {n}", 1800 + n % 200, ["en", "fr"][: n % 3])


def _best(fn: Callable[[], int], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        count = fn()
        best = max(best, count / (time.perf_counter() - t0))
    return best


def rates(work: Path, ops: int, rounds: int) -> dict[str, float]:
    """ops/s of typed and untyped get and set on the same small store, interleaved."""
    typed = sos.Dict(work / "typed", value_type=User)
    plain = sos.Dict(work / "plain")
    keys = [f"k{n}" for n in range(ops)]
    users = [user(n) for n in range(ops)]
    raw = [{"name": u.name, "born": u.born, "langs": u.langs} for u in users]

    def sets() -> tuple[float, float]:
        """Durable sets wait on a disk others share: typed and untyped alternate
        op by op (the order flipped each time), and each side's time is summed."""
        typed_time = plain_time = 0.0
        for i, (k, u, v) in enumerate(zip(keys, users, raw, strict=True)):
            first, second = (typed, u), (plain, v)
            if i % 2:
                first, second = second, first
            t0 = time.perf_counter()
            first[0][k] = first[1]
            t1 = time.perf_counter()
            second[0][k] = second[1]
            t2 = time.perf_counter()
            if i % 2:
                plain_time, typed_time = plain_time + t1 - t0, typed_time + t2 - t1
            else:
                typed_time, plain_time = typed_time + t1 - t0, plain_time + t2 - t1
        return ops / typed_time, ops / plain_time

    def typed_get() -> int:
        return sum(1 for _ in range(5) for k in keys if typed[k] is not None)

    def plain_get() -> int:
        return sum(1 for _ in range(5) for k in keys if plain[k] is not None)

    fns = {"typed_get": typed_get, "plain_get": plain_get}
    out = dict.fromkeys([*fns, "typed_set", "plain_set"], 0.0)
    typed_total = plain_total = 0.0
    for _ in range(rounds):
        typed_rate, plain_rate = sets()
        typed_total, plain_total = typed_total + 1 / typed_rate, plain_total + 1 / plain_rate
        for name, fn in fns.items():
            out[name] = max(out[name], _best(fn, 1))
    out["typed_set"], out["plain_set"] = rounds / typed_total, rounds / plain_total
    typed.close()
    plain.close()
    return out


def targets(work: Path, ops: int, rounds: int, at_least: Callable[..., Any]) -> list[Any]:
    r = rates(work, ops, rounds)
    return [
        at_least(f"typed {what} / untyped {what} (a small dataclass)", ratio, 0.8)
        for what, ratio in (
            ("get", r["typed_get"] / r["plain_get"]),
            ("set", r["typed_set"] / r["plain_set"]),
        )
    ]


def check_rate(root: Path, count: int) -> tuple[float, float]:
    """(documents/s of sos.check on a typed store, of the same store without its schema)."""
    with sos.Dict(root, value_type=User) as db, db.batch():
        for n in range(count):
            db[f"k{n}"] = user(n)
    t0 = time.perf_counter()
    assert sos.check(root) == []
    with_schema = count / (time.perf_counter() - t0)
    schema = (root / "schema.json").read_bytes()
    (root / "schema.json").unlink()
    t0 = time.perf_counter()
    assert sos.check(root) == []
    without = count / (time.perf_counter() - t0)
    (root / "schema.json").write_bytes(schema)
    return with_schema, without


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 20_000
    with tempfile.TemporaryDirectory(prefix="sos-typed-bench-") as work:
        r = rates(Path(work), 300, 3)
        for what in ("get", "set"):
            ratio = r[f"typed_{what}"] / r[f"plain_{what}"]
            verdict = "PASS" if ratio >= 0.8 else "MISS"
            print(
                f"typed {what} / untyped {what}: {ratio:.2f} (goal >= 0.8) {verdict}  "
                f"[{r[f'typed_{what}']:,.0f} vs {r[f'plain_{what}']:,.0f} ops/s]"
            )
        with_schema, without = check_rate(Path(work) / "check", count)
        verdict = "PASS" if with_schema >= 20_000 else "MISS"
        print(
            f"sos check with schema.json, {count:,} docs: {with_schema:,.0f} docs/s "
            f"(goal >= 20,000) {verdict}  [without the schema: {without:,.0f} docs/s]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

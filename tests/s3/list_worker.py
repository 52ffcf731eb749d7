"""One worker process of the List-without-the-lease tests
(tests/s3/test_s3_list_swap.py).

    python list_worker.py ROLE URL WORKER LOG OPS [DIE]

ROLE ``append`` appends ``{"w": WORKER, "i": i}`` OPS times (no lease: a
compare-and-swap of order.txt); ``insert`` inserts ``{"p": WORKER, "i": i}``
at the front (under the lease, the swap rebased over appends); ``txn`` runs
OPS transactions, each inserting ``{"h": TOKEN}`` at the front and appending
``{"t": TOKEN}``, run again on :class:`sos.ConflictError`. Each worker logs
one JSON line per operation *after it returned*: what it logged was
acknowledged.

DIE (``after-mark``, ``after-record``, ``after-order-applied`` or
``before-swap``) makes the process SIGKILL itself at that point of its
first transaction (or append): right after the transaction's mark on
order.txt landed, after its record landed, after its apply replaced
order.txt, or before an append's swap of order.txt (its item written).
Before dying it logs ``{"dying": POINT, "token": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import sos
from sos.storage.s3.storage import S3Storage
from sos.txn import MARK, RECORD


def die_at(point: str, log: Any, token: list[str]) -> None:
    """Wrap S3Storage.put_object so that this process SIGKILLs itself at ``point``."""
    original = S3Storage.put_object
    state = {"recorded": False}

    def put_object(self: S3Storage, name: str, data: bytes, **conditions: str) -> str | None:
        if point == "before-swap" and name == "order.txt":
            kill(log, point, token)
        result = original(self, name, data, **conditions)
        if result is None:
            return result
        if point == "after-mark" and name == "order.txt" and MARK in data:
            kill(log, point, token)
        if name == RECORD:
            state["recorded"] = True
            if point == "after-record":
                kill(log, point, token)
        if point == "after-order-applied" and name == "order.txt" and state["recorded"]:
            kill(log, point, token)
        return result

    S3Storage.put_object = put_object  # type: ignore[method-assign]


def kill(log: Any, point: str, token: list[str]) -> None:
    log.write(json.dumps({"dying": point, "token": token[0]}) + "\n")
    log.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    role, url, worker, log_path, ops = sys.argv[1:6]
    die = sys.argv[6] if len(sys.argv) > 6 else None
    token = [""]
    with sos.List(url) as lst, open(log_path, "a", encoding="utf-8") as log:
        if die:
            die_at(die, log, token)
        for i in range(int(ops)):
            token[0] = f"{role}-{worker}-{i}"
            if role == "append":
                lst.append({"w": worker, "i": i})
                entry: dict[str, Any] = {"append": [worker, i]}
            elif role == "insert":
                lst.insert(0, {"p": worker, "i": i})
                entry = {"insert": [worker, i]}
            else:
                conflicts = 0
                while True:
                    try:
                        with lst.transaction():
                            lst.insert(0, {"h": token[0]})
                            lst.append({"t": token[0]})
                        break
                    except sos.ConflictError:
                        conflicts += 1
                entry = {"txn": token[0], "conflicts": conflicts}
            log.write(json.dumps(entry) + "\n")
            log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

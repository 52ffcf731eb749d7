"""One worker process of the cluster test (tests/s3/test_cluster.py).

    python cluster_worker.py ROLE URL WORKER LOG STOP_FILE DEADLINE MAX_OPS

ROLE is ``append`` (appends ``{"w", "i"}`` to the List at URL), ``txn``
(increments ``counter`` in a transaction that also writes the marker key
``txn-W-I`` holding the new count) or ``set`` (sets a random key of its own,
``set-W-K``, to ``{"w", "i"}``). Every operation is logged as one JSON line
*before* it is sent (``try``) and one when it returned or raised (``done``,
with the error's class and message), flushed each time, so the test knows
what was acknowledged, what may have landed, and what each failure said.
Runs until STOP_FILE exists, the wall-clock DEADLINE passes or MAX_OPS were
tried. Errors do not stop it: the store handle it opened at the start must
carry on once the server is back.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from typing import Any

import sos

# After a failed call, a short pause: the call itself already waited
# through the client's retries.
PAUSE_AFTER_ERROR = 0.2


def main() -> int:
    role, url, worker, log_path, stop_file = sys.argv[1:6]
    deadline, max_ops = float(sys.argv[6]), int(sys.argv[7])
    rng = random.Random(f"{role}-{worker}")
    store: Any = sos.List(url) if role == "append" else sos.Dict(url)
    with open(log_path, "a", encoding="utf-8") as log:

        def write(record: dict[str, Any]) -> None:
            log.write(json.dumps(record) + "\n")
            log.flush()

        for i in range(max_ops):
            if os.path.exists(stop_file) or time.time() > deadline:
                break
            record: dict[str, Any] = {"i": i}
            if role == "set":
                record["key"] = f"set-{worker}-{rng.randrange(16)}"
            write({"event": "try", **record, "t0": time.time()})
            t0 = time.time()
            try:
                if role == "append":
                    store.append({"w": worker, "i": i})
                elif role == "txn":
                    with store.transaction():
                        read = store.get("counter", 0)
                        store["counter"] = read + 1
                        store[f"txn-{worker}-{i}"] = read + 1
                    record["read"] = read
                else:
                    store[record["key"]] = {"w": worker, "i": i}
            except sos.Error as exc:
                write({"event": "done", **record, "ok": False, "t0": t0, "t1": time.time(),
                       "error": type(exc).__name__, "sos": True, "message": str(exc)})  # fmt: skip
                time.sleep(PAUSE_AFTER_ERROR)
            except Exception as exc:  # what the test must never see: logged, then on
                write({"event": "done", **record, "ok": False, "t0": t0, "t1": time.time(),
                       "error": type(exc).__name__, "sos": False,
                       "message": "".join(traceback.format_exception(exc))})  # fmt: skip
                time.sleep(PAUSE_AFTER_ERROR)
            else:
                write({"event": "done", **record, "ok": True, "t0": t0, "t1": time.time()})
    try:
        store.close()
    except sos.Error as exc:  # the lease release may fail the same way
        print(f"close: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

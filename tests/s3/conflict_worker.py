"""One worker process of the transactions-against-plain-sets test
(tests/s3/test_s3_conflicts.py).

    python conflict_worker.py ROLE URL WORKER LOG OPS

ROLE ``txn`` increments ``c["n"]`` of the Dict at URL in a transaction,
OPS times, running it again on :class:`sos.ConflictError`; each committed
one logs the token it read, the token it wrote and when its read began and
ended (``time.time()``: every worker runs on this machine). ROLE ``set``
does OPS plain sets of ``c`` to ``{"n": -1, "token": ...}``, logging when
each began and returned. One JSON line per operation.
"""

from __future__ import annotations

import json
import sys
import time

import sos


def main() -> int:
    role, url, worker, log_path, ops = sys.argv[1:6]
    with sos.Dict(url) as db, open(log_path, "a", encoding="utf-8") as log:
        for i in range(int(ops)):
            token = f"{role}-{worker}-{i}"
            if role == "set":
                start = time.time()
                db["c"] = {"n": -1, "token": token}
                entry = {"set": token, "start": start, "end": time.time()}
                time.sleep(0.005)  # spread the sets over the transactions' run
            else:
                conflicts = 0
                while True:
                    try:
                        with db.transaction():
                            before_read = time.time()
                            current = db["c"]
                            after_read = time.time()
                            db["c"] = {"n": current["n"] + 1, "token": token}
                        break
                    except sos.ConflictError:
                        conflicts += 1
                entry = {
                    "read": current["token"],
                    "wrote": token,
                    "before_read": before_read,
                    "after_read": after_read,
                    "conflicts": conflicts,
                }
            log.write(json.dumps(entry) + "\n")
            log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

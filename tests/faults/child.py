"""The process the fault suite attacks: one operation on one store.

Run as ``python child.py SPEC`` (SPEC is JSON). It opens the store (library
operations) or nothing (CLI operations), prints ``ready`` and waits in
``select`` until its standard input becomes readable, so that strace can
attach first and count only the syscalls of the operation itself. The
outcome is written as JSON to the descriptor ``result_fd`` with ``writev``, a syscall
the suite never injects into, so the verdict survives any fault.

Outcome: ``{"returned": value}`` or ``{"raised": type, "message": text,
"carried": [every JSON value the exception and its chain hold]}``; the
judge looks in ``carried`` for a popped value the disk no longer has.
"""

from __future__ import annotations

import json
import os
import select
import sys
from typing import Any


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def carried(exc: BaseException) -> list[Any]:
    """Every value an exception (and its cause and context) carries."""
    out: list[Any] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out += [_jsonable(a) for a in exc.args]
        for name, value in vars(exc).items():
            if not name.startswith("__"):
                out.append(_jsonable(value))
                if isinstance(value, (tuple, list)):
                    out += [_jsonable(v) for v in value]
        out += [_jsonable(n) for n in getattr(exc, "__notes__", [])]
        exc = exc.__cause__ or exc.__context__
    return out


def main() -> None:
    spec = json.loads(sys.argv[1])
    import sos
    import sos.cli

    names: dict[str, Any] = {"sos": sos, "result": None}
    if spec.get("cli") is None:
        names["s"] = sos.open(spec["root"])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    select.select([0], [], [])
    if spec.get("prelude"):  # a resource limit, set once the store is open
        exec(spec["prelude"], names)
    try:
        if spec.get("cli") is not None:
            status = sos.cli.main(spec["cli"])
            if status:
                raise SystemExit(status)
        else:
            exec(spec["code"], names)
        outcome: dict[str, Any] = {"returned": _jsonable(names["result"])}
    except BaseException as exc:
        outcome = {
            "raised": type(exc).__name__,
            "message": str(exc)[:500],
            "carried": carried(exc),
        }
    os.writev(spec["result_fd"], [json.dumps(outcome).encode()])


if __name__ == "__main__":
    main()

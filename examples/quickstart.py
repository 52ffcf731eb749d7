"""The quick start: a Dict and a List, and what they look like on disk.

Run it from anywhere: it works in a fresh temporary directory (or in the
directory given as its first argument) and prints what it did.
"""

from __future__ import annotations

import os
import sys
import tempfile

import sos


def main(workdir: str) -> None:
    users = sos.Dict(os.path.join(workdir, "users"))  # created if missing
    users["ada"] = {"born": 1815, "langs": ["en", "fr"]}
    users["grace"] = {"born": 1906, "langs": ["en"]}
    print("ada was born in", users["ada"]["born"])

    # Values are copies: change one and write it back.
    ada = users["ada"]
    ada["langs"].append("it")
    users["ada"] = ada
    print("ada speaks", ", ".join(users["ada"]["langs"]))

    todo = sos.List(os.path.join(workdir, "todo"))
    todo.append("write tests")
    todo.insert(0, "design format")
    todo.extend(["ship it", "celebrate"])
    print("to do:", list(todo))

    # Any handle, in any process, sees the same data: there is nothing to flush.
    with sos.open(os.path.join(workdir, "users")) as same:
        assert same["ada"]["born"] == 1815
        print("keys, sorted:", sorted(same))

    print("ada's file:", users.path_of("ada"))
    with open(users.path_of("ada"), encoding="utf-8") as f:
        print(f.read(), end="")
    users.close()
    todo.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)

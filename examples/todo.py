"""A to-do list kept in a sos List across runs.

    python examples/todo.py add "buy milk"
    python examples/todo.py list
    python examples/todo.py done 1
    python examples/todo.py undo        # puts the last finished task back

The list lives in ./todo.sos (or $TODO_STORE): plain JSON files you can
read, grep or commit. Finished tasks move to a second List, so nothing is lost.
"""

from __future__ import annotations

import argparse
import os
import sys

import sos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="todo", description="A to-do list kept in sos.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show the open tasks")
    add = sub.add_parser("add", help="add a task")
    add.add_argument("text", nargs="+")
    done = sub.add_parser("done", help="finish task N (as numbered by list)")
    done.add_argument("number", type=int)
    sub.add_parser("undo", help="reopen the last finished task")
    args = parser.parse_args(argv)

    root = os.environ.get("TODO_STORE", "todo.sos")
    with (
        sos.List(os.path.join(root, "open")) as tasks,
        sos.List(os.path.join(root, "done")) as finished,
    ):
        if args.command == "add":
            tasks.append(" ".join(args.text))
            print(f"added #{len(tasks)}")
        elif args.command == "list":
            if not len(tasks):
                print("nothing to do")
            for number, text in enumerate(tasks, 1):
                print(f"{number:3}. {text}")
        elif args.command == "done":
            if not 1 <= args.number <= len(tasks):
                print(f"todo: no task #{args.number}", file=sys.stderr)
                return 1
            text = tasks[args.number - 1]
            finished.append(text)  # first keep it, then remove it: a crash loses nothing
            del tasks[args.number - 1]
            print(f"done: {text}")
        elif args.command == "undo":
            if not len(finished):
                print("todo: nothing to undo", file=sys.stderr)
                return 1
            text = finished[-1]
            tasks.append(text)
            finished.pop()
            print(f"reopened: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

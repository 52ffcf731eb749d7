"""sos check and sos adopt."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sos
from sos import format as _format
from sos.cli.framework import STORE, Failure, _bar, _document, _dumps, _open, arg, command
from sos.format.names import LOST_FOUND
from sos.format.order import Order, guess_order, split_id
from sos.storage.base import Storage
from sos.storage.registry import open_storage, scheme_of


@command(
    "check",
    "report every problem in a store (exit 1 if any); --repair the safe ones",
    "sos check data/users\nsos check --repair data/todo\nsos check -q data/users && echo clean",
    STORE,
    arg("--repair", action="store_true", help="fix what is safe, printing each action"),
    arg("--json", action="store_true", help="one JSON object per problem"),
    arg("-q", "--quiet", action="store_true", help="print nothing on a clean store"),
)
def cmd_check(args: argparse.Namespace) -> int:
    problems = sos.check(args.store, repair=args.repair, progress=_bar("checking"))
    for problem in problems:
        if args.json:
            print(_dumps({k: v for k, v in vars(problem).items() if v is not None}, indent=None))
        else:
            print(f"{problem.code}: {problem}")
    sys.stdout.flush()  # findings before the summary, also when both go to one pipe
    if args.repair and problems:
        left = sos.check(args.store)
        if left:
            print(
                f"sos: {args.store}: {len(left)} problem(s) need you (see the commands above)",
                file=sys.stderr,
            )
            return 1
        print(f"sos: {args.store}: repaired, now clean", file=sys.stderr)
        return 0
    if problems:
        fixable = sum(p.code.repairable for p in problems)
        hint = (
            f"sos check --repair {shlex.quote(args.store)} fixes {fixable} of them"
            if fixable
            else "each needs you: see the commands above"
        )
        print(f"sos: {args.store}: {len(problems)} problem(s); {hint}", file=sys.stderr)
        return 1
    if not (args.quiet or args.json):  # silence would look like a check that never ran
        with _open(args.store) as db:
            count = len(db)
        noun = ("item" if isinstance(db, sos.List) else "key") + ("" if count == 1 else "s")
        print(f"clean: {count:,} {noun}, 0 problems")
    return 0


@command(
    "adopt",
    "move document files into a store (a list: append their values); removes each FILE",
    "sos adopt data/todo data/todo/lost+found/3f….json\n"
    "sos adopt data/todo data/todo/lost+found/*.json   # a list: in the items' own order",
    STORE,
    arg("file", metavar="FILE", nargs="+", help='a {"key": ..., "value": ...} document file'),
)
def cmd_adopt(args: argparse.Namespace) -> int:
    """A List's items are appended in their own order (see
    :func:`_adoption_order`), not in the order the shell's glob gives
    (hashed names); other documents keep theirs. All are stored in one
    write, and each file is removed only after it. A FILE may be a URL
    (``s3://…/lost+found/….json``): it is read and removed through its storage."""
    with _Sources(args.store) as sources:
        docs = []
        for path in dict.fromkeys(args.file):
            data = sources.read(path)
            if data is None:
                raise Failure(f"{path}: no such file (adopted already?)")
            docs.append((path, *_document(data, path)))
        with _open(args.store) as db:
            if isinstance(db, sos.List):
                values = [value for _, _, value in _adoption_order(docs, sources)]
                start = len(db)
                db.extend(values)
                done = f"appended as index {start}"
                if len(values) > 1:
                    last = start + len(values) - 1
                    done = f"appended {len(values)} items as indexes {start}-{last}"
            else:
                done = _adopt_documents(args.store, db, docs)
        # Moved in, not copied: adopting the same file again cannot add it twice.
        for path, _, _ in docs:
            sources.remove(path)
    moved = docs[0][0] if len(docs) == 1 else f"{len(docs)} files"
    print(f"sos: {done}; moved {moved} into {args.store}", file=sys.stderr)
    return 0


def _adopt_documents(store: str, db: sos.Dict[Any], docs: list[tuple[str, str, Any]]) -> str:
    """Set a Dict's keys from ``docs``: none if any key holds another value."""
    todo = []
    for path, key, value in docs:
        if key in db and db[key] == value:
            continue
        if key in db:
            raise Failure(
                f"{store}: key {key!r} already holds another value; "
                f"compare with {db.path_of(key)} (nothing was adopted)"
            )
        todo.append((path, key, value))
    for path, key, value in todo:
        try:
            db[key] = value
        except (TypeError, ValueError) as exc:
            raise Failure(f"{path}: {exc}") from None
    if not todo:
        if len(docs) == 1:
            return f"key {docs[0][1]!r} already holds this value"
        return "every key already holds its value"
    return f"key {todo[0][1]!r} set" if len(docs) == 1 else f"{len(todo)} keys set"


class _Sources:
    """The files ``sos adopt`` takes, by path or URL, each read, dated and
    removed through a storage: the store's own for a URL inside the store
    (``memory://…`` too), else that of the file's directory (one per directory)."""

    def __init__(self, store: str) -> None:
        self._store = store.rstrip("/") + "/"
        self._storages: dict[str, Storage] = {}

    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        for storage in self._storages.values():
            storage.close()

    def _split(self, path: str) -> tuple[Storage, str]:
        """The storage of ``path`` and its name there (perhaps ``lost+found/…``)."""
        if scheme_of(path) is None:
            absolute = Path(path).absolute()  # the user's file: its directory's storage
            directory, name = str(absolute.parent), absolute.name
        elif path.startswith(self._store):
            directory, name = self._store.rstrip("/"), path[len(self._store) :]
        else:
            directory, _, name = path.rpartition("/")
        storage = self._storages.get(directory)
        if storage is None:
            storage = self._storages[directory] = open_storage(directory)
        return storage, name

    def read(self, path: str) -> bytes | None:
        storage, name = self._split(path)
        try:
            return storage.read(name)
        except FileNotFoundError:
            return None

    def modified(self, path: str) -> float | None:
        storage, name = self._split(path)
        return storage.modified(name)

    def remove(self, path: str) -> None:
        storage, name = self._split(path)
        storage.remove([name])

    def records(self, paths: Iterable[str]) -> Iterator[Order]:
        """The lost+found records (``sos check --repair`` writes them) of the
        directories ``paths`` are in."""
        seen: set[tuple[int, str]] = set()
        for path in paths:
            storage, name = self._split(path)
            directory = name.rpartition("/")[0]
            inside = (directory or storage.url.replace(os.sep, "/")).rstrip("/")
            if inside.rpartition("/")[2] != LOST_FOUND:
                continue
            record = f"{directory}/{_format.ORDER_NAME}" if directory else _format.ORDER_NAME
            if (id(storage), record) in seen:
                continue
            seen.add((id(storage), record))
            try:
                data = storage.read(record)
            except FileNotFoundError:
                continue
            try:
                yield Order.decode(data, f"{storage.url.rstrip('/')}/{record}")
            except sos.CorruptError as exc:
                print(f"sos: {exc} (ordering by item ids and times instead)", file=sys.stderr)


def _adoption_order(
    docs: list[tuple[str, str, Any]], sources: _Sources
) -> list[tuple[str, str, Any]]:
    """List items (keys that are item ids) in their order: first those a
    lost+found record names, in its order; then the others in
    :func:`sos.format.order.guess_order`'s (by number within a writer's prefix,
    prefixes by their files' earliest modification time); then any other
    documents, as given."""
    items: dict[str, list[tuple[str, str, Any]]] = {}
    others = []
    for doc in docs:
        try:
            split_id(doc[1])
        except ValueError:
            others.append(doc)
            continue
        items.setdefault(doc[1], []).append(doc)
    ranks: dict[str, int] = {}
    for record in sources.records(d[0] for d in docs):
        for item_id in items:
            index = record.index_of(item_id)
            if index is not None and item_id not in ranks:
                ranks[item_id] = index
    recorded = sorted(ranks, key=ranks.__getitem__)

    def earliest(prefix: str, numbers: list[int]) -> float | None:
        times = [sources.modified(d[0]) for n in numbers for d in items[f"{prefix}-{n}"]]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    rest = guess_order((i for i in items if i not in ranks), earliest)
    return [doc for i in [*recorded, *rest] for doc in items[i]] + others

"""The ``sos`` command: read, write, edit, check and repair a store from the shell.

Hashed file names make a store awkward to use by hand; this gives the names
back (``sos path``, ``sos edit``) and keeps the shell conventions: values are
JSON on stdout, errors one line on stderr, exit 0 on success, 1 when a key is
missing or a check finds problems, 2 on usage errors, and no traceback for a
user's mistake. Built on the public API; :func:`main` can be called in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sos

from ._check import split_conflict

__all__ = ["main"]

_CHUNK = 500  # items per group commit when loading: progress moves, memory stays flat


class UsageError(Exception):
    """A mistake in the command line: exit status 2."""


class Failure(Exception):
    """The command could not do what was asked: exit status 1."""


# -- helpers -------------------------------------------------------------------------


def _dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _read_input(source: str) -> str:
    """The text of FILE, or of stdin for ``-``."""
    if source == "-":
        return sys.stdin.read()
    try:
        with open(source, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise Failure(f"{source}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise Failure(f"{source}: not UTF-8 (byte {exc.start})") from None


def _value_arg(text: str) -> Any:
    if text == "-":
        return _parse_json(sys.stdin.read(), "stdin")
    return _parse_json(text, "VALUE")


def _open(store: str) -> sos.Dict | sos.List:
    return sos.open(store)


def _index(db: sos.List, key: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise UsageError(f"{db.path} is a list: KEY must be an index, not {key!r}") from None


def _path_of(db: sos.Dict | sos.List, key: str) -> str:
    if isinstance(db, sos.List):
        index = _index(db, key)
        try:
            return db.path_of(index)
        except IndexError:
            raise Failure(f"{db.path}: no index {index} (the list has {len(db)} items)") from None
    try:
        return db.path_of(key)
    except ValueError as exc:
        raise UsageError(f"{db.path}: bad key {key!r}: {exc}") from None


def _missing(db: sos.Dict | sos.List, key: str) -> Failure:
    if isinstance(db, sos.List):
        return Failure(f"{db.path}: no index {key} (the list has {len(db)} items)")
    return Failure(f"{db.path}: no key {key!r} (its file would be {db.path_of(key)})")


def _progress(items: Iterable[Any], total: int, desc: str) -> Iterator[Any]:
    """``items`` with a bar on stderr when it is a terminal, and nothing otherwise."""
    from tqdm import tqdm

    yield from tqdm(
        items, total=total, desc=desc, unit="file", file=sys.stderr, disable=None, leave=False
    )


def _bar(desc: str) -> Callable[[int], Any]:
    def start(total: int) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=None, leave=False)

    return start


def _noun(db: sos.Dict | sos.List, count: int) -> str:
    noun = "key" if isinstance(db, sos.Dict) else "item"
    return noun if count == 1 else noun + "s"


def _print_key(key: str) -> None:
    # One key per line; a key that would break that (a newline, a control
    # character) or that starts with a quote is printed as a JSON string.
    if key.startswith('"') or not key.isprintable():
        print(_dumps(key))
    else:
        print(key)


# -- commands --------------------------------------------------------------------------


def cmd_get(args: argparse.Namespace) -> int:
    db = _open(args.store)
    with db:
        try:
            value = db[_index(db, args.key)] if isinstance(db, sos.List) else db[args.key]
        except (KeyError, IndexError):
            raise _missing(db, args.key) from None
    if args.raw and isinstance(value, str):
        print(value)
    else:
        print(_dumps(value))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    value = _value_arg(args.value)
    with _open(args.store) as db:
        try:
            if isinstance(db, sos.List):
                db[_index(db, args.key)] = value
            else:
                db[args.key] = value
        except IndexError:
            raise _missing(db, args.key) from None
    return 0


def cmd_del(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        try:
            if isinstance(db, sos.List):
                del db[_index(db, args.key)]
            else:
                del db[args.key]
        except (KeyError, IndexError):
            raise _missing(db, args.key) from None
    return 0


def cmd_append(args: argparse.Namespace) -> int:
    value = _value_arg(args.value)
    with _open(args.store) as db:
        if not isinstance(db, sos.List):
            raise Failure(f"{db.path}: is a dict store; use sos set STORE KEY VALUE")
        db.append(value)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        keys: list[Any] = list(range(len(db))) if isinstance(db, sos.List) else sorted(db)
    if args.json:
        print(_dumps(keys))
    elif args.null:
        sys.stdout.write("".join(f"{k}\0" for k in keys))
    else:
        for key in keys:
            _print_key(str(key))
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        total = len(db)
        if isinstance(db, sos.List):
            values = list(_progress(db, total, "reading"))
            lines = values
            whole: Any = values
        else:
            whole = dict(sorted(_progress(db.items(), total, "reading")))
            lines = [{"key": k, "value": v} for k, v in whole.items()]
    if args.jsonl:
        out = sys.stdout
        for line in lines:
            out.write(_dumps(line, indent=None) + "\n")
    else:
        print(_dumps(whole))
    return 0


def _parse_load(text: str, source: str) -> tuple[str, list[Any]]:
    """``("object", pairs)`` or ``("lines", values)`` from JSON, a JSON array, or JSON Lines."""
    try:
        whole = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as first:
        values = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                values.append(json.loads(line, parse_constant=_reject_constant))
            except json.JSONDecodeError as exc:
                err, at = (first, first.lineno) if number == 1 else (exc, number)
                # Line 1 not JSON either: neither JSON nor JSON Lines, report the JSON error.
                raise Failure(
                    f"{source}: invalid JSON at line {at}, column {err.colno}: {err.msg}"
                ) from None
        return "lines", values
    except ValueError as exc:
        raise Failure(f"{source}: {exc}") from None
    if isinstance(whole, dict):
        return "object", list(whole.items())
    if isinstance(whole, list):
        return "lines", whole
    raise Failure(f"{source}: expected a JSON object, a JSON array or JSON Lines")


def _as_pairs(values: list[Any], source: str) -> list[tuple[str, Any]]:
    pairs = []
    for n, doc in enumerate(values, 1):
        if not (isinstance(doc, dict) and set(doc) == {"key", "value"}):
            raise Failure(
                f'{source}: entry {n} is not {{"key": ..., "value": ...}}; a dict store '
                "loads a JSON object or such entries"
            )
        pairs.append((doc["key"], doc["value"]))
    return pairs


def _in_chunks(entries: list[Any], write: Callable[[list[Any]], None]) -> None:
    """Write in group commits of _CHUNK entries, the bar counting entries."""
    bar = _bar("writing")(len(entries))
    try:
        for start in range(0, len(entries), _CHUNK):
            chunk = entries[start : start + _CHUNK]
            write(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()


def cmd_load(args: argparse.Namespace) -> int:
    shape, data = _parse_load(_read_input(args.file), "stdin" if args.file == "-" else args.file)
    try:
        db = _open(args.store)
    except sos.Error:
        if os.path.exists(os.path.join(args.store, "sos.json")):
            raise
        kind = args.kind or ("dict" if shape == "object" else "list")
        db = sos.Dict(args.store) if kind == "dict" else sos.List(args.store)
    with db:
        if isinstance(db, sos.Dict):
            pairs = data if shape == "object" else _as_pairs(data, args.file)
            _in_chunks(pairs, db.update)
            count = len(pairs)
        else:
            if shape == "object":
                raise Failure(f"{db.path}: is a list store; load a JSON array or JSON Lines")
            _in_chunks(data, db.extend)
            count = len(data)
    print(
        f"sos: loaded {count} {_noun(db, count)} into {args.store}",
        file=sys.stderr,
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        kind = "list" if isinstance(db, sos.List) else "dict"
        count = len(db)
    with open(os.path.join(args.store, "sos.json"), "rb") as f:
        fmt = json.load(f).get("format")
    files = size = disk = 0
    for root, dirs, names in os.walk(args.store):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            st = os.lstat(os.path.join(root, name))
            files += 1
            size += st.st_size
            disk += getattr(st, "st_blocks", 0) * 512
    info = {
        "store": args.store,
        "kind": kind,
        "format": fmt,
        "count": count,
        "files": files,
        "bytes": size,
        "disk_bytes": disk,
    }
    if args.json:
        print(_dumps(info))
    else:
        for name, value in info.items():
            print(f"{name + ':':11} {value}")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        path = _path_of(db, args.key)
    print(path, flush=True)
    if not os.path.exists(path):
        print(f"sos: {args.store}: no key {args.key!r} yet; {path} would hold it", file=sys.stderr)
        return 1
    return 0


def _document(data: bytes, where: str) -> tuple[str, Any]:
    """``(key, value)`` of a document's bytes, or Failure saying file, line and column."""
    if split_conflict(data) is not None:
        line = data[: data.find(b"<<<<<<<")].count(b"\n") + 1
        raise Failure(f"{where}:{line}:1: git conflict markers: keep one side and remove them")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise Failure(f"{where}: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise Failure(f"{where}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise Failure(f"{where}: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"key", "value"} or not isinstance(doc["key"], str):
        raise Failure(f'{where}:1:1: must be a JSON object with exactly "key" and "value"')
    return doc["key"], doc["value"]


def _is_document(data: bytes) -> bool:
    try:
        _document(data, "")
    except Failure:
        return False
    return True


def _name_of(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".json"


def _write(db: sos.Dict | sos.List, key: str, value: Any, where: str) -> None:
    try:
        if isinstance(db, sos.List):
            db[int(key)] = value
        else:
            db[key] = value
    except (TypeError, ValueError) as exc:
        raise Failure(f"{where}: {exc}") from None


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def cmd_edit(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        path = _path_of(db, args.key)
        original = _read_bytes(path)
        if isinstance(db, sos.List):
            expected = os.path.basename(path)  # an item: its key (id) hashes to this name
            if original is None:
                raise Failure(f"{path}: the list names this item but its file is missing")
        else:
            expected = _name_of(args.key)
        start = original
        if start is None:
            start = (_dumps({"key": args.key, "value": None}) + "\n").encode()
        fd, copy = tempfile.mkstemp(prefix="sos-edit-", suffix=".json")
        with os.fdopen(fd, "wb") as f:
            f.write(start)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        while True:
            try:
                status = subprocess.call([*shlex.split(editor), copy])
            except OSError as exc:
                raise Failure(
                    f"cannot run editor {editor!r}: {exc.strerror}; {copy} kept"
                ) from None
            if status != 0:
                raise Failure(
                    f"editor {editor!r} exited with status {status}; nothing written, "
                    f"your copy is {copy}"
                )
            edited = _read_bytes(copy) or b""
            if edited == start and _is_document(start):  # a conflicted file stays a problem
                os.unlink(copy)
                print(f"sos: no changes; {path} left as it was", file=sys.stderr)
                return 0
            try:
                key, value = _document(edited, copy)
                if _name_of(key) != expected:
                    raise Failure(
                        f'{copy}:1:1: "key" must stay {args.key!r} (found {key!r}); '
                        "use sos set to make another key"
                    )
            except Failure as exc:
                print(f"sos: {exc}", file=sys.stderr)
                print("Edit again? [Y/n] ", end="", file=sys.stderr, flush=True)
                answer = sys.stdin.readline()
                if not answer or answer.strip().lower() in ("n", "no"):
                    if not answer:
                        print(file=sys.stderr)
                    raise Failure(f"nothing written to {path}; your copy is {copy}") from None
                continue
            if _read_bytes(path) != original:
                raise Failure(
                    f"{path} changed while you edited it; nothing written, your copy is {copy}"
                )
            _write(db, args.key, value, copy)
            os.unlink(copy)
            print(f"sos: wrote {path}", file=sys.stderr)
            return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    with _open(args.store) as db:
        path = _path_of(db, args.key)
        data = _read_bytes(path)
        if data is None:
            raise _missing(db, args.key)
        sides = split_conflict(data)
        if sides is None:
            raise Failure(f"{path}: has no git conflict markers; nothing to resolve")
        side = "ours" if args.ours else "theirs"
        chosen = sides[0] if args.ours else sides[1]
        key, value = _document(chosen, f"{path} ({side})")
        if _name_of(key) != os.path.basename(path):
            raise Failure(f"{path} ({side}): holds key {key!r}, which does not belong in this file")
        _write(db, args.key, value, path)
    print(f"sos: {path}: kept {side}", file=sys.stderr)
    return 0


def cmd_adopt(args: argparse.Namespace) -> int:
    data = _read_bytes(args.file)
    if data is None:
        raise Failure(f"{args.file}: no such file")
    key, value = _document(data, args.file)
    with _open(args.store) as db:
        if isinstance(db, sos.List):
            db.append(value)
            print(
                f"sos: appended as index {len(db) - 1}; you may now remove {args.file}",
                file=sys.stderr,
            )
            return 0
        if key in db and db[key] != value:
            raise Failure(
                f"{args.store}: key {key!r} already holds another value; "
                f"compare with {db.path_of(key)}"
            )
        _write(db, key, value, args.file)
    print(f"sos: key {key!r} set; you may now remove {args.file}", file=sys.stderr)
    return 0


# What repair leaves to a person: it never guesses which bytes of a value are right.
_NEEDS_YOU = frozenset({"invalid-json", "conflict-markers", "bad-shape", "key-conflict"})


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
        fixable = sum(p.code not in _NEEDS_YOU for p in problems)
        hint = (
            f"sos check --repair {shlex.quote(args.store)} fixes {fixable} of them"
            if fixable
            else "each needs you: see the commands above"
        )
        print(f"sos: {args.store}: {len(problems)} problem(s); {hint}", file=sys.stderr)
        return 1
    return 0


# -- the parser --------------------------------------------------------------------------

_COMMANDS: list[tuple[str, Callable[[argparse.Namespace], int], str, str]] = [
    (
        "get",
        cmd_get,
        "print a value as JSON",
        "sos get data/users ada\nsos get data/todo -1      # a list: an index\n"
        "sos get -r data/todo 0   # a string without quotes",
    ),
    (
        "set",
        cmd_set,
        "set a key (a list: an index) to a JSON value",
        "sos set data/users ada '{\"born\": 1815}'\necho '[1, 2]' | sos set data/users nums -",
    ),
    (
        "del",
        cmd_del,
        "remove a key (a list: the item at an index)",
        "sos del data/users ada\nsos del data/todo 0",
    ),
    (
        "append",
        cmd_append,
        "append a JSON value to a list",
        "sos append data/todo '\"buy milk\"'\necho '{\"done\": false}' | sos append data/todo -",
    ),
    (
        "keys",
        cmd_keys,
        "print the keys, sorted, one per line (a list: its indexes)",
        "sos keys data/users\nsos keys -0 data/users | xargs -0 -n1 sos get data/users",
    ),
    (
        "dump",
        cmd_dump,
        "print the whole store as JSON (or JSON Lines)",
        "sos dump data/users > users.json\nsos dump --jsonl data/todo | head",
    ),
    (
        "load",
        cmd_load,
        "load a JSON object, array or JSON Lines; creates the store if missing",
        "sos load data/users users.json\nsos dump --jsonl old | sos load --kind dict new -",
    ),
    (
        "info",
        cmd_info,
        "print kind, count, size and format version",
        "sos info data/users\nsos info --json data/users",
    ),
    (
        "path",
        cmd_path,
        "print the file that holds a key",
        '$EDITOR "$(sos path data/users ada)"\ngrep -l Paris $(sos path data/users ada)',
    ),
    (
        "edit",
        cmd_edit,
        "edit a key's document in $VISUAL/$EDITOR, checked before it is written",
        "sos edit data/users ada\nEDITOR=nano sos edit data/users newkey   # creates it",
    ),
    (
        "check",
        cmd_check,
        "report every problem in a store (exit 1 if any); --repair the safe ones",
        "sos check data/users\nsos check --repair data/todo",
    ),
    (
        "resolve",
        cmd_resolve,
        "settle a git conflict in one key's file by keeping one side",
        "sos resolve data/users ada --ours\nsos resolve data/users ada --theirs",
    ),
    (
        "adopt",
        cmd_adopt,
        "add a document file to a store (a list: append its value)",
        "sos adopt data/todo data/todo/lost+found/3f….json",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sos",
        description="Read, write, edit, check and repair sos stores (directories of JSON files).",
        epilog="Values are JSON. Exit status: 0 success, 1 missing key or problems found, "
        "2 usage error. 'sos COMMAND --help' shows examples.",
    )
    parser.add_argument("--version", action="version", version=f"sos {sos.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, func, summary, examples in _COMMANDS:
        p = sub.add_parser(
            name,
            help=summary,
            description=summary[:1].upper() + summary[1:] + ".",
            epilog="examples:\n" + "\n".join("  " + e for e in examples.splitlines()),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        p.add_argument("store", metavar="STORE", help="the store's directory")
        if name in ("get", "set", "del", "path", "edit", "resolve"):
            p.add_argument(
                "key", metavar="KEY", help="a key, or for a list an index (-1 is the last)"
            )
        if name in ("set", "append"):
            p.add_argument(
                "value", metavar="VALUE", help="a JSON value, or - to read it from stdin"
            )
        if name in ("load", "adopt"):
            p.add_argument(
                "file",
                metavar="FILE",
                help="a file, or - for stdin"
                if name == "load"
                else 'a {"key": ..., "value": ...} document file',
            )
    opts = sub.choices
    opts["get"].add_argument(
        "-r", "--raw", action="store_true", help="print a string without quotes"
    )
    keys = opts["keys"].add_mutually_exclusive_group()
    keys.add_argument("--json", action="store_true", help="print a JSON array")
    keys.add_argument(
        "-0", "--null", action="store_true", help="end each key with NUL, not newline"
    )
    opts["dump"].add_argument(
        "--jsonl",
        action="store_true",
        help='one value per line (a dict: {"key": ..., "value": ...})',
    )
    opts["load"].add_argument(
        "--kind",
        choices=("dict", "list"),
        help="the kind of store to create if missing (default: from the input)",
    )
    opts["info"].add_argument("--json", action="store_true", help="print a JSON object")
    opts["check"].add_argument(
        "--repair", action="store_true", help="fix what is safe, printing each action"
    )
    opts["check"].add_argument("--json", action="store_true", help="one JSON object per problem")
    side = opts["resolve"].add_mutually_exclusive_group(required=True)
    side.add_argument("--ours", action="store_true", help="keep the side of the branch merged into")
    side.add_argument("--theirs", action="store_true", help="keep the side of the branch merged in")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``sos`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    try:
        status = args.func(args)
        sys.stdout.flush()
    except UsageError as exc:
        print(f"sos {args.command}: {exc}", file=sys.stderr)
        return 2
    except (Failure, sos.Error) as exc:
        print(f"sos {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (head, less) went away: not an error worth a word. Point
        # stdout at /dev/null so the interpreter's final flush is quiet too.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except OSError as exc:
        name = exc.filename or args.store
        print(f"sos {args.command}: {name}: {exc.strerror}", file=sys.stderr)
        return 1
    return status

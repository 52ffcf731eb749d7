"""sos schema: print a store's schema.json, or tell VS Code to check files against it."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from atomicwrites import atomic_write

import sos
from sos import format as _format
from sos.cli.framework import STORE, Failure, UsageError, _bar, _open, _storage, arg, command
from sos.core import schema as _core_schema
from sos.storage.registry import scheme_of


@command(
    "schema",
    "print the JSON Schema a store's documents must meet; --vscode: make VS Code check them",
    "sos schema data/users\nsos schema --vscode data/users   # .vscode/settings.json here",
    STORE,
    arg(
        "--vscode",
        action="store_true",
        help="add a json.schemas entry to .vscode/settings.json (created or merged) that "
        "maps the store's documents to its schema.json",
    ),
    arg(
        "--update",
        metavar="MODULE:TYPE",
        help="adopt TYPE's schema (a class or annotation importable from here) after "
        "checking every document against it; nothing changes if one fails",
    ),
    arg(
        "--workspace",
        default=".",
        metavar="DIR",
        help="the VS Code workspace folder for --vscode (default: the current directory)",
    ),
)
def cmd_schema(args: argparse.Namespace) -> int:
    if args.update:
        value_type = load_object(args.update)
        with sos.open(args.store, value_type=value_type, update_schema=True):
            pass
        print(f"sos: {args.store}: every document meets {args.update}; schema.json updated",
              file=sys.stderr)
    with _open(args.store), _storage(args.store) as storage:  # refuses what is not a store
        stored = _core_schema.read_schema(storage)
        where = storage.where(_format.SCHEMA_NAME)
    if stored is None:
        raise Failure(
            f"{args.store}: has no schema ({where} is missing); a store gets one when it "
            "is opened with a value_type"
        )
    if not args.vscode:
        sys.stdout.write(stored.decode("utf-8"))
        return 0
    if scheme_of(args.store) is not None:
        raise Failure(f"{args.store}: --vscode needs a store in a local directory")
    settings = vscode_settings(args.workspace, args.store)
    print(f"sos: {settings}: {args.store}'s documents checked against its schema.json",
          file=sys.stderr)
    return 0


@command(
    "migrate",
    "convert every value with a Python function and adopt a new type, in one transaction",
    "sos migrate data/users mymod:upgrade mymod:UserV2",
    STORE,
    arg("function", metavar="MODULE:FUNCTION", help="takes an old JSON value, returns the new"),
    arg("type", metavar="MODULE:TYPE", help="the new value_type (its schema is adopted)"),
)
def cmd_migrate(args: argparse.Namespace) -> int:
    fn = load_object(args.function)
    value_type = load_object(args.type)
    if not callable(fn):
        raise UsageError(f"{args.function} is not a function")
    with _open(args.store) as db:
        db.migrate(fn, value_type, progress=_bar("migrating"))
    print(f"sos: {args.store}: migrated to {args.type}", file=sys.stderr)
    return 0


def load_object(spec: str) -> object:
    """``module:name`` imported as Python would from the current directory."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise UsageError(f"{spec!r}: expected MODULE:NAME (e.g. models:User)")
    sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"{spec}: {exc}") from None
    finally:
        sys.path.remove(os.getcwd())
    return found


def vscode_settings(workspace: str, store: str) -> str:
    """Add (or replace) the store's entry in ``json.schemas``; return the file's path."""
    root = os.path.abspath(workspace)
    rel = os.path.relpath(os.path.abspath(store), root).replace(os.sep, "/")
    if rel == ".." or rel.startswith("../"):
        raise Failure(f"{store}: not inside the workspace {workspace} (use --workspace)")
    folder = os.path.join(root, ".vscode")
    path = os.path.join(folder, "settings.json")
    settings: dict[str, object] = {}
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        text = b""
    if text.strip():
        try:
            loaded = json.loads(text)
        except ValueError as exc:  # VS Code allows comments; we never drop them silently
            raise Failure(
                f"{path}: not plain JSON ({exc}); add the entry by hand: "
                f'"json.schemas": [{json.dumps(_entry(rel))}]'
            ) from None
        if not isinstance(loaded, dict):
            raise Failure(f"{path}: settings must be a JSON object")
        settings = loaded
    schemas = settings.get("json.schemas", [])
    if not isinstance(schemas, list):
        raise Failure(f'{path}: "json.schemas" must be a list')
    entry = _entry(rel)
    schemas = [s for s in schemas if not (isinstance(s, dict) and s.get("url") == entry["url"])]
    schemas.append(entry)
    settings["json.schemas"] = schemas
    os.makedirs(folder, exist_ok=True)
    # A file of the user's, outside any store, by path: atomicwrites' job
    # (temp file beside it, fsync, atomic rename, directory fsync).
    with atomic_write(path, mode="w", overwrite=True, encoding="utf-8") as f:
        json.dump(settings, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return path


def _entry(rel: str) -> dict[str, object]:
    """The glob of the store's documents (fan-out directory, 32 hex digits) and its schema."""
    prefix = "" if rel == "." else rel + "/"
    return {"fileMatch": [f"/{prefix}??/*.json"], "url": f"./{prefix}{_format.SCHEMA_NAME}"}

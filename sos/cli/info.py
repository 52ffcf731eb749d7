"""sos info and sos path."""

from __future__ import annotations

import argparse
import sys

from sos import format as _format
from sos.cli.framework import KEY, STORE, Target, _dumps, _open, _storage, arg, command


@command(
    "info",
    "print kind, count, store format, and the documents' bytes and disk space (also per key)",
    "sos info data/users\nsos info --json data/users",
    STORE,
    arg("--json", action="store_true", help="print a JSON object"),
)
def cmd_info(args: argparse.Namespace) -> int:
    with _open(args.store) as db, _storage(args.store) as storage:
        count = len(db)
        meta = _format.METADATA_NAME
        kind, fmt = _format.describe_metadata(storage.read(meta), storage.where(meta))
        docs = [0, 0, 0]  # files, bytes, allocated bytes
        other = [0, 0, 0]  # metadata, manifest, support files, lost+found, foreign files
        disk_known = True  # object storage and memory have no blocks to count
        for name, size, disk in storage.usage():
            top, _, base = name.rpartition("/")
            tally = docs if _format.is_fanout_name(top) and _format.is_data_name(base) else other
            tally[0] += 1
            tally[1] += size
            if disk is None:
                disk_known = False
            else:
                tally[2] += disk

    def known(value: int) -> int | None:
        return value if disk_known else None

    info = {
        "store": args.store,
        "kind": kind,
        "store_format": fmt,  # sos.json's: not a dump's "dump-format"
        "count": count,
        "files": docs[0],
        "bytes": docs[1],
        "disk_bytes": known(docs[2]),
        "bytes_per_key": round(docs[1] / docs[0]) if docs[0] else 0,
        "disk_per_key": known(round(docs[2] / docs[0]) if docs[0] else 0),
        "other_files": other[0],
        "other_disk_bytes": known(other[2]),
    }
    if args.json:
        print(_dumps(info))
    else:
        for field_name, value in info.items():
            shown = "unknown (the storage does not report it)" if value is None else value
            print(f"{field_name + ':':17} {shown}")
    return 0


@command(
    "path",
    "print the file (on object storage: the object URL) that holds a key",
    '$EDITOR "$(sos path data/users ada)"\ngrep -l Paris $(sos path data/users ada)',
    STORE,
    KEY,
)
def cmd_path(args: argparse.Namespace) -> int:
    with _open(args.store) as db, _storage(args.store) as storage:
        target = Target(db, args.key)
        path = target.path
        exists = storage.exists(target.name(storage))
    print(path, flush=True)
    if not exists:
        print(f"sos: {args.store}: no key {args.key!r} yet; {path} would hold it", file=sys.stderr)
        return 1
    return 0

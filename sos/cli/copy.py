"""sos copy: a whole store from one storage to another, verified and resumable.

The copy works on the store's files, not its values, so a document arrives
with exactly its bytes (read back and compared after writing) and a List keeps
its order. The destination is not a store while the copy runs: its
``sos.json`` is written last, so an interrupted copy is never opened as a
smaller store. ``.sos/copy.json`` names the source, which is how a rerun knows
the half-made destination is its own and resumes it: every file is compared
and only what is missing or different is written again.

A schema.json binds every writer, a copy too: where the destination has
one, or the source brings one, every document is checked against each
before its chunk is written, and the first that fails stops the copy, named
with its key and file (what was written before stays, unfinished: a rerun
after the fix resumes). A store that ``--force`` would replace is left whole:
there, every document is checked before anything is written. The
destination's own schema.json is kept when the source has none.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sos
from sos import format as _format
from sos.cli.framework import Failure, Interrupted, UsageError, _bar, _open, _storage, arg, command
from sos.core import schema as _core_schema
from sos.errors import CorruptError
from sos.format import schema as _schema
from sos.format.names import RESERVED_DIR
from sos.storage.base import Storage
from sos.storage.fileops import is_temp_name
from sos.txn import RECORD as TXN_RECORD
from sos.txn import pending

#: Where a copy names its source, in the destination's reserved name space.
RECORD = f"{RESERVED_DIR}/copy.json"

# Files of a store besides its documents; sos.json is not among them: it is
# written last, alone, when everything else is in place.
SCHEMA_NAME = "schema.json"
_TOP_FILES = (_format.ORDER_NAME, SCHEMA_NAME, *_format.SUPPORT_FILES)

# Documents per step: one group commit on a local disk (bigger is cheaper per
# file), one task of the pool where requests run in parallel.
_CHUNK, _PARALLEL_CHUNK = 512, 8
_PASSES = 3  # a source whose List order changes under the copy is read again


@dataclass
class _Tally:
    """What a copy did, for its closing line."""

    documents: int = 0
    written: int = 0
    removed: int = 0
    schemas: list[str] = field(default_factory=list)  # the schema.json files it met


# A schema.json's findings for a value (sos.core.schema.compiled), by where it is.
_Schemas = list[tuple[str, Callable[[Any], list[_schema.Finding]]]]


def _schemas(source: Storage, target: Storage) -> _Schemas:
    """The schema.json files every copied document must meet: the
    destination's own (as every writer there must) and the one the source
    brings. A damaged one stops the copy before anything is written."""
    found: _Schemas = []
    seen: set[bytes] = set()
    for storage in (target, source):
        data = _read(storage, SCHEMA_NAME)
        if data is None:
            continue
        where = storage.where(SCHEMA_NAME)
        try:
            canonical = _schema.encode(_schema.decode(data, where))
        except CorruptError as exc:
            raise Failure(f"{exc.message}; nothing was copied") from None
        if canonical not in seen:
            seen.add(canonical)
            found.append((where, _core_schema.compiled(canonical)))
    return found


def _meets(
    schemas: _Schemas,
    source: Storage,
    name: str,
    data: bytes,
    stopped: str = "the copy stopped here",
) -> None:
    """Failure, naming the key and the source's file, unless the document
    ``data`` meets every one of ``schemas``."""
    where = source.where(name)
    try:
        key, value = _format.decode_document(data, where)
    except CorruptError as exc:
        raise Failure(f"{exc.message}; {stopped} ({_AGAIN})") from None
    for schema_where, findings_of in schemas:
        found = findings_of(value)
        if found:
            raise Failure(
                f"{where}: key {key!r:.80} does not meet {schema_where}: "
                f"{_schema.describe(key, found)}; {stopped} ({_AGAIN})"
            )


_AGAIN = "fix the source, then run the copy again"


def _refuse_overlap(source: Storage, target: Storage, args: argparse.Namespace) -> None:
    a, b = source.location(), target.location()
    if a == b:
        raise UsageError(f"{args.source} and {args.target} are the same store")
    for inner, outer, name in ((b, a, args.target), (a, b, args.source)):
        if inner.startswith(outer + "/"):
            raise UsageError(f"{name} is inside {outer}: copy a store out of itself")


def _is_document(name: str) -> bool:
    top, sep, rest = name.partition("/")
    return (
        bool(sep)
        and _format.is_fanout_name(top)
        and rest.startswith(top)
        and _format.is_data_name(rest)
    )


def _is_temp(name: str) -> bool:
    """A temporary file of the store's own writes: in the root or a fan-out directory."""
    top, _, rest = name.rpartition("/")
    return is_temp_name(rest) and (not top or _format.is_fanout_name(top))


def _listing(storage: Storage) -> tuple[list[str], list[str]]:
    """Every well-placed document of the store, sorted, and the temporary
    files interrupted writes left. Where requests are dear (parallelism > 1:
    object storage) one flat paginated listing; else one per fan-out
    directory, which never looks into ``.git`` or ``lost+found``."""
    if storage.parallelism() > 1:
        found = list(storage.walk())
    else:
        found = storage.list("")
        for top in sorted(n for n in found if _format.is_fanout_name(n)):
            found += [f"{top}/{e}" for e in storage.list(top)]
    names = sorted(n for n in found if _is_document(n))
    temps = [n for n in found if _is_temp(n)]
    return names, temps


def _read(storage: Storage, name: str) -> bytes | None:
    try:
        return storage.read(name)
    except FileNotFoundError:
        return None


def _record(storage: Storage) -> dict[str, Any] | None:
    """The destination's ``.sos/copy.json``, or None; a damaged one is refused."""
    data = _read(storage, RECORD)
    if data is None:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("source"), str):
        raise Failure(f"{storage.where(RECORD)}: not a copy record; --force to copy over it")
    return record


def _check_target(target: Storage, source_id: str, args: argparse.Namespace) -> bool:
    """Whether the destination may be written: empty, or this source's
    unfinished copy, or anything with --force. True if it holds something."""
    record = _record(target) if not args.force else None
    if record is not None:
        if record["source"] != source_id:
            state = "a copy" if record.get("finished") else "an unfinished copy"
            raise Failure(
                f"{args.target}: is {state} of {record['source']}, not of "
                f"{args.source}; --force to copy over it"
            )
        if record.get("finished"):
            raise Failure(
                f"{args.target}: is already a copy of {args.source}; --force copies "
                "again (only what differs)"
            )
        return True
    held = [n for n in target.list("") if n != RESERVED_DIR]
    if held and not args.force:
        what = "a sos store" if _format.METADATA_NAME in held else f"{len(held)} entries"
        raise Failure(
            f"{args.target}: is not empty (it holds {what}); --force to make it a copy "
            f"of {args.source}"
        )
    return bool(held)


def _write_record(target: Storage, source_id: str, finished: bool) -> None:
    body = {"sos-copy": 1, "source": source_id, "finished": finished}
    target.write(RECORD, (json.dumps(body) + "\n").encode())


def _verify(target: Storage, name: str, data: bytes) -> None:
    if _read(target, name) != data:
        raise Failure(
            f"{target.where(name)}: reads back other bytes than were written; "
            "the destination cannot be trusted"
        )


class _Copier:
    """Copies files from ``source`` to ``target``: only those that differ,
    each read back and compared once written."""

    def __init__(self, source: Storage, target: Storage, tally: _Tally, schemas: _Schemas) -> None:
        self.source = source
        self.target = target
        self.tally = tally
        self.schemas = schemas
        self.fresh = False  # a target known empty need not be read first
        self.workers = max(source.parallelism(), target.parallelism())

    def chunk(self, names: list[str]) -> tuple[list[str], int]:
        """Copy ``names`` (in a worker thread); the names the source no
        longer has, and how many files were written."""
        changed: list[tuple[str, bytes]] = []
        gone: list[str] = []
        for name in names:
            data = _read(self.source, name)
            if data is None:
                gone.append(name)  # removed since the listing: a deleted key
                continue
            if self.schemas:  # before any of the chunk is written
                _meets(self.schemas, self.source, name, data)
            if self.fresh or _read(self.target, name) != data:
                changed.append((name, data))
        if self.target.parallelism() > 1:
            for name, data in changed:  # the pool is the parallelism already
                self.target.write(name, data)
        else:
            self.target.write_many(changed)  # one group commit
        for name, data in changed:
            _verify(self.target, name, data)
        return gone, len(changed)

    def documents(self, names: list[str], pool: concurrent.futures.Executor) -> set[str]:
        """Copy the documents, a chunk per task; the ones that were gone."""
        bar = _bar("copying")(len(names))
        gone: set[str] = set()
        try:
            size = _PARALLEL_CHUNK if self.workers > 1 else _CHUNK
            chunks = [names[i : i + size] for i in range(0, len(names), size)]
            futures = {pool.submit(self.chunk, c): len(c) for c in chunks}
            for future in concurrent.futures.as_completed(futures):
                missing, written = future.result()
                gone.update(missing)
                self.tally.written += written  # counted here, in one thread
                bar.update(futures[future])
        finally:
            bar.close()
        return gone

    def files(self, files: Iterable[tuple[str, bytes]]) -> None:
        """Write whole files (in the given order) where they differ, verified."""
        for name, data in files:
            if _read(self.target, name) != data:
                self.target.write(name, data)
                _verify(self.target, name, data)
                self.tally.written += 1


def _top_files(source: Storage) -> dict[str, bytes]:
    """The source's files besides documents and sos.json; the support files
    a store is made with wherever the source lacks them."""
    files = {}
    for name in _TOP_FILES:
        data = _read(source, name)
        if data is None:
            data = _format.SUPPORT_FILES.get(name)
        if data is not None:
            files[name] = data
    return files


def _check_first(source: Storage, schemas: _Schemas) -> None:
    """Every document of the source against ``schemas``, before a store the
    copy would replace (``--force``) is touched: one that fails leaves it whole."""
    for name, data in source.read_many(_listing(source)[0]):
        if data is not None:
            _meets(schemas, source, name, data, "nothing was copied")


def _copy(
    source: Storage, target: Storage, kind: str, tally: _Tally, fresh: bool, schemas: _Schemas
) -> None:
    """The copy itself; the caller holds the target's lock and the source's
    shared one, and the target's record says it is unfinished."""
    tally.schemas = [where for where, _ in schemas]
    copier = _Copier(source, target, tally, schemas)
    copier.fresh = fresh
    metadata = source.read(_format.METADATA_NAME)
    pool = concurrent.futures.ThreadPoolExecutor(copier.workers)
    try:
        for _ in range(_PASSES):
            top = _top_files(source)  # the order first: its items exist before it
            names = _listing(source)[0]
            gone = copier.documents(names, pool)
            if kind != "list" or _read(source, _format.ORDER_NAME) == top.get(_format.ORDER_NAME):
                break
            copier.fresh = False  # the List changed under the copy: again, what differs
        else:
            raise Failure(f"{source.url}: its order kept changing during the copy; run it again")
        copier.files(top.items())
        keep = set(names) - gone
        held, temps = _listing(target)
        # A temp file is a write cut short (by a kill of an earlier copy):
        # garbage, and no writer is making one while the copy holds the lock.
        extra = [n for n in held if n not in keep] + temps
        extra += [n for n in (_format.ORDER_NAME,) if n not in top]
        tally.removed = len(target.remove(extra))
    finally:  # on Ctrl-C or a failed chunk, start no other
        pool.shutdown(wait=True, cancel_futures=True)
    tally.documents = len(keep)
    if SCHEMA_NAME not in top and schemas:
        # The destination's own schema.json stays (it binds its writers, and
        # every document met it): an older sos must not write past it.
        kind, version = _format.describe_metadata(metadata, source.where(_format.METADATA_NAME))
        metadata = _format.encode_metadata(kind, max(version, _format.SCHEMA_FORMAT))
    copier.files([(_format.METADATA_NAME, metadata)])  # now it is a store


@contextlib.contextmanager
def _locked(target: Storage, name: str) -> Iterator[None]:
    """The target's exclusive lock, saying so when it has to wait: after a
    copy to object storage is killed, its lease runs until it expires."""
    if not target.acquire(exclusive=True, blocking=False):
        print(
            f"sos copy: {name}: waiting for its lock (a writer, or a copy that was cut short)",
            file=sys.stderr,
        )
        target.acquire(exclusive=True)
    try:
        yield
    finally:
        target.release()


def _source_kind(path: str) -> str:
    """The source's kind, after the checks any open makes (and the recovery
    of a transaction a crash left, as any open does)."""
    with _open(path) as db:
        return "list" if isinstance(db, sos.List) else "dict"


def _run(args: argparse.Namespace, tally: _Tally) -> str:
    kind = _source_kind(args.source)
    with _storage(args.source) as source, _storage(args.target) as target:
        _refuse_overlap(source, target, args)
        source_id = source.location()
        try:
            _check_target(target, source_id, args)  # before anything is written
        except NotADirectoryError:
            raise Failure(f"{args.target}: not a directory (it or a parent is a file)") from None
        target.make_root()
        target.prepare_for_writing()
        with _locked(target, args.target), source.lock(exclusive=False):
            held = _check_target(target, source_id, args)  # another copy may have begun
            if pending(source):
                raise Failure(
                    f"{args.source}: a transaction was cut short by a crash; "
                    "open the store (sos info) to finish it, then copy again"
                )
            schemas = _schemas(source, target)
            if schemas and _read(target, _format.METADATA_NAME) is not None:
                _check_first(source, schemas)
            _write_record(target, source_id, finished=False)
            # The target stops being a store first: if the copy is cut short,
            # nobody opens half of it. A transaction record that a crash of the
            # store copied over left is not ours to finish.
            target.remove([_format.METADATA_NAME, TXN_RECORD])
            _copy(source, target, kind, tally, not held, schemas)
            _write_record(target, source_id, finished=True)
    return kind


@command(
    "copy",
    "copy a whole store to another place or storage, verified and resumable",
    "sos copy data/users s3://bucket/users\nsos copy s3://bucket/users backup/users\n"
    "sos copy --force data/users s3://bucket/users",
    arg("source", metavar="SRC", help="the store to copy (a directory, s3://..., memory://...)"),
    arg("target", metavar="DST", help="where the copy goes: nothing there, or an unfinished copy"),
    arg(
        "--force",
        action="store_true",
        help="copy over a DST that holds something else (only what differs is written; "
        "its documents SRC lacks are removed)",
    ),
)
def cmd_copy(args: argparse.Namespace) -> int:
    """Documents first, ``sos.json`` last; a rerun from the same SRC resumes."""
    args.store = args.source
    tally = _Tally()
    try:
        kind = _run(args, tally)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; run the same command again to finish the copy to {args.target}"
        ) from None
    noun = ("key" if kind == "dict" else "item") + ("" if tally.documents == 1 else "s")
    done = f"sos: copied {tally.documents:,} {noun} from {args.source} to {args.target}"
    files = "file" if tally.written == 1 else "files"
    done += f" ({tally.written:,} {files} written and verified"
    if tally.removed:
        done += f", {tally.removed:,} removed"
    if tally.schemas:
        done += f"; every document meets {' and '.join(tally.schemas)}"
    print(done + ")", file=sys.stderr)
    return 0

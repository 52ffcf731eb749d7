"""Names: a key's file name, the one data-file predicate, the reserved names."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Container

from sos.errors import CorruptError, UnwritableError

# The newest format this sos reads. A store is created at BASE_FORMAT (so an
# older sos can open it) and raised to TRANSACTION_FORMAT before its first
# transaction: an older sos, which knows nothing of .sos/txn.json, must not
# open a store that may hold a pending transaction record.
FORMAT_VERSION = 3


BASE_FORMAT = 1


TRANSACTION_FORMAT = 2


# A store with a schema.json: an older sos, which cannot validate, must not
# write into it (it refuses any format newer than it knows).
SCHEMA_FORMAT = 3


KINDS = ("dict", "list")


METADATA_NAME = "sos.json"


ORDER_NAME = "order.txt"

#: Where ``sos check --repair`` moves what it cannot put back (a store's
#: subdirectory, with its own order.txt of what it holds).
LOST_FOUND = "lost+found"


# The JSON Schema every document must meet, beside the metadata (synced by
# git and rsync like the data, so it is not under .sos/).
SCHEMA_NAME = "schema.json"


GITIGNORE = b"""\
# sos: temporary files and the reserved .sos/ (transaction records, locks)
# are never data (see docs/format.md)
.sos-tmp-*
.sos/
"""


# -text: git must never rewrite line endings (a document's bytes are its value).
# merge=union: two clones that both append merge into both runs; sos check
# --repair drops any run named twice.
GITATTRIBUTES = b"""\
* -text
order.txt merge=union
"""


# For rsync -F: never copy a half-written temporary file.
RSYNC_FILTER = b"""\
- .sos-tmp-*
- .sos/
"""


SUPPORT_FILES = {
    ".gitignore": GITIGNORE,
    ".gitattributes": GITATTRIBUTES,
    ".rsync-filter": RSYNC_FILTER,
}


_DIGEST_CHARS = 32  # 128 bits of SHA-256: no collision in any real store


_DATA_NAME = re.compile(rf"[0-9a-f]{{{_DIGEST_CHARS}}}\.json\Z")


_FANOUT_NAME = re.compile(r"[0-9a-f]{2}\Z")


DATA_SUFFIX = ".json"


def validate_key(key: object) -> str:
    """Return ``key`` if it can be a key: any ``str`` that UTF-8 can encode."""
    if not isinstance(key, str):
        raise TypeError(f"sos keys must be str, not {type(key).__name__}: {key!r:.80}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnwritableError(
            f"key {key!r:.80} has a lone surrogate at index {exc.start}; it cannot be "
            "written as UTF-8 (text decoded with errors='surrogateescape' keeps bytes "
            "that were not UTF-8 this way: decode them properly first)"
        ) from None
    return key


def key_digest(key: str) -> str:
    """The lowercase hex name of ``key``: SHA-256 of its UTF-8 bytes, first 32 digits."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]


# How many names each of a handle's name memories holds at most (the key ->
# file name memory, the file name -> key memory and the listings it serves,
# the storage's name -> path memories): one limit, so that a handle's memory
# is bounded the same way whatever the store's size. Each memory is emptied
# (or stops growing) when it reaches it; see docs/architecture.md, "Name
# memories", for why they are separate memories.
NAME_MEMORY = 1 << 17


@functools.lru_cache(maxsize=4096)  # pure, and on every read's path
def key_relpath(key: str) -> str:
    """Where ``key`` lives inside a store: ``ab/ab…(32 hex).json``."""
    digest = key_digest(key)
    return f"{digest[:2]}/{digest}.json"


def is_data_name(name: str) -> bool:
    """True if ``name`` (no directory) has a document's shape: ``<32 hex>.json``."""
    return _DATA_NAME.match(name) is not None


def is_data_file(directory: str, name: str, known: Container[str] = ()) -> bool:
    """The one answer to "is this a data file?": ``name`` listed in the store
    directory ``directory`` is ``ab…(32 hex).json`` inside ``ab``.

    Readers, iteration, ``len``, watch and ``sos check`` all ask this, so a
    file one of them reads is a file all of them see. ``known``: names found
    to be data files before (a listing's cache), not matched again.
    """
    return (
        len(directory) == 2
        and name.startswith(directory)
        and (name in known or _DATA_NAME.match(name) is not None)
    )


# Data file names of each fan-out directory, one per line: what
# count_data_files matches in one pass.
_DATA_LINES: dict[str, re.Pattern[str]] = {}


def count_data_files(directory: str, names: list[str]) -> int:
    """How many of ``names`` listed in ``directory`` are data files: the
    count of :func:`is_data_file`, in one regular-expression pass over the
    listing (``len`` of a large store filters a million names)."""
    if _FANOUT_NAME.match(directory) is None:
        return 0
    joined = "\n".join(names)
    if joined.count("\n") != len(names) - 1:  # a name with a newline: one by one
        return sum(1 for name in names if is_data_file(directory, name))
    pattern = _DATA_LINES.get(directory)
    if pattern is None:
        rest = _DIGEST_CHARS - 2
        pattern = re.compile(rf"^{directory}[0-9a-f]{{{rest}}}\.json$", re.MULTILINE)
        _DATA_LINES[directory] = pattern
    return len(pattern.findall(joined))


def is_data_path(relpath: str) -> bool:
    """:func:`is_data_file` for a store-relative path ``ab/ab….json``."""
    directory, _, name = relpath.partition("/")
    return is_data_file(directory, name)


def document_name(key: str) -> str:
    """The file name (no directory) of ``key``'s document: ``ab01…ef.json``."""
    return key_relpath(key)[3:]


def is_fanout_name(name: str) -> bool:
    return _FANOUT_NAME.match(name) is not None


#: A UTF-8 byte order mark: sos files never start with one (an editor adds it).
BOM = b"\xef\xbb\xbf"


def text_of(data: bytes, path: str, what: str, encoding: str = "utf-8") -> str:
    """``data`` as text, or :class:`~sos.CorruptError` naming the file: a byte
    order mark (an editor added it) or bytes not in ``encoding`` (with where)."""
    if data.startswith(BOM):
        raise CorruptError(
            f"{path}: {what} starts with a UTF-8 byte order mark (BOM), which sos "
            "files never have (an editor added it: remove the first 3 bytes)",
            path,
            1,
            1,
        )
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        label = "UTF-8" if encoding == "utf-8" else encoding.upper()
        raise CorruptError(
            f"{path}: {what} is not {label} (byte {exc.start}); save it as {label}", path
        ) from None


# The store's reserved name space: intent records, leases, lock files. Never
# data: readers, iteration and check ignore it, .gitignore and .rsync-filter
# exclude it.
RESERVED_DIR = ".sos"
#: A committed transaction's record (sos.txn.record.RECORD): named here, where a
#: plain write's check for one (sos.storage.plain) can see it.
TXN_RECORD = f"{RESERVED_DIR}/txn.json"

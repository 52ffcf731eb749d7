"""git's conflict markers: finding them in a file and splitting the two sides."""

from __future__ import annotations

import re

# Git's conflict markers, one rule for documents, the manifest and the metadata:
# a line that is exactly "=======", or starts with "<<<<<<<", "|||||||" (the
# diff3/zdiff3 base) or ">>>>>>>" followed by the end of the line or a space
# and a label. No valid document or manifest line can look like one (JSON
# strings hold no raw newline; a document's lines are indented or braces).
_MARKER_LINE = r"(?:(?:<{7}|\|{7}|>{7})(?: [^\r\n]*)?|={7})\r?"


_CONFLICT_MARKER = re.compile(rb"^" + _MARKER_LINE.encode() + rb"$", re.MULTILINE)


_MARKER_TEXT = re.compile(_MARKER_LINE + r"\Z")


# -- git conflict markers ------------------------------------------------------


def is_conflict_marker(line: str | bytes) -> bool:
    """True if ``line`` (without or with its newline) is a git conflict marker."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return _MARKER_TEXT.match(text.rstrip("\n")) is not None


def conflict_line(data: bytes) -> int | None:
    """The 1-based line of the first git conflict marker in ``data``, or None.

    The one test every reader, ``sos check`` and the command line use, well
    nested or not: a file with any marker line is "conflicted".
    """
    marker = _CONFLICT_MARKER.search(data)
    if marker is None:
        return None
    return data[: marker.start()].count(b"\n") + 1


def split_conflict(data: bytes) -> tuple[bytes, bytes] | None:
    """``(ours, theirs)`` of a file git left with conflict markers, or None.

    Handles the default and the ``diff3``/``zdiff3`` styles (the base section
    between ``|||||||`` and ``=======`` is dropped). None if there are no
    markers or they are not well nested (then only a person can settle it).
    """
    ours: list[bytes] = []
    theirs: list[bytes] = []
    state = "common"
    seen = False
    for line in data.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if not is_conflict_marker(bare):
            if state in ("common", "ours"):
                ours.append(line)
            if state in ("common", "theirs"):
                theirs.append(line)
            continue
        head = bare[:1]
        if state == "common" and head == b"<":
            state, seen = "ours", True
        elif state == "ours" and head == b"|":
            state = "base"
        elif state in ("ours", "base") and head == b"=":
            state = "theirs"
        elif state == "theirs" and head == b">":
            state = "common"
        else:
            return None  # a marker out of place: not well nested
    if not seen or state != "common":
        return None
    return b"".join(ours), b"".join(theirs)

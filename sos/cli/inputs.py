"""What the user hands the ``sos`` command: a VALUE, a FILE, stdin.

Every refusal is one of ours, naming where the input came from (``VALUE``,
``stdin``, the file) and what to do: bad JSON, bytes that are not UTF-8, a
byte order mark, numbers and nesting Python cannot read back, and (checked
before a store is touched, or created) values the format cannot hold.
"""

from __future__ import annotations

import sys
from typing import Any

import sos
from sos import format as _format
from sos.cli.framework import Failure, UsageError, _dumps, _key_arg


def _parse_json(text: str, where: str) -> Any:
    """Strict JSON from the command line, by the rules every reader uses."""
    try:
        return _format.parse_json(text.encode("utf-8", "surrogateescape"), where, "input")
    except sos.CorruptError as exc:
        raise UsageError(exc.message + _string_hint(text)) from None


def _string_hint(text: str) -> str:
    """Most bad VALUEs are a bare word meant as a string: say how to quote it
    (not for input that failed for its bytes: a BOM, not UTF-8)."""
    word = text.strip()
    if not word or word[0] in '{["-0123456789\ufeff' or word in ("true", "false", "null"):
        return ""
    if any("\udc80" <= c <= "\udcff" for c in word):
        return ""
    return f"; a string needs JSON quotes: '{_dumps(word, indent=None)}'"


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
        raise Failure(
            f"{source}: not UTF-8 (byte {exc.start}); JSON is UTF-8: convert it "
            f"(iconv -f LATIN1 -t UTF-8, say) and load it again; nothing written"
        ) from None


def _read_input_bytes(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as exc:
        raise Failure(f"{source}: {exc.strerror}") from None


def _value_arg(text: str) -> Any:
    if text == "-":
        return _parse_json(sys.stdin.read(), "stdin")
    return _parse_json(text, "VALUE")


def _writable(value: Any, store: str, key: str | None = None) -> Any:
    """``value``, once the format is known to hold it: checked before the
    store is opened, so a refused value creates no store either."""
    try:
        if key is not None and not key.lstrip("-").isdigit():  # a Dict's key (a List's index)
            _format.validate_key(_key_arg(key))
        _format.encode_value(value)
    except (TypeError, ValueError) as exc:
        named = f"key {key!r:.80}: " if key is not None and "key " not in str(exc) else ""
        raise Failure(f"{store}: {named}{exc}; nothing written") from None
    return value

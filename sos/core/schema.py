"""Typed stores: the value type's adapter, and the guard schema.json puts on writes.

The one seam between the stores and validation. A store without a
``value_type`` and without a ``schema.json`` never reaches this module's
imports of pydantic or jsonschema (both optional: the ``typed`` extra), so it
pays nothing. With a ``value_type``, pydantic's ``TypeAdapter`` in strict
mode validates, converts to and from plain JSON, and gives the JSON Schema;
without one, a store that has a ``schema.json`` is held to it by a compiled
``jsonschema`` validator, cached by the schema's bytes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sos import format as _format
from sos.errors import CorruptError, Error, SchemaMismatch, ValidationError
from sos.format import schema as _schema
from sos.storage.base import Storage

SCHEMA_NAME = _format.SCHEMA_NAME

#: What :meth:`Typed.read` gives for a document it leaves to the slow, exact way.
SLOW: Any = object()
# Every digit as b"0" and each exponent letter as b"e": a number with an
# exponent shows as b"0e", a long run of digits as _LONG.
_DIGITS = bytes.maketrans(b"123456789E", b"000000000e")
_LONG_DIGITS = 309  # the fewest digits of a float beyond 1.8e308 without an exponent
_LONG = b"0" * _LONG_DIGITS

# As sos.check's: called with a count, returns something with update(n).
Progress = Callable[[int], Any] | None


def _needs(package: str) -> Error:
    return Error(
        f"typed stores need {package}: pip install 'sos-store[typed]'",
    )


class Typed:
    """A ``value_type`` made ready: validation (strict), JSON conversion, schema."""

    def __init__(self, value_type: Any) -> None:
        import dataclasses  # here: 10 ms that untyped stores never need

        try:
            import pydantic
            import pydantic_core
            from typing_extensions import TypedDict
        except ImportError:  # pragma: no cover - the extra is installed in CI
            raise _needs("pydantic") from None
        self.value_type = value_type
        self._error = pydantic.ValidationError
        # A class whose objects pydantic builds from a document (isinstance works on them).
        self._builds = isinstance(value_type, type) and (
            dataclasses.is_dataclass(value_type) or issubclass(value_type, pydantic.BaseModel)
        )
        try:
            self.adapter: Any = pydantic.TypeAdapter(value_type)
            document = TypedDict("document", {"key": str, "value": value_type})  # noqa: UP013
            # Typed.read's: exactly "key" and "value", as decode_document
            # holds a document to (the value's own schema as built above:
            # a config here would reach into the value_type's dataclasses).
            self._read: Any = pydantic_core.SchemaValidator(
                pydantic_core.core_schema.typed_dict_schema(
                    {
                        "key": pydantic_core.core_schema.typed_dict_field(
                            pydantic_core.core_schema.str_schema()
                        ),
                        "value": pydantic_core.core_schema.typed_dict_field(
                            self.adapter.core_schema
                        ),
                    },
                    extra_behavior="forbid",
                )
            ).validate_json
            self._document: Any = pydantic.TypeAdapter(document)
            self.schema = _schema.document_schema(self.adapter.json_schema())
        except pydantic.PydanticUserError as exc:
            raise TypeError(f"value_type {value_type!r}: {exc}") from None
        self.schema_bytes = _schema.encode(self.schema)

    def dump(self, value: Any) -> bytes:
        """The value's JSON bytes as :meth:`encode` gives them, unchecked:
        writeback compares them with the bytes a kept value was read from,
        and checks (:meth:`encode`) only a value that changed."""
        try:
            plain = self.adapter.dump_python(value, mode="json", warnings=False)
        except Exception:  # not the type's at all: let the encoder say what it is
            plain = value
        return _format.encode_value(plain)

    def encode(self, label: str, value: Any) -> bytes:
        """The value's JSON bytes (as :func:`sos.format.encode_value` gives
        them), or :class:`ValidationError` if the type rejects it."""
        body = self.dump(value)
        try:
            self.adapter.validate_json(body, strict=True)
        except self._error as exc:
            found = _schema.from_pydantic(list(exc.errors()), json.loads(body))
            message = _schema.describe(label, found)
            raise ValidationError(message, None, label, tuple(found)) from None
        return body

    def read(self, data: bytes, key: str) -> Any:
        """The typed value of the document ``data`` that must hold ``key``,
        parsed once (every typed get: parsing it first as plain JSON and
        again as the type cost a fifth of a get); :data:`SLOW` if this one
        parse cannot say what :func:`sos.format.decode_document` and then
        :meth:`decode` would, which the caller then does.

        pydantic's parser reads JSON as Python's does (the last of a
        repeated name wins; a lone surrogate, a byte order mark, bad UTF-8
        or a control character fail and go the slow way) except for
        numbers: it reads ``NaN`` and ``Infinity``, a float beyond 1.8e308
        as infinity and an integer of any length, which the format refuses.
        So a document with ``NaN``/``Infinity`` bytes, a digit followed by an
        exponent, or 309 digits in a row goes the slow way; none of these
        is in a document of ordinary numbers (those sos writes, whose floats
        below 1e16 have no exponent).
        """
        if b"NaN" in data or b"Infinity" in data:
            return SLOW
        digits = data.translate(_DIGITS)
        if b"0e" in digits or (len(data) >= _LONG_DIGITS and _LONG in digits):
            return SLOW
        try:
            doc = self._read(data, strict=True)
        except self._error:
            return SLOW
        return doc["value"] if doc["key"] == key else SLOW

    def kept(self, key: str, value: Any, data: bytes) -> Any:
        """What a writeback handle keeps of ``value``, just written as the
        document ``data`` (``key``'s): the object itself (changed in place,
        it is written back), unless the type is a class and ``value`` is not
        one of its objects (a dict given for a dataclass): then the type's
        value, as a read would give it."""
        if not self._builds or isinstance(value, self.value_type):
            return value
        typed = self.read(data, key)
        return self._document.validate_json(data, strict=True)["value"] if typed is SLOW else typed

    def decode(self, data: bytes, key: str, raw: Any, where: str) -> Any:
        """The typed value of a document already read as ``raw`` from ``where``."""
        try:
            return self._document.validate_json(data, strict=True)["value"]
        except self._error as exc:
            errors = [dict(e, loc=tuple(e["loc"])[1:]) for e in exc.errors()]
            found = _schema.from_pydantic(errors, raw)
            raise ValidationError(
                f"{where}: {_schema.describe(key, found)}", where, key, tuple(found)
            ) from None

    def findings(self, data: bytes, raw: Any) -> list[_schema.Finding]:
        try:
            self._document.validate_json(data, strict=True)
        except self._error as exc:
            errors = [dict(e, loc=tuple(e["loc"])[1:]) for e in exc.errors()]
            return _schema.from_pydantic(errors, raw)
        return []


@functools.lru_cache(maxsize=32)
def compiled(schema_bytes: bytes) -> Callable[[Any], list[_schema.Finding]]:
    """The findings of a value against a stored document schema, built once
    per schema (the cache is keyed by the file's bytes, so a changed
    schema.json gets a new one). ``jsonschema_rs`` (the same standard
    compiled to native code, ~100x faster on a valid value) says whether a
    value is valid; ``jsonschema`` says what is wrong with an invalid one,
    so there is one wording whichever said "invalid". jsonschema is
    imported at the first failure only: a check of a clean store never
    pays its import (a tenth of a second)."""
    schema = _schema.value_schema(json.loads(schema_bytes))
    schema.setdefault("$schema", _schema.DIALECT)  # both validators: the one draft
    explain = functools.cache(lambda: _jsonschema(schema))
    try:
        import jsonschema_rs

        is_valid: Callable[[Any], bool] = jsonschema_rs.validator_for(schema).is_valid
    except ImportError:  # pragma: no cover - an optional part of the typed extra
        is_valid = explain().is_valid

    def findings(value: Any) -> list[_schema.Finding]:
        if is_valid(value):
            return []
        return _schema.from_jsonschema(explain().iter_errors(value))

    return findings


def _jsonschema(schema: dict[str, Any]) -> Any:
    """jsonschema's validator of ``schema`` (what names each failure)."""
    try:
        from jsonschema.validators import validator_for
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise _needs("jsonschema") from None
    return validator_for(schema)(schema)


class Guard:
    """What a store's writes (and, typed, its reads) must meet."""

    def __init__(self, schema_bytes: bytes, typed: Typed | None) -> None:
        self.schema_bytes = schema_bytes
        self.typed = typed

    def encode(self, label: str, value: Any) -> bytes:
        if self.typed is not None:
            return self.typed.encode(label, value)
        body = _format.encode_value(value)
        found = compiled(self.schema_bytes)(json.loads(body))
        if found:
            raise ValidationError(_schema.describe(label, found), None, label, tuple(found))
        return body


def encode(guard: Guard | None, label: str, value: Any) -> bytes:
    """``value`` checked and encoded for a store: by its guard where it has one."""
    if guard is None:
        return _format.encode_value(value)
    return guard.encode(label, value)


def read_schema(storage: Storage) -> bytes | None:
    try:
        return storage.read(_format.SCHEMA_NAME)
    except FileNotFoundError:
        return None


def attach(
    storage: Storage, typed: Typed | None, update: bool, where: Callable[[str], str]
) -> Guard | None:
    """At open: the guard for the store's ``schema.json`` and ``typed``.

    Raises :class:`SchemaMismatch` if ``typed`` gives another schema than
    the stored one (comparing canonical bytes: no document is read), unless
    ``update``: then every document is checked against ``typed`` and its
    schema is written only if all pass.
    """
    stored = read_schema(storage)
    if stored is not None:
        stored = _schema.encode(_schema.decode(stored, where(_format.SCHEMA_NAME)))
    if typed is None:
        return None if stored is None else Guard(stored, None)
    if stored != typed.schema_bytes:
        if not update and (stored is not None or _has_documents(storage)):
            had = "a different schema" if stored is not None else "no schema"
            raise SchemaMismatch(
                f"{where(_format.SCHEMA_NAME)}: the store has {had} than value_type "
                f"{getattr(typed.value_type, '__name__', typed.value_type)!s} gives; open "
                "with update_schema=True to check every document against it and adopt it",
                where(_format.SCHEMA_NAME),
            )
        with storage.lock():
            _check_all(storage, typed, where)
            write_schema(storage, typed.schema_bytes)
    return Guard(typed.schema_bytes, typed)


def write_schema(storage: Storage, schema_bytes: bytes) -> None:
    """Raise the store's format to SCHEMA_FORMAT (an older sos must not write
    past the schema), then replace schema.json: one atomic rename."""
    raise_format(storage)
    storage.write(_format.SCHEMA_NAME, schema_bytes)


def raise_format(storage: Storage) -> None:
    """Raise the store's format to SCHEMA_FORMAT before a schema.json may appear."""
    data = storage.read(_format.METADATA_NAME)
    kind, version = _format.describe_metadata(data, _format.METADATA_NAME)
    if version < _format.SCHEMA_FORMAT:
        if version < _format.TRANSACTION_FORMAT:  # as a first transaction would
            storage.write_many(list(_format.SUPPORT_FILES.items()))
        storage.write(_format.METADATA_NAME, _format.encode_metadata(kind, _format.SCHEMA_FORMAT))


def migrate(
    documents: Iterable[tuple[str, bytes | None]],
    count: int,
    put: Callable[[str, str, bytes | None], None],
    fn: Callable[[Any], Any],
    typed: Typed,
    where: Callable[[str], str],
    progress: Progress = None,
) -> None:
    """Inside a transaction: each of the ``count`` documents (name, bytes or
    None if gone), as the transaction read them, converted by ``fn`` (old
    JSON value -> new) and checked against ``typed``, through ``put`` (the
    transaction's buffer). A value the new type rejects raises before the
    commit: nothing changes."""
    bar = progress(count) if progress is not None else None
    try:
        for name, data in documents:
            if data is None:
                continue
            key, raw = _format.decode_document(data, where(name))
            put(name, key, _format.document(key, typed.encode(key, fn(raw))))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None and hasattr(bar, "close"):
            bar.close()


def documents(storage: Storage) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every data file, in name order; listed and read
    ahead through the storage's pool (many requests in flight on object
    storage, not one round trip per file)."""
    prefixes = sorted(n for n in storage.list("") if _format.is_fanout_name(n))
    names = (
        f"{prefix}/{name}"
        for prefix, listing in storage.list_many(prefixes)
        for name in sorted(listing)
        if name.startswith(prefix) and _format.is_data_name(name)
    )
    for name, data in storage.read_many(names):
        if data is not None:
            yield name, data


def _has_documents(storage: Storage) -> bool:
    return any(
        _format.is_data_name(name)
        for prefix in storage.list("")
        if _format.is_fanout_name(prefix)
        for name in storage.list(prefix)
    )


def _check_all(storage: Storage, typed: Typed, where: Callable[[str], str]) -> None:
    """Every document against ``typed``; ValidationError naming the failing keys and their count."""
    failing: list[str] = []
    for name, data in documents(storage):
        try:
            key, raw = _format.decode_document(data, where(name))
        except CorruptError as exc:
            failing.append(f"{where(name)}: {exc.message}")
            continue
        found = typed.findings(data, raw)
        if found:
            failing.append(_schema.describe(key, found))
    if failing:
        shown = "\n  ".join(failing[:20])
        more = f"\n  … and {len(failing) - 20} more" if len(failing) > 20 else ""
        raise ValidationError(
            f"{storage.where('')}: {len(failing)} document(s) do not match the new type; "
            f"schema.json not changed:\n  {shown}{more}",
            storage.where(""),
        )

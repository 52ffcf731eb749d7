"""schema.json: a document's JSON Schema, its canonical form, and one wording of errors.

No I/O and no third-party import here: pydantic's error dicts and
jsonschema's error objects are read as plain data, so both validators'
failures come out in the one form ``ada: /born: expected integer, found
string`` (a key, a JSON Pointer into the value, a reason).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sos.errors import CorruptError

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Keywords whose value maps names to schemas: the names are data, never dropped.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})

# Words that only document a schema: dropped, so a pydantic upgrade that
# rewords a title does not change the stored file.
_DOC_WORDS = frozenset({"title", "description"})

Finding = tuple[str, str]


def canonical(schema: Any) -> Any:
    """``schema`` without titles and descriptions (key order is settled by :func:`encode`)."""
    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for word, sub in schema.items():
            if word in _DOC_WORDS:
                continue
            if word in _SCHEMA_MAPS and isinstance(sub, dict):
                out[word] = {name: canonical(s) for name, s in sub.items()}
            else:
                out[word] = canonical(sub)
        return out
    if isinstance(schema, list):
        return [canonical(s) for s in schema]
    return schema


def document_schema(value_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a whole document, ``{"key": string, "value": <value_schema>}``,
    in canonical form: what an editor checks a file on disk against."""
    value = dict(value_schema)
    defs = value.pop("$defs", None)
    doc: dict[str, Any] = {
        "$schema": DIALECT,
        "type": "object",
        "properties": {"key": {"type": "string"}, "value": value},
        "required": ["key", "value"],
        "additionalProperties": False,
    }
    if defs:
        doc["$defs"] = defs  # "#/$defs/X" references stay right at the top level
    result: dict[str, Any] = canonical(doc)
    return result


def encode(schema: dict[str, Any]) -> bytes:
    """The bytes of schema.json: sorted keys, two-space indent, so equal schemas are equal bytes."""
    return (json.dumps(canonical(schema), indent=2, sort_keys=True) + "\n").encode()


def decode(data: bytes, path: str) -> dict[str, Any]:
    """A schema.json's content, or CorruptError naming the file."""
    from sos.format.documents import parse_json

    schema = parse_json(data, path, "schema")
    if not isinstance(schema, dict):
        raise CorruptError(f"{path}: a schema must be a JSON object", path)
    return schema


def value_schema(doc_schema: dict[str, Any]) -> dict[str, Any]:
    """The part of a document schema that a value must meet, with the
    document's ``$defs`` so its references still resolve."""
    value = doc_schema.get("properties", {}).get("value", {})
    out = dict(value) if isinstance(value, dict) else {}
    if "$defs" in doc_schema:
        out["$defs"] = doc_schema["$defs"]
    return out


# -- one wording for both validators ---------------------------------------------------

_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    for cls, name in _JSON_TYPES:
        if isinstance(value, cls):
            return name
    return type(value).__name__


_PYDANTIC_EXPECTED = {
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "string_type": "string",
    "float_type": "number",
    "float_parsing": "number",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "list_type": "array",
    "tuple_type": "array",
    "set_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "dataclass_type": "object",
    "dataclass_exact_type": "object",
    "none_required": "null",
}

MISSING = "required field missing"
UNEXPECTED = "unexpected field"
NOT_ALLOWED = "not one of the allowed values"
NO_MATCH = "matches none of the allowed types"


def _pointer(parts: Iterable[str | int]) -> str:
    text = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return text or "/"


def _expected(kind: str, found: Any) -> str:
    return f"expected {kind}, found {json_type(found)}"


def from_pydantic(errors: list[Any], root: Any) -> list[Finding]:
    """Findings from ``pydantic.ValidationError.errors()`` for the JSON value ``root``.

    A location step that does not lead into ``root`` (a union member's tag)
    ends the path there: the value matched none of the union's members.
    """
    found: list[Finding] = []
    for error in errors:
        loc = list(error.get("loc", ()))
        kind = error.get("type", "")
        here: Any = root
        parts: list[str | int] = []
        tagged = False
        for i, step in enumerate(loc):
            into_object = isinstance(here, dict) and isinstance(step, str) and step in here
            into_array = isinstance(here, list) and isinstance(step, int) and 0 <= step < len(here)
            if into_object or into_array:
                parts.append(step)
                here = here[step]
            elif kind in ("missing", "extra_forbidden") and i == len(loc) - 1:
                parts.append(step)
            else:
                tagged = True
                break
        if tagged:
            reason = NO_MATCH
        elif kind == "missing":
            reason = MISSING
        elif kind == "extra_forbidden":
            reason = UNEXPECTED
        elif kind in ("literal_error", "enum"):
            reason = NOT_ALLOWED
        elif kind in _PYDANTIC_EXPECTED:
            reason = _expected(_PYDANTIC_EXPECTED[kind], error.get("input"))
        else:
            reason = str(error.get("msg", kind)).lower()
        found.append((_pointer(parts), reason))
    return _settle(found)


def from_jsonschema(errors: Iterable[Any]) -> list[Finding]:
    """Findings from jsonschema's ``iter_errors`` (``ValidationError`` objects)."""
    found: list[Finding] = []
    for error in errors:
        found.extend(_jsonschema_one(error))
    return _settle(found)


def _jsonschema_one(error: Any) -> list[Finding]:
    parts = list(error.absolute_path)
    keyword = error.validator
    if keyword == "type":
        expected = error.validator_value
        kind = expected if isinstance(expected, str) else " or ".join(expected)
        return [(_pointer(parts), _expected(kind, error.instance))]
    if keyword == "required":
        have = error.instance if isinstance(error.instance, dict) else {}
        return [(_pointer([*parts, n]), MISSING) for n in error.validator_value if n not in have]
    if keyword == "additionalProperties":
        allowed = error.schema.get("properties", {})
        have = error.instance if isinstance(error.instance, dict) else {}
        return [(_pointer([*parts, n]), UNEXPECTED) for n in have if n not in allowed]
    if keyword in ("enum", "const"):
        return [(_pointer(parts), NOT_ALLOWED)]
    if keyword in ("anyOf", "oneOf"):
        branches = error.validator_value
        real = [i for i, b in enumerate(branches) if b != {"type": "null"}]
        if len(real) == 1 and len(branches) == 2 and error.instance is not None:
            # Optional[X]: pydantic reports X's own errors; so do we.
            return [
                f for sub in error.context if sub.relative_schema_path[0] == real[0]
                for f in _jsonschema_one(sub)
            ]
        return [(_pointer(parts), NO_MATCH)]
    return [(_pointer(parts), str(error.message))]


def _settle(found: list[Finding]) -> list[Finding]:
    """One finding per path, in order: "not allowed" says more than the type it also fails."""
    best: dict[str, str] = {}
    for pointer, reason in found:
        if pointer not in best or (reason == NOT_ALLOWED and best[pointer].startswith("expected")):
            best[pointer] = reason
    return sorted(best.items())


def describe(key: str, findings: Iterable[Finding]) -> str:
    """The one form: ``ada: /born: expected integer, found string; ada: /name: ...``."""
    return "; ".join(f"{key}: {pointer}: {reason}" for pointer, reason in findings)

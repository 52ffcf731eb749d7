"""The ``schema`` finding: every document that fails the store's schema.json.

Runs on the values the scan already read (no file is read twice) with the
compiled validator the stores use, so the wording is the one a typed handle
gives: ``ada: /born: expected integer, found string``.
"""

from __future__ import annotations

import shlex

from sos.check.problems import Code, Problem
from sos.check.scan import _Scan
from sos.core import schema as _core_schema
from sos.errors import CorruptError
from sos.format import schema as _schema


def schema_problems(scan: _Scan) -> list[Problem]:
    """One ``schema`` problem per document that fails; none without a schema.json."""
    stored = _core_schema.read_schema(scan.files.storage)
    if stored is None:
        return []
    where = scan.files.where(_core_schema.SCHEMA_NAME)
    try:
        findings_of = _core_schema.compiled(_schema.encode(_schema.decode(stored, where)))
    except CorruptError as exc:  # no handle opens the store until it is mended
        fix = "restore it (git checkout), or open the store with update_schema=True"
        return [Problem(Code.SCHEMA, where, exc.message, action=fix)]
    problems: list[Problem] = []
    for doc in scan.docs:
        if doc.key is None:
            continue  # unreadable: reported as such already
        found = findings_of(doc.value)
        if not found:
            continue
        path = scan.files.where(doc.name)
        ref = scan._ref(doc.key)
        action = (
            f"$EDITOR {shlex.quote(path)}"
            if ref is None
            else shlex.join(["sos", "edit", scan.root, ref])
        )
        problems.append(
            Problem(
                Code.SCHEMA,
                path,
                f"{path}: {_schema.describe(doc.key, found)}",
                key=doc.key,
                action=action,
            )
        )
    return problems
